"""Classification metrics from predicted probabilities: ``compute_metrics(probs, targets, classes)``.

All arithmetic is torchmetrics' and scikit-learn's (accuracy, top-k, per-class
precision/recall/F1, macro and weighted averages, the confusion matrix, expected
calibration error); only the reliability-diagram bins are tallied here, and
:func:`reliability_bins` reproduces torchmetrics' ECE from them (tested).

Calibration: Guo et al., "On Calibration of Modern Neural Networks", ICML 2017 - ECE with
equal-width confidence bins, ``sum_b |B_b|/N * |acc(B_b) - conf(B_b)|``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from cnnkit.errors import CnnkitError

ECE_BINS = 15  # Guo et al.'s choice


def _as_inputs(probs: Any, targets: Any, classes: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    p = torch.as_tensor(np.asarray(probs), dtype=torch.float32)
    t = torch.as_tensor(np.asarray(targets), dtype=torch.long).view(-1)
    if p.ndim != 2 or p.shape[0] != t.shape[0]:
        raise CnnkitError(
            f"probabilities must be (N, K) with one row per target; got {tuple(p.shape)} for {len(t)} targets."
        )
    if p.shape[1] != len(classes):
        raise CnnkitError(f"{p.shape[1]} probability columns but {len(classes)} class names.")
    if len(t) == 0:
        raise CnnkitError("nothing to evaluate: no samples. Pass a split or folder with images.")
    if int(t.min()) < 0 or int(t.max()) >= len(classes):
        raise CnnkitError(f"targets must be class indices 0..{len(classes) - 1}.")
    return p, t


def compute_metrics(
    probs: Any, targets: Any, classes: Sequence[str], topk: int = 5, n_bins: int = ECE_BINS
) -> dict[str, Any]:
    """Every number of ``cnnkit evaluate`` for (N, K) probabilities and N integer targets.

    Returns a JSON-friendly dict: ``accuracy``, ``top{k}`` (rank-k accuracy; ``k`` capped at
    K), ``ece``, ``nll``, ``per_class`` ({name: precision, recall, f1, support}), ``macro`` and
    ``weighted`` averages, ``confusion`` (rows = true class, columns = predicted), ``n``.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
    from torchmetrics.functional.classification import multiclass_accuracy, multiclass_calibration_error

    p, t = _as_inputs(probs, targets, classes)
    k = len(classes)
    top = max(1, min(int(topk), k))
    pred = p.argmax(dim=1).numpy()
    labels = list(range(k))
    precision, recall, f1, support = precision_recall_fscore_support(
        t.numpy(), pred, labels=labels, zero_division=0
    )
    averages = {}
    for avg in ("macro", "weighted"):
        pr, rc, f, _ = precision_recall_fscore_support(
            t.numpy(), pred, labels=labels, average=avg, zero_division=0
        )
        averages[avg] = {"precision": float(pr), "recall": float(rc), "f1": float(f)}
    acc = multiclass_accuracy(p, t, num_classes=k, average="micro", top_k=1)
    top_acc = multiclass_accuracy(p, t, num_classes=k, average="micro", top_k=top) if k > 1 else acc
    ece = multiclass_calibration_error(p, t, num_classes=k, n_bins=n_bins, norm="l1")
    nll = torch.nn.functional.nll_loss(p.clamp_min(1e-12).log(), t)
    return {
        "n": int(len(t)),
        "accuracy": float(acc),
        f"top{top}": float(top_acc),
        "topk": top,
        "ece": float(ece),
        "nll": float(nll),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(classes)
        },
        **averages,
        "confusion": confusion_matrix(t.numpy(), pred, labels=labels).tolist(),
    }


def reliability_bins(probs: Any, targets: Any, n_bins: int = ECE_BINS) -> dict[str, np.ndarray]:
    """Equal-width confidence bins of the top-1 prediction: ``edges``, per-bin ``count``,
    mean ``confidence`` and ``accuracy`` (NaN for empty bins) - the reliability diagram's bars."""
    p = np.asarray(probs, dtype=np.float64)
    t = np.asarray(targets).reshape(-1)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == t).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # torchmetrics' bucketing: bin b holds confidences in (edges[b], edges[b+1]].
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(which, weights=conf, minlength=n_bins) / count
        accuracy = np.bincount(which, weights=correct, minlength=n_bins) / count
    return {"edges": edges, "count": count, "confidence": confidence, "accuracy": accuracy}


def confident_mistakes(probs: Any, targets: Any, limit: int = 16) -> list[int]:
    """Indices of the wrong predictions, most confident first (the 'wrong predictions' figure)."""
    p = np.asarray(probs)
    t = np.asarray(targets).reshape(-1)
    pred = p.argmax(axis=1)
    wrong = np.flatnonzero(pred != t)
    order = np.argsort(-p[wrong, pred[wrong]], kind="stable")
    return [int(i) for i in wrong[order][:limit]]


def format_report(metrics: dict[str, Any], classes: Sequence[str]) -> str:
    """A plain-text table: per-class precision/recall/F1/support, averages, headline numbers."""
    width = max(12, *(len(c) for c in classes))
    lines = [f"{'class':<{width}}  precision  recall     f1  support"]
    for name in classes:
        row = metrics["per_class"][name]
        lines.append(
            f"{name:<{width}}  {row['precision']:9.4f}  {row['recall']:6.4f}  {row['f1']:.4f}  {row['support']:7d}"
        )
    for avg in ("macro", "weighted"):
        row = metrics[avg]
        lines.append(
            f"{avg + ' avg':<{width}}  {row['precision']:9.4f}  {row['recall']:6.4f}  {row['f1']:.4f}  "
            f"{metrics['n']:7d}"
        )
    k = metrics["topk"]
    lines.append(
        f"accuracy {metrics['accuracy']:.4f}   rank-{k} {metrics[f'top{k}']:.4f}   "
        f"ECE {metrics['ece']:.4f}   NLL {metrics['nll']:.4f}   n={metrics['n']}"
    )
    return "\n".join(lines)


def format_confusion(confusion: Sequence[Sequence[int]], classes: Sequence[str]) -> str:
    """The confusion matrix as a text table (rows = true class, columns = predicted)."""
    names = [c[:8] for c in classes]
    cell = max(5, *(len(n) for n in names), len(str(max(max(r) for r in confusion))))
    head = max(9, *(len(n) for n in names))
    corner = "true/pred"
    lines = [f"{corner:<{head}} " + " ".join(f"{n:>{cell}}" for n in names)]
    for name, row in zip(names, confusion, strict=True):
        lines.append(f"{name:<{head}} " + " ".join(f"{v:>{cell}}" for v in row))
    return "\n".join(lines)
