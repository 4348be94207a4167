"""``curves.png``: loss and accuracy per epoch, training vs validation.

Drawn with matplotlib's object API on an Agg canvas - no pyplot, so it never opens a
window, needs no display and leaves the user's matplotlib backend alone.
"""

from __future__ import annotations

import io
from pathlib import Path

from cnnkit.fileio import write_bytes_atomic


def plot_curves(rows: list[dict[str, float]], path: Path | str) -> None:
    """Two panels (loss, accuracy) of ``rows`` (``metrics.csv`` rows), saved atomically as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    epochs = [int(r["epoch"]) for r in rows]
    fig = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(fig)
    loss_ax, acc_ax = fig.subplots(1, 2)
    for ax, key, title in ((loss_ax, "loss", "Loss"), (acc_ax, "acc", "Accuracy")):
        ax.plot(epochs, [r[f"train_{key}"] for r in rows], "o-", label="train", markersize=3)
        ax.plot(epochs, [r[f"val_{key}"] for r in rows], "o-", label="validation", markersize=3)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    best = max(rows, key=lambda r: r["val_acc"])
    acc_ax.annotate(
        f"best {best['val_acc']:.2%}",
        (int(best["epoch"]), best["val_acc"]),
        textcoords="offset points",
        xytext=(0, -14),
        ha="center",
        fontsize=8,
    )
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    write_bytes_atomic(Path(path), buffer.getvalue())
