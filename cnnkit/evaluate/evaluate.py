"""``evaluate_run``: a trained run's full report card on its test split or on new labelled data.

Writes ``metrics.json`` (every number), ``report.txt`` (per-class table and confusion
matrix), ``predictions.csv``, and three figures: ``confusion.png``, ``reliability.png``
and ``mistakes.png`` (the most confidently wrong images, labelled true/predicted).

Test-time augmentation (``tta``): ``"flip"`` averages the probabilities of each image and
its mirror; ``"10crop"`` those of the four corner and centre patches and their mirrors
(Krizhevsky et al. 2012) - cut from the run's uncropped images when it trained on random
crops, else from images resized to ``size / 0.875``. The plain evaluation is always run
too, and ``tta_gain`` is the accuracy difference.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import torch

from cnnkit.errors import CnnkitError
from cnnkit.evaluate import plots
from cnnkit.evaluate.metrics import (
    compute_metrics,
    confident_mistakes,
    format_confusion,
    format_report,
    reliability_bins,
)
from cnnkit.evaluate.runs import CROP_PCT, EvalRun, eval_batches, open_run, run_datamodule, sample_ids
from cnnkit.fileio import write_json_atomic, write_text_atomic

TTA_MODES = ("none", "flip", "10crop")
MISTAKES_SHOWN = 16


@torch.no_grad()
def predict_probs(model: torch.nn.Module, batches: Any, flip: bool = False, crop: Any = None) -> tuple:
    """(probs, targets, first images) over ``batches``; ``flip``/``crop`` = TTA; also plain probs.

    Returns ``(probs, plain_probs, targets, images)``: ``images`` are the model-input
    tensors of the plain pass (kept for the mistakes figure).
    """
    from cnnkit.data import ten_crop

    out, plain, ys, xs = [], [], [], []
    model.eval()
    for x, y in batches:
        x = x.float()
        if crop is not None:
            n = x.shape[0]
            p = torch.softmax(_logits(model, ten_crop(x, crop)), dim=1).view(n, 10, -1)
            out.append(p.mean(dim=1))
            plain.append(p[:, 4])  # the centre patch: the plain evaluation of these images
            xs.append(ten_crop(x, crop).view(n, 10, *x.shape[1:2], *crop)[:, 4])
        else:
            p = torch.softmax(_logits(model, x), dim=1)
            plain.append(p)
            out.append((p + torch.softmax(_logits(model, x.flip(-1)), dim=1)) / 2 if flip else p)
            xs.append(x)
        ys.append(y)
    if not ys:
        raise CnnkitError("the evaluation split is empty; nothing to evaluate.")
    return torch.cat(out), torch.cat(plain), torch.cat(ys), torch.cat(xs)


def _logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    y = model(x)
    if isinstance(y, (tuple, list)):  # nets with auxiliary heads
        y = y[0]
    return y.float()


def evaluate_run(
    run: str | Path | EvalRun,
    data: Any = None,
    split: str | None = None,
    tta: str = "none",
    topk: int = 5,
    out: str | Path | None = None,
    batch_size: int = 128,
    workers: int | None = None,
) -> dict[str, Any]:
    """Evaluate a run (its own test split, or labelled ``data`` with the same classes).

    ``split``: default ``test`` (else ``val``) of the run's data; for new data, its ``test``
    split if it has one, else all of it. ``out``: where the files go (default
    ``RUN/eval-<split>[-<tta>]``). Returns the metrics dict (also in ``metrics.json``) with
    ``files`` naming what was written.
    """
    if tta not in TTA_MODES:
        raise CnnkitError(f"unknown --tta {tta!r}; use one of {', '.join(TTA_MODES)}.")
    if topk < 1:
        raise CnnkitError(f"--topk must be at least 1, got {topk}.")
    run = run if isinstance(run, EvalRun) else open_run(run)
    dm = run_datamodule(run, data, batch_size, workers=workers)
    split = _pick_split(dm, split, own=data is None)
    classes = run.classes
    # New data's class order may differ: map its labels onto the run's indices.
    remap = torch.tensor([classes.index(c) for c in dm.classes]) if data is not None else None

    crop = dm.augment.random_crop if dm.augment is not None else None
    if tta == "10crop":
        if crop is not None:
            batches = dm.uncropped_batches(split)
        else:
            crop = run.input_size[1:]
            big = run_datamodule(run, data, batch_size, scale=1 / CROP_PCT, workers=workers)
            batches = eval_batches(big, split)
        probs, plain, targets, images = predict_probs(run.model, batches, crop=tuple(crop))
    else:
        probs, plain, targets, images = predict_probs(run.model, eval_batches(dm, split), flip=tta == "flip")
    if remap is not None:
        targets = remap[targets]

    metrics = compute_metrics(probs, targets, classes, topk)
    label = (
        "arrays"
        if isinstance(data, (tuple, list))
        else str(data if data is not None else run.config.get("data"))
    )
    metrics.update({"run": str(run.path), "data": label, "split": split})
    metrics["tta"] = tta
    if tta != "none":
        base = compute_metrics(plain, targets, classes, topk)
        k = metrics["topk"]
        metrics["plain"] = {key: base[key] for key in ("accuracy", f"top{k}", "ece", "nll")}
        metrics["tta_gain"] = metrics["accuracy"] - base["accuracy"]
        if tta == "10crop":
            metrics["plain"]["note"] = "centre patch of the 10-crop images"

    out_dir = Path(out) if out is not None else run.path / f"eval-{split}{'' if tta == 'none' else '-' + tta}"
    metrics["files"] = _write_outputs(out_dir, run, dm, split, probs, targets, images, metrics)
    write_json_atomic(out_dir / "metrics.json", metrics)
    return metrics


def _pick_split(dm: Any, split: str | None, own: bool) -> str:
    have = list(dm.split_sizes())
    if split is None:
        if "test" in have:
            return "test"
        return "val" if own and "val" in have else "train"
    if split not in have:
        raise CnnkitError(f"the data has no {split!r} split; it has {', '.join(have)}. Pick one of those.")
    return split


def _write_outputs(
    out_dir: Path,
    run: EvalRun,
    dm: Any,
    split: str,
    probs: torch.Tensor,
    targets: torch.Tensor,
    images: Any,
    metrics: dict[str, Any],
) -> dict[str, str]:
    classes = run.classes
    p, t = probs.numpy(), targets.numpy()
    ids = sample_ids(dm, split)
    if len(ids) != len(t):  # e.g. a folder whose cache dropped unreadable files
        ids = [f"{split}:{i}" for i in range(len(t))]
    files = {
        "report": out_dir / "report.txt",
        "predictions": out_dir / "predictions.csv",
        "confusion_png": out_dir / "confusion.png",
        "reliability_png": out_dir / "reliability.png",
        "mistakes_png": out_dir / "mistakes.png",
    }
    text = (
        format_report(metrics, classes)
        + "\n\nconfusion matrix\n"
        + format_confusion(metrics["confusion"], classes)
    )
    if "tta_gain" in metrics:
        text += f"\n\nTTA {metrics['tta']}: accuracy {metrics['accuracy']:.4f} vs plain "
        text += f"{metrics['plain']['accuracy']:.4f} (gain {metrics['tta_gain']:+.4f})"
    write_text_atomic(files["report"], text + "\n")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["sample", "true", "predicted", "confidence", "correct"])
    pred = p.argmax(axis=1)
    for i in range(len(t)):
        writer.writerow(
            [ids[i], classes[t[i]], classes[pred[i]], f"{p[i, pred[i]]:.6f}", int(pred[i] == t[i])]
        )
    write_text_atomic(files["predictions"], buffer.getvalue())
    plots.plot_confusion(metrics["confusion"], classes, files["confusion_png"])
    plots.plot_reliability(reliability_bins(p, t), metrics["ece"], files["reliability_png"])
    worst = confident_mistakes(p, t, MISTAKES_SHOWN)
    metrics["mistakes"] = [
        {
            "sample": ids[i],
            "true": classes[t[i]],
            "predicted": classes[pred[i]],
            "confidence": float(p[i, pred[i]]),
        }
        for i in worst
    ]
    shown = [plots.to_display(images[i].numpy(), run.mean, run.std) for i in worst]
    titles = [f"true {classes[t[i]]}\npred {classes[pred[i]]} ({p[i, pred[i]]:.0%})" for i in worst]
    plots.plot_image_grid(shown, titles, files["mistakes_png"], f"Most confident mistakes ({split})")
    return {k: str(v) for k, v in files.items()}
