"""Batch-level preprocessing of in-memory datasets (seed 003's preprocessors, on tensors):
channel conversion, resizing a whole uint8 batch, training-set statistics and 10-crop.

Everything that turns *one image* into a tensor (decode, orientation, modes, PIL resize,
crop, normalisation constants) lives in :mod:`cnnkit.preprocess`, shared with prediction.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from cnnkit.errors import CnnkitError
from cnnkit.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageInput,
    Preprocess,
    center_crop,
    check_resize_mode,
    normalization,
)

# ITU-R 601 luma, the weights PIL uses for convert("L").
LUMA = (0.299, 0.587, 0.114)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "center_crop",
    "channel_stats",
    "check_resize_mode",
    "convert_channels",
    "normalization",
    "preprocess_images",
    "resize_batch",
    "ten_crop",
]


def convert_channels(x: torch.Tensor, channels: int | None) -> torch.Tensor:
    """(N, C, H, W) uint8 -> ``channels`` channels: gray is repeated, RGB goes to luma, alpha dropped."""
    c = x.shape[1]
    if c == 4:
        x, c = x[:, :3], 3
    if channels is None or channels == c:
        return x
    if channels == 3 and c == 1:
        return x.expand(-1, 3, -1, -1).contiguous()
    if channels == 1 and c == 3:
        weights = torch.tensor(LUMA, dtype=torch.float32).view(1, 3, 1, 1)
        return (x.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    raise CnnkitError(f"cannot convert {c}-channel images to {channels} channels. Use in_chans=1 or 3.")


def resize_batch(x: torch.Tensor, size: tuple[int, int] | None, resize: str = "stretch") -> torch.Tensor:
    """Resize a float batch to ``size`` = (H, W); bilinear, antialiased when shrinking.

    The tensor counterpart of :func:`cnnkit.preprocess.resize_image` (same geometry: whole
    image, or shorter side + centre crop), for datasets that live in memory as one tensor.
    """
    if size is None or tuple(x.shape[-2:]) == tuple(size):
        return x
    h, w = x.shape[-2:]
    if resize == "aspect":
        scale = max(size[0] / h, size[1] / w)
        inter = (max(size[0], round(h * scale)), max(size[1], round(w * scale)))
        x = F.interpolate(x, size=inter, mode="bilinear", align_corners=False, antialias=scale < 1)
        return center_crop(x, size)
    shrink = size[0] < h or size[1] < w
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=shrink)


def channel_stats(x: torch.Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (in [0, 1] units) of a uint8 (N, C, H, W) tensor or array."""
    c = x.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    total_sq = torch.zeros(c, dtype=torch.float64)
    count = 0
    for start in range(0, x.shape[0], chunk):
        part = torch.as_tensor(np.asarray(x[start : start + chunk])).to(torch.float64) / 255.0
        total += part.sum(dim=(0, 2, 3))
        total_sq += (part * part).sum(dim=(0, 2, 3))
        count += part.shape[0] * part.shape[2] * part.shape[3]
    mean = total / max(count, 1)
    std = (total_sq / max(count, 1) - mean * mean).clamp_min(1e-12).sqrt()
    return tuple(round(float(v), 6) for v in mean), tuple(round(max(float(v), 1e-3), 6) for v in std)


def ten_crop(batch: torch.Tensor, crop_size: int | tuple[int, int]) -> torch.Tensor:
    """Seed 003's CropPreprocessor for a batch: 4 corners + centre, then their mirrors.

    (N, C, H, W) -> (10 N, C, h, w), sample-major: rows 10n .. 10n+9 belong to image n, in the
    order top-left, top-right, bottom-right, bottom-left, centre, then the same five flipped
    left-right. Average the model's probabilities over ``.view(N, 10, -1)``.
    """
    h, w = (crop_size, crop_size) if isinstance(crop_size, int) else tuple(crop_size)
    n, c, height, width = batch.shape
    if h > height or w > width:
        raise CnnkitError(
            f"crop {h}x{w} is larger than the {height}x{width} images. Use a smaller crop size."
        )
    top_c, left_c = (height - h) // 2, (width - w) // 2
    corners = [(0, 0), (0, width - w), (height - h, width - w), (height - h, 0), (top_c, left_c)]
    crops = [batch[:, :, t : t + h, l : l + w] for t, l in corners]
    crops += [crop.flip(-1) for crop in crops]
    return torch.stack(crops, dim=1).reshape(n * 10, c, h, w)


def preprocess_images(
    images: ImageInput | Sequence[ImageInput],
    input_size: tuple[int, int, int],
    mean: Sequence[float],
    std: Sequence[float],
    resize: str = "stretch",
) -> torch.Tensor:
    """The old call, kept for its callers: ``Preprocess(size, resize, mean, std, channels)(images)``.

    For a run directory use ``cnnkit.runs.Run.load(path).preprocess``: it also knows the
    centre crop of a run trained with ``random_crop``, which these arguments cannot say.
    """
    channels, h, w = input_size
    return Preprocess(size=(h, w), resize=resize, mean=mean, std=std, channels=channels)(images)
