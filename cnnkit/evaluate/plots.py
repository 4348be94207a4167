"""The pictures of ``cnnkit evaluate``: confusion-matrix heat map, reliability diagram and
the grid of the most confidently wrong images.

matplotlib's object API on an Agg canvas (no pyplot: no window, no display, the user's
backend untouched); every PNG is written atomically.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cnnkit.fileio import write_bytes_atomic


def new_figure(width: float, height: float, dpi: int = 100) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: str | Path) -> Path:
    """Render ``fig`` as PNG (or SVG for a ``.svg`` path) and write it atomically."""
    import matplotlib

    buffer = io.BytesIO()
    if Path(path).suffix.lower() == ".svg":  # text stays text (searchable); no date: same file each run
        with matplotlib.rc_context({"svg.fonttype": "none"}):
            fig.savefig(buffer, format="svg", metadata={"Date": None})
    else:
        fig.savefig(buffer, format="png")
    write_bytes_atomic(Path(path), buffer.getvalue())
    return Path(path)


def plot_confusion(confusion: Sequence[Sequence[int]], classes: Sequence[str], path: str | Path) -> Path:
    """Heat map of the row-normalised confusion matrix, counts written in the cells."""
    cm = np.asarray(confusion, dtype=np.float64)
    k = len(classes)
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    side = min(max(4.5, 0.45 * k + 2.5), 30.0)
    fig = new_figure(side + 1.0, side)
    ax = fig.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    ax.set_xticks(
        range(k), [str(c) for c in classes], rotation=60 if k > 6 else 0, ha="right" if k > 6 else "center"
    )
    ax.set_yticks(range(k), [str(c) for c in classes])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"Confusion matrix (n={int(cm.sum())})")
    if k <= 30:
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    colour = "white" if share[i, j] > 0.5 else "black"
                    ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=8, color=colour)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_reliability(bins: dict[str, np.ndarray], ece: float, path: str | Path) -> Path:
    """Reliability diagram (accuracy vs confidence per bin, with the diagonal) over a histogram."""
    edges, count = bins["edges"], bins["count"]
    centres, width = (edges[:-1] + edges[1:]) / 2, edges[1] - edges[0]
    fig = new_figure(5.5, 6.5)
    top, bottom = fig.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    acc = np.nan_to_num(bins["accuracy"])
    conf = np.nan_to_num(bins["confidence"])
    top.bar(centres, acc, width=width, edgecolor="black", color="tab:blue", label="accuracy")
    top.bar(
        centres,
        np.where(count > 0, conf, 0),
        width=width,
        fill=False,
        edgecolor="tab:red",
        linewidth=1.5,
        label="mean confidence",
    )
    top.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.set_title(f"Reliability diagram (ECE = {ece:.4f})")
    top.legend(loc="upper left")
    bottom.bar(centres, count, width=width, color="gray", edgecolor="black")
    bottom.set_xlim(0, 1)
    bottom.set_xlabel("confidence (top-1 probability)")
    bottom.set_ylabel("samples")
    fig.tight_layout()
    return save_figure(fig, path)


def to_display(x: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """A normalised (C, H, W) float image back to (H, W, 3) values in [0, 1] for imshow."""
    c = x.shape[0]
    img = x * np.asarray(std, dtype=np.float32).reshape(c, 1, 1) + np.asarray(mean, dtype=np.float32).reshape(
        c, 1, 1
    )
    img = np.clip(img.transpose(1, 2, 0), 0, 1)
    return np.repeat(img, 3, axis=2) if c == 1 else img


def plot_image_grid(
    images: Sequence[np.ndarray], titles: Sequence[str], path: str | Path, suptitle: str = "", cols: int = 4
) -> Path:
    """(H, W, 3) images in [0, 1] on a grid, one title under each (empty grid: a note)."""
    n = max(len(images), 1)
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    fig = new_figure(2.6 * cols, 2.9 * rows + (0.4 if suptitle else 0))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax in axes:
        ax.axis("off")
    if not images:
        axes[0].text(0.5, 0.5, "no mistakes", ha="center", va="center", fontsize=14)
    for ax, image, title in zip(axes, images, titles, strict=False):
        ax.imshow(image, interpolation="nearest" if image.shape[0] < 64 else "antialiased")
        ax.set_title(title, fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return save_figure(fig, path)
