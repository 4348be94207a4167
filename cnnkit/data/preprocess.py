"""Deterministic preprocessing (seed 003's preprocessors): resizing with or without keeping
the aspect ratio, channel conversion, per-channel mean/std normalisation, 10-crop, and
:func:`preprocess_images` - the same steps for new files at inference time.

Two resize modes, as in the book notes: ``"stretch"`` (SimplePreprocessor: ignore the aspect
ratio) and ``"aspect"`` (AspectAwarePreprocessor: scale the shorter side, then centre crop).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from cnnkit.errors import CnnkitError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_MODES = ("stretch", "aspect")
# ITU-R 601 luma, the weights PIL uses for convert("L").
LUMA = (0.299, 0.587, 0.114)


def check_resize_mode(resize: str) -> str:
    if resize not in RESIZE_MODES:
        raise CnnkitError(f"unknown resize mode {resize!r}. Use 'stretch' or 'aspect'.")
    return resize


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
    """Resize a float batch to ``size`` = (H, W); bilinear, antialiased when shrinking."""
    if size is None or tuple(x.shape[-2:]) == tuple(size):
        return x
    h, w = x.shape[-2:]
    if resize == "aspect":
        scale = max(size[0] / h, size[1] / w)
        inter = (max(size[0], round(h * scale)), max(size[1], round(w * scale)))
        x = F.interpolate(x, size=inter, mode="bilinear", align_corners=False, antialias=scale < 1)
        top, left = (inter[0] - size[0]) // 2, (inter[1] - size[1]) // 2
        return x[..., top : top + size[0], left : left + size[1]]
    shrink = size[0] < h or size[1] < w
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=shrink)


def resize_pil(image: Image.Image, size: tuple[int, int], resize: str = "stretch") -> Image.Image:
    """PIL counterpart of :func:`resize_batch` for decoded files (size = (H, W))."""
    h, w = size
    if image.size == (w, h):
        return image
    if resize == "aspect":
        scale = max(h / image.height, w / image.width)
        new_w, new_h = max(w, round(image.width * scale)), max(h, round(image.height * scale))
        image = image.resize((new_w, new_h), Image.BILINEAR, reducing_gap=3.0)
        left, top = (new_w - w) // 2, (new_h - h) // 2
        return image.crop((left, top, left + w, top + h))
    return image.resize((w, h), Image.BILINEAR, reducing_gap=3.0)


def load_image(
    source: str | Path | Image.Image | np.ndarray,
    size: tuple[int, int] | None,
    channels: int,
    resize: str = "stretch",
) -> np.ndarray:
    """Decode (if needed), convert to 1 or 3 channels and resize; returns uint8 (C, H, W).

    JPEGs are decoded at a reduced DCT scale when much larger than ``size`` (PIL ``draft``),
    which is several times faster than decoding at full size and then shrinking.
    """
    if isinstance(source, np.ndarray):
        array = source if source.dtype == np.uint8 else (np.clip(source, 0, 1) * 255).round().astype(np.uint8)
        if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
            array = array.transpose(1, 2, 0)
        image = Image.fromarray(array.squeeze(-1) if array.ndim == 3 and array.shape[-1] == 1 else array)
    elif isinstance(source, Image.Image):
        image = source
    else:
        image = Image.open(source)
    mode = "L" if channels == 1 else "RGB"
    if size is not None and image.format == "JPEG":
        draft_size = (size[1], size[0]) if resize == "stretch" else (max(size),) * 2
        image.draft(mode, draft_size)
    if image.mode != mode:
        image = image.convert("RGBA").convert(mode) if image.mode in ("P", "PA") else image.convert(mode)
    if size is not None:
        image = resize_pil(image, size, resize)
    array = np.asarray(image, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


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


def fixed_normalization(normalize: Any, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """Mean/std for every mode except ``"dataset"`` (which needs the training data; -> None)."""
    if isinstance(normalize, str):
        if normalize == "dataset":
            return None
        if normalize == "imagenet":
            if channels == 1:
                return (round(sum(IMAGENET_MEAN) / 3, 4),), (round(sum(IMAGENET_STD) / 3, 4),)
            return IMAGENET_MEAN, IMAGENET_STD
        if normalize == "none":
            return (0.0,) * channels, (1.0,) * channels
        if normalize == "tf":  # (x - 127) / 128 on 0..255 pixels, as EfficientNet-Lite was trained
            return (127 / 255,) * channels, (128 / 255,) * channels
        raise CnnkitError(
            f"unknown normalize={normalize!r}. Use 'dataset', 'imagenet', 'none', 'tf' or a (mean, std) pair."
        )
    try:
        mean, std = (tuple(float(v) for v in np.atleast_1d(part)) for part in normalize)
    except (TypeError, ValueError):
        raise CnnkitError(
            f"normalize={normalize!r} is not a (mean, std) pair. Write e.g. ((0.5,), (0.5,))."
        ) from None
    mean = mean * channels if len(mean) == 1 else mean
    std = std * channels if len(std) == 1 else std
    if len(mean) != channels or len(std) != channels or min(std) <= 0:
        raise CnnkitError(f"normalize mean/std need {channels} values each and std > 0; got {mean}, {std}.")
    return mean, std


def normalize_batch(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


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
    images: Sequence[str | Path | Image.Image | np.ndarray] | str | Path | Image.Image,
    input_size: tuple[int, int, int],
    mean: Sequence[float],
    std: Sequence[float],
    resize: str = "stretch",
) -> torch.Tensor:
    """Files or PIL images -> a normalised float batch (N, C, H, W) ready for the model.

    Use the ``input_size``, ``mean`` and ``std`` the model was trained with (a checkpoint
    stores them); this applies exactly the decode/convert/resize/normalise steps training used.
    """
    if isinstance(images, (str, Path, Image.Image)):
        images = [images]
    check_resize_mode(resize)
    channels, h, w = input_size
    arrays = []
    for item in images:
        if isinstance(item, (str, Path)) and not Path(item).is_file():
            raise CnnkitError(f"image file {item} does not exist. Check the path.")
        try:
            arrays.append(load_image(item, (h, w), channels, resize))
        except (OSError, SyntaxError, ValueError) as exc:
            raise CnnkitError(f"cannot read image {item}: {exc}. Pass a valid image file.") from None
    if not arrays:
        raise CnnkitError("no images given. Pass at least one image file.")
    x = torch.from_numpy(np.stack(arrays)).float() / 255.0
    return normalize_batch(x, mean, std)
