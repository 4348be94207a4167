"""Pictures of what a CNN computes: heat-map overlays, feature-map grids, first-layer filters.

Zeiler & Fergus ("Visualizing and Understanding Convolutional Networks", ECCV 2014) for
feature maps and filters; the overlays show :mod:`cnnkit.explain.cam` maps with a
matplotlib colormap (jet) blended over the image the model saw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from cnnkit.errors import CnnkitError
from cnnkit.evaluate.plots import new_figure, save_figure
from cnnkit.explain.cam import capture, get_layer

MAX_CHANNELS = 64


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.45, cmap: str = "jet") -> np.ndarray:
    """(H, W, 3) image in [0, 1] blended with a (H, W) map in [0, 1] through ``cmap``."""
    from matplotlib import colormaps

    heat = colormaps[cmap](np.clip(cam, 0, 1))[..., :3]
    return np.clip((1 - alpha) * image + alpha * heat, 0, 1)


def save_overlay(
    image: np.ndarray, cam: np.ndarray, path: str | Path, title: str = "", alpha: float = 0.45
) -> Path:
    """Three panels - image, heat map, overlay - as one PNG."""
    from matplotlib import colormaps

    fig = new_figure(12, 4.4)
    axes = fig.subplots(1, 3)
    axes[0].imshow(image)
    axes[0].set_title("input")
    mappable = axes[1].imshow(cam, cmap=colormaps["jet"], vmin=0, vmax=1)
    axes[1].set_title("heat map")
    fig.colorbar(mappable, ax=axes[1], fraction=0.046, pad=0.04)
    axes[2].imshow(overlay(image, cam, alpha))
    axes[2].set_title("overlay")
    for ax in axes:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def feature_maps(model: nn.Module, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """The (C, H, W) output of each named layer for the first image of ``x``."""
    model.eval()
    maps: dict[str, torch.Tensor] = {}
    for name in layers:
        with torch.no_grad(), capture(get_layer(model, name)) as store:
            model(x[:1])
        act = store.get("act")
        if act is None or act.dim() != 4:
            shape = None if act is None else tuple(act.shape)
            raise CnnkitError(f"layer {name!r} gives {shape}, not a feature map; choose a conv layer.")
        maps[name] = act[0].detach().float()
    return maps


def _grid(count: int, fig_width: float = 12.0) -> tuple[int, int, float]:
    cols = min(count, 8)
    rows = math.ceil(count / cols)
    cell = fig_width / cols
    return rows, cols, cell


def save_feature_grid(
    act: torch.Tensor, path: str | Path, title: str = "", limit: int = MAX_CHANNELS
) -> Path:
    """The first ``limit`` channels of a (C, H, W) map, each scaled to its own range (viridis)."""
    channels = act[:limit].numpy()
    rows, cols, cell = _grid(len(channels))
    fig = new_figure(cols * cell * 0.8, rows * cell * 0.8 + 0.5)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i < len(channels):
            ax.imshow(channels[i], cmap="viridis", interpolation="nearest")
            ax.set_title(str(i), fontsize=7)
    fig.suptitle(title or f"{act.shape[0]} channels, {act.shape[1]}x{act.shape[2]}")
    fig.tight_layout()
    return save_figure(fig, path)


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module
    raise CnnkitError(f"{type(model).__name__} has no Conv2d layer; there are no filters to show.")


def save_filter_grid(model: nn.Module, path: str | Path, limit: int = MAX_CHANNELS) -> Path:
    """The first conv layer's kernels: RGB when it reads 3 channels, else its first input channel;
    each filter scaled to [0, 1] on its own."""
    name, conv = first_conv(model)
    w = conv.weight.detach().float()[:limit]  # (out, in/groups, k, k)
    rows, cols, cell = _grid(w.shape[0])
    fig = new_figure(cols * cell * 0.6, rows * cell * 0.6 + 0.5)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i >= w.shape[0]:
            continue
        f = w[i]
        f = (f - f.min()) / (f.max() - f.min()).clamp_min(1e-12)
        if f.shape[0] == 3:
            ax.imshow(f.permute(1, 2, 0).numpy(), interpolation="nearest")
        else:
            ax.imshow(f[0].numpy(), cmap="gray", interpolation="nearest")
    k = tuple(conv.kernel_size)
    fig.suptitle(f"{name}: {conv.out_channels} filters {k[0]}x{k[1]} over {conv.in_channels} channels")
    fig.tight_layout()
    return save_figure(fig, path)
