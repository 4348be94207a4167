"""The training doctor: ``diagnose(run)`` reads a run's metrics.csv and config.json and names
what went wrong, with the numbers, and what to change.

Findings (each with evidence and advice):

* ``diverged`` / ``lr_too_high`` - non-finite or exploding loss, or a training loss that
  goes up and down from epoch to epoch instead of falling;
* ``lr_too_low`` - a training loss that barely moves;
* ``underfitting`` - training accuracy far from 100% (the model cannot even fit the
  training data: more capacity, more epochs, less regularisation);
* ``overfitting`` - the train/validation gap grows and the validation loss rises; the epoch
  where it started is the early-stopping epoch;
* ``plateau`` - validation accuracy stopped improving for the last epochs;
* ``healthy`` - none of these.

The rules follow the usual reading of learning curves (Goodfellow, Bengio & Courville,
"Deep Learning", 2016, sec. 7.8 early stopping and 11.4 hyperparameters; Smith, "A
disciplined approach to neural network hyper-parameters", 2018).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnkit.errors import CnnkitError
from cnnkit.fileio import read_json

UNDERFIT_ACC = 0.8  # final training accuracy below this: the model does not fit its training data
FLAT = 0.1  # a training loss that fell by less than 10% over the run is flat
GAP = 0.1  # train - val accuracy above this is a generalisation gap
RISE = 0.1  # validation loss more than 10% above its minimum is rising


@dataclass
class Finding:
    """One diagnosis: ``kind``, a one-line ``summary`` with the numbers, ``evidence`` and ``advice``."""

    kind: str
    summary: str
    advice: list[str] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)
    epoch: int | None = None  # the epoch it starts at (1-based), when there is one

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "summary": self.summary,
            "advice": self.advice,
            "evidence": self.evidence,
            "epoch": self.epoch,
        }


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """metrics.csv rows as floats (empty cells -> NaN)."""
    path = Path(path)
    if not path.is_file():
        raise CnnkitError(f"{path} does not exist; pass a run directory that finished at least one epoch.")
    with open(path, newline="") as f:
        rows = [{k: _num(v) for k, v in row.items()} for row in csv.DictReader(f)]
    if not rows:
        raise CnnkitError(f"{path} has no epochs yet; let the run finish an epoch first.")
    return rows


def _num(value: str | None) -> float:
    try:
        return float(value) if value not in (None, "") else math.nan
    except ValueError:
        return math.nan


def diagnose(
    run: str | Path | Any, rows: list[dict[str, float]] | None = None, config: dict | None = None
) -> list[Finding]:
    """Findings for a run directory (or a ``cnnkit.runs.Run``, or explicit ``rows`` + ``config``)."""
    if rows is None or config is None:
        path = Path(getattr(run, "path", run))
        if not (path / "config.json").is_file():
            raise CnnkitError(
                f"{path} is not a cnnkit run directory (no config.json); pass a 'cnnkit train' run."
            )
        rows = rows if rows is not None else read_metrics(path / "metrics.csv")
        config = config if config is not None else read_json(path / "config.json")
    return _diagnose(rows, config)


def _diagnose(rows: list[dict[str, float]], config: dict[str, Any]) -> list[Finding]:
    n = len(rows)
    classes = int(config.get("resolved", {}).get("num_classes") or 0) or 10
    chance_loss = math.log(classes)
    lr = config.get("resolved", {}).get("lr", config.get("lr"))
    wd = float(config.get("weight_decay") or 0.0)
    augment = config.get("augment")
    tl = [r["train_loss"] for r in rows]
    ta = [r["train_acc"] for r in rows]
    vl = [r["val_loss"] for r in rows]
    va = [r["val_acc"] for r in rows]
    findings: list[Finding] = []
    best = max(range(n), key=lambda i: va[i])
    stop = f"keep the epoch-{best + 1} checkpoint (best.ckpt) or stop there: --patience 3"

    # --- learning rate too high: divergence or oscillation
    bad = [i for i in range(n) if not (math.isfinite(tl[i]) and math.isfinite(vl[i]))]
    if bad:
        findings.append(
            Finding(
                "diverged",
                f"the loss became non-finite at epoch {bad[0] + 1} (learning rate {lr}): training diverged.",
                [
                    f"lower the learning rate 3-10x (e.g. --lr {_fmt(lr, 0.1)})",
                    "add gradient clipping or warm-up (--schedule onecycle)",
                ],
                {"epoch": bad[0] + 1, "lr": lr},
                bad[0] + 1,
            )
        )
        return findings
    ups = [i for i in range(1, n) if tl[i] > tl[i - 1] * 1.05]
    if n >= 3 and (tl[-1] > tl[0] * 1.05 or (n >= 5 and len(ups) >= (n - 1) / 3)):
        what = (
            f"rose from {tl[0]:.3f} to {tl[-1]:.3f}"
            if tl[-1] > tl[0] * 1.05
            else (f"went up in {len(ups)} of {n - 1} epochs")
        )
        findings.append(
            Finding(
                "lr_too_high",
                f"the training loss {what} (learning rate {lr}): the steps are too large.",
                [
                    f"lower the learning rate 3-10x (e.g. --lr {_fmt(lr, 0.3)})",
                    "use a decaying schedule (--schedule cosine)",
                ],
                {"train_loss": [round(v, 4) for v in tl], "increases": len(ups), "lr": lr},
                (ups[0] + 1) if ups else None,
            )
        )

    # --- learning rate too low / underfitting
    drop = (tl[0] - tl[-1]) / max(tl[0], 1e-12)
    flat = drop < FLAT and n >= 2
    if flat and not any(f.kind == "lr_too_high" for f in findings):
        findings.append(
            Finding(
                "lr_too_low",
                f"the training loss barely moved: {tl[0]:.3f} -> {tl[-1]:.3f} ({drop:.1%}) in {n} epochs "
                f"(learning rate {lr}).",
                [
                    f"raise the learning rate 10x (e.g. --lr {_fmt(lr, 10)}); 'cnnkit lr-find' measures a good one"
                ],
                {"first_train_loss": tl[0], "last_train_loss": tl[-1], "relative_drop": drop, "lr": lr},
            )
        )
    if ta[-1] < UNDERFIT_ACC:
        advice = []
        if va[-1] >= max(va) - 0.005 and not flat:
            advice.append(
                f"train longer: validation accuracy was still improving at the last epoch (--epochs {2 * n})"
            )
        if wd >= 1e-3:
            advice.append(f"weaken the regularisation: weight decay {wd:g} is strong (try {wd / 100:g})")
        if augment not in (None, "none") and augment != "light":
            advice.append(f"use lighter augmentation (--augment light; now {augment!r})")
        advice.append("use a bigger model (more filters or layers), or pretrained weights")
        findings.append(
            Finding(
                "underfitting",
                f"the model does not fit its training data: training accuracy {ta[-1]:.1%} and loss {tl[-1]:.3f} "
                f"after {n} epochs (chance: {1 / classes:.1%}, loss {chance_loss:.3f}).",
                advice,
                {"train_acc": ta[-1], "train_loss": tl[-1], "val_acc": va[-1], "chance_acc": 1 / classes},
            )
        )

    # --- overfitting: val loss rising from its minimum while the gap grows
    low = min(range(n), key=lambda i: vl[i])
    gap_end, gap_low = ta[-1] - va[-1], ta[low] - va[low]
    rising = vl[-1] > vl[low] * (1 + RISE) and low < n - 1
    if (rising and gap_end > gap_low) or (
        gap_end > GAP and ta[-1] >= UNDERFIT_ACC and gap_end > gap_low + 0.02
    ):
        advice = [stop]
        if augment in (None, "none"):
            advice.append("add data augmentation (--augment default)")
        if wd == 0:
            advice.append("add weight decay (e.g. --weight-decay 5e-4) or dropout")
        advice += ["get more training data, or use a smaller model", f"fewer epochs (about {low + 2})"]
        findings.append(
            Finding(
                "overfitting",
                f"overfitting from epoch {low + 1}: validation loss {vl[low]:.3f} -> {vl[-1]:.3f} while training loss "
                f"{tl[low]:.3f} -> {tl[-1]:.3f}; train/val accuracy gap {gap_low:.1%} -> {gap_end:.1%}.",
                advice,
                {
                    "min_val_loss_epoch": low + 1,
                    "val_loss": [vl[low], vl[-1]],
                    "gap": [gap_low, gap_end],
                    "best_val_acc_epoch": best + 1,
                },
                low + 1,
            )
        )

    # --- plateau: no validation gain over the last epochs
    window = max(3, n // 4)
    if n >= window + 2 and not findings:
        before, recent = max(va[: n - window]), max(va[n - window :])
        if recent - before < 0.005:
            findings.append(
                Finding(
                    "plateau",
                    f"validation accuracy plateaued at {max(va):.1%} (epoch {best + 1}); the last {window} epochs "
                    f"gained {recent - before:+.1%}.",
                    [
                        stop,
                        "lower the learning rate when it plateaus (--schedule plateau) or use cosine decay",
                        "for more accuracy: augmentation, a bigger model or more data",
                    ],
                    {"best_val_acc": max(va), "best_epoch": best + 1, "window": window},
                    best + 1,
                )
            )
    if not findings:
        advice = []
        if best == n - 1:
            advice.append(
                f"validation accuracy was still rising at the last epoch: train longer (--epochs {2 * n})"
            )
        findings.append(
            Finding(
                "healthy",
                f"no problem found: training accuracy {ta[-1]:.1%}, validation {va[-1]:.1%} (best {max(va):.1%} at "
                f"epoch {best + 1}), gap {gap_end:.1%}.",
                advice,
                {"train_acc": ta[-1], "val_acc": va[-1], "best_epoch": best + 1},
            )
        )
    return findings


def _fmt(lr: Any, factor: float) -> str:
    return f"{float(lr) * factor:.2g}" if isinstance(lr, (int, float)) else "0.001"


def format_findings(findings: list[Finding]) -> str:
    """Plain text: one block per finding (kind, summary, advice bullets)."""
    lines = []
    for f in findings:
        lines.append(f"[{f.kind}] {f.summary}")
        lines += [f"    - {a}" for a in f.advice]
    return "\n".join(lines)
