"""An architecture diagram: one box per top-level block, input to output, with its output
shape and parameters - the picture of a network that papers draw, made from the summary pass
(shapes on the meta device, so even VGG-19 draws in a second). SVG or PNG by the file name."""

from __future__ import annotations

from pathlib import Path

import torch.nn as nn
from matplotlib.patches import FancyBboxPatch

from cnnkit.errors import CnnkitError
from cnnkit.evaluate.plots import new_figure, save_figure
from cnnkit.summary import summary

# Box colours by layer kind (conv-like, pooling, dense, the rest).
COLOURS = {"conv": "#9ecae1", "pool": "#fdd0a2", "dense": "#a1d99b", "other": "#d9d9d9"}


def _kind(type_name: str) -> str:
    lowered = type_name.lower()
    if "pool" in lowered:
        return "pool"
    if "linear" in lowered or "dense" in lowered or "classifier" in lowered:
        return "dense"
    if any(k in lowered for k in ("conv", "block", "inception", "mbconv", "sequential", "stage", "residual")):
        return "conv"
    return "other"


def _shape(shape: object) -> str:
    if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple)):
        shape = shape[0]
    if isinstance(shape, (list, tuple)):
        return "x".join(str(d) for d in shape[1:])
    return str(shape)


def save_architecture(model: nn.Module, path: str | Path, input_size: tuple[int, ...] | None = None) -> Path:
    """Draw ``model``'s top-level blocks (``summary(depth=1)``) as a column of boxes at ``path``
    (``.svg`` or ``.png``): name, type, output shape (C x H x W) and parameters of each."""
    path = Path(path)
    if path.suffix.lower() not in (".svg", ".png"):
        raise CnnkitError(f"diagram file {path} must end in .svg or .png.")
    table = summary(model, input_size, depth=1)
    rows = [r for r in table.rows if r.depth <= 1]
    if not rows:
        raise CnnkitError("the model has no layers to draw.")
    height = 0.9 + 0.62 * len(rows)
    fig = new_figure(6.4, height)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 10)
    ax.set_ylim(-height, 0)
    ax.axis("off")
    name = getattr(model, "model_name", type(model).__name__)
    ax.text(5, -0.35, f"{name}: input {'x'.join(map(str, table.input_size))}, {table.total_params:,} params",
            ha="center", va="center", fontsize=10, weight="bold")  # fmt: skip
    for i, row in enumerate(rows):
        y = -0.9 - 0.62 * i
        ax.add_patch(
            FancyBboxPatch(
                (0.6, y - 0.24),
                8.8,
                0.48,
                boxstyle="round,pad=0.02",
                fc=COLOURS[_kind(row.type)],
                ec="#555555",
            )
        )
        ax.text(0.8, y, f"{row.name}  ({row.type})", va="center", fontsize=8)
        ax.text(9.2, y, f"{_shape(row.output_shape)}   {row.params:,}", va="center", ha="right", fontsize=8)
        if i:
            ax.annotate("", (5, y + 0.25), (5, y + 0.37), arrowprops={"arrowstyle": "->", "color": "#555555"})
    return save_figure(fig, path)
