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
import torch.nn.functional as F

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


def hypercolumns(model: nn.Module, x: torch.Tensor, layers: Sequence[str] | None = None) -> torch.Tensor:
    """Every pixel's hypercolumn (Hariharan et al. 2015, "Hypercolumns for Object Segmentation
    and Fine-grained Localization"): the activations of ``layers`` (default: the model's
    stages, ``feature_info``) for the first image of ``x``, each upsampled bilinearly to the
    input size and stacked -> (sum of channels, H, W)."""
    if layers is None:
        layers = [f["module"] for f in getattr(model, "feature_info", [])]
        if not layers:
            raise CnnkitError("this model has no stages; pass the layers for its hypercolumns.")
    h, w = x.shape[-2:]
    maps = feature_maps(model, x, list(layers)).values()
    return torch.cat([F.interpolate(m[None], (h, w), mode="bilinear", align_corners=False)[0] for m in maps])


def save_hypercolumns(columns: torch.Tensor, image: np.ndarray, path: str | Path, title: str = "") -> Path:
    """The photo next to its hypercolumns projected on their first three principal
    components (shown as RGB: pixels the network describes alike get alike colours)."""
    c, h, w = columns.shape
    flat = columns.reshape(c, -1).T.double()
    flat = flat - flat.mean(0)
    with torch.random.fork_rng():  # pca_lowrank is randomised: the same picture every time
        torch.manual_seed(0)
        _, _, v = torch.pca_lowrank(flat, q=min(3, c), center=False)
    rgb = (flat @ v).reshape(h, w, -1)
    lo, hi = rgb.amin((0, 1)), rgb.amax((0, 1))
    rgb = ((rgb - lo) / (hi - lo).clamp_min(1e-12)).numpy()
    if rgb.shape[-1] < 3:
        rgb = np.concatenate([rgb, np.zeros((h, w, 3 - rgb.shape[-1]))], -1)
    fig = new_figure(8, 4.3)
    for i, (picture, label) in enumerate(((image, "input"), (rgb, f"hypercolumns ({c} channels), PCA")), 1):
        ax = fig.add_subplot(1, 2, i)
        ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None)
        ax.set_title(label, fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)
