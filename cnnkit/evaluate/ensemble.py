"""``ensemble_runs``: combine trained runs on the same test split and compare with each member.

Methods (Dietterich, "Ensemble Methods in Machine Learning", 2000; Wolpert, "Stacked
Generalization", 1992):

* ``mean`` - average the members' probabilities;
* ``vote`` - majority vote of their top-1 classes (ties to the higher mean probability);
* ``weighted`` - a weighted average, weights (softmax-parametrised, summing to 1) fitted to
  minimise the validation log-loss;
* ``stack`` - a multinomial logistic regression (scikit-learn) trained on the members'
  validation log-probabilities, applied to the test ones.

Every member is run with its own preprocessing (members may differ in input size); they
must share the classes and the evaluation samples (same data, fractions and seed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnkit.errors import CnnkitError
from cnnkit.evaluate.evaluate import predict_probs
from cnnkit.evaluate.metrics import compute_metrics
from cnnkit.evaluate.runs import eval_batches, open_run, run_datamodule

METHODS = ("mean", "vote", "weighted", "stack")


def member_probs(run_dir: str | Path, splits: tuple[str, ...], batch_size: int = 128) -> dict[str, Any]:
    """One run's class names and, per split, its probabilities and targets."""
    run = open_run(run_dir)
    dm = run_datamodule(run, batch_size=batch_size)
    out: dict[str, Any] = {"run": run, "classes": run.classes}
    have = dm.split_sizes()
    for split in splits:
        if split not in have:
            raise CnnkitError(
                f"{run_dir} has no {split} split; ensembles need the runs' val and test splits."
            )
        probs, _, targets, _ = predict_probs(run.model, eval_batches(dm, split))
        out[split] = (probs.numpy().astype(np.float64), targets.numpy())
    return out


def fit_weights(val_probs: list[np.ndarray], targets: np.ndarray, steps: int = 300) -> np.ndarray:
    """Non-negative weights summing to 1 that minimise the validation NLL of the weighted mean."""
    p = torch.as_tensor(np.stack(val_probs), dtype=torch.float64)  # (M, N, K)
    t = torch.as_tensor(targets, dtype=torch.long)
    logits = torch.zeros(len(val_probs), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([logits], lr=0.5, max_iter=steps)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        mix = (logits.softmax(0)[:, None, None] * p).sum(0)
        loss = torch.nn.functional.nll_loss(mix.clamp_min(1e-12).log(), t)
        loss.backward()
        return loss

    opt.step(closure)
    return logits.detach().softmax(0).numpy()


def combine(method: str, test: list[np.ndarray], val: list[np.ndarray], val_targets: np.ndarray) -> tuple:
    """(ensemble test probabilities, extra info) for ``method``."""
    if method == "mean":
        return np.mean(test, axis=0), {}
    if method == "vote":
        k = test[0].shape[1]
        votes = sum(np.eye(k)[p.argmax(1)] for p in test) / len(test)
        return votes + 1e-6 * np.mean(test, axis=0), {}  # ties -> the higher mean probability
    if method == "weighted":
        w = fit_weights(val, val_targets)
        return np.tensordot(w, np.stack(test), axes=1), {"weights": w.tolist()}
    if method == "stack":
        from sklearn.linear_model import LogisticRegression

        feats = lambda ps: np.concatenate([np.log(np.clip(p, 1e-12, 1)) for p in ps], axis=1)  # noqa: E731
        meta = LogisticRegression(max_iter=2000, C=1.0).fit(feats(val), val_targets)
        k = test[0].shape[1]
        proba = np.zeros((len(test[0]), k))
        proba[:, meta.classes_] = meta.predict_proba(feats(test))
        return proba, {"meta_classifier": "LogisticRegression(C=1.0) on validation log-probabilities"}
    raise CnnkitError(f"unknown ensemble method {method!r}; use one of {', '.join(METHODS)}.")


def ensemble_runs(
    runs: list[str | Path], methods: tuple[str, ...] = METHODS, split: str = "test", batch_size: int = 128
) -> dict[str, Any]:
    """Each member's and each ensemble's metrics on the shared ``split``:
    ``{"members": [{run, accuracy, ...}], "ensembles": {method: {accuracy, ...}}, "mean_member_accuracy"}``."""
    if len(runs) < 2:
        raise CnnkitError("an ensemble needs at least two runs.")
    for m in methods:
        if m not in METHODS:
            raise CnnkitError(f"unknown ensemble method {m!r}; use one of {', '.join(METHODS)}.")
    members = [member_probs(r, ("val", split), batch_size) for r in runs]
    classes, (_, targets), (_, val_targets) = members[0]["classes"], members[0][split], members[0]["val"]
    for r, m in zip(runs, members, strict=True):
        if m["classes"] != classes:
            raise CnnkitError(
                f"{r} has other classes than {runs[0]}; ensemble runs trained on the same data."
            )
        if not (np.array_equal(m[split][1], targets) and np.array_equal(m["val"][1], val_targets)):
            raise CnnkitError(
                f"{r} was evaluated on other {split}/val samples than {runs[0]}; train the members on the same "
                "data with the same --seed and split fractions."
            )
    report: dict[str, Any] = {"split": split, "n": int(len(targets)), "members": [], "ensembles": {}}
    for r, m in zip(runs, members, strict=True):
        metrics = compute_metrics(m[split][0], targets, classes)
        report["members"].append({"run": str(r), "model": m["run"].config.get("model"), **_short(metrics)})
    report["mean_member_accuracy"] = float(np.mean([m["accuracy"] for m in report["members"]]))
    test_p = [m[split][0] for m in members]
    val_p = [m["val"][0] for m in members]
    for method in methods:
        probs, extra = combine(method, test_p, val_p, val_targets)
        report["ensembles"][method] = {**_short(compute_metrics(probs, targets, classes)), **extra}
    return report


def _short(metrics: dict[str, Any]) -> dict[str, Any]:
    k = metrics["topk"]
    return {"accuracy": metrics["accuracy"], f"top{k}": metrics[f"top{k}"], "macro_f1": metrics["macro"]["f1"],
            "nll": metrics["nll"], "ece": metrics["ece"]}  # fmt: skip


def format_ensemble(report: dict[str, Any]) -> str:
    lines = [f"{'':<46} accuracy  macro-F1     NLL     ECE   ({report['split']}, n={report['n']})"]
    for m in report["members"]:
        name = f"{m['model']} ({Path(m['run']).name})"[:46]
        lines.append(
            f"{name:<46} {m['accuracy']:8.4f}  {m['macro_f1']:8.4f}  {m['nll']:6.4f}  {m['ece']:6.4f}"
        )
    lines.append(f"{'mean of the members':<46} {report['mean_member_accuracy']:8.4f}")
    for method, e in report["ensembles"].items():
        extra = f"  weights {np.round(e['weights'], 3).tolist()}" if "weights" in e else ""
        lines.append(
            f"{'ensemble: ' + method:<46} {e['accuracy']:8.4f}  {e['macro_f1']:8.4f}  {e['nll']:6.4f}  "
            f"{e['ece']:6.4f}{extra}"
        )
    return "\n".join(lines)
