"""Decoding images, the first step of the one preprocessing path (:mod:`cnnkit.preprocess`).

A path, bytes or a PIL image is opened with every problem reported in one
:class:`~cnnkit.errors.CnnkitError` line (missing, empty, truncated, non-image or oversized
file: the decompression-bomb limit is checked on the header, before any pixel is decoded);
arrays become PIL images; modes are converted to 1 or 3 channels. ``cnnkit.preprocess``
re-exports these names. No Lightning, no torch: importing this module is cheap.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from cnnkit.errors import CnnkitError

# Pillow's own default (1024 * 1024 * 1024 // 4 // 3): a 3-channel image of about 256 MB.
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485
MAX_PIXELS_ENV = "CNNKIT_MAX_IMAGE_PIXELS"
ORIENTATION_TAG = 0x0112  # EXIF tag; values 5..8 swap width and height

ImageInput = str | Path | bytes | bytearray | memoryview | Image.Image | np.ndarray


def max_image_pixels(limit: int | None = None) -> int:
    """The decompression-bomb limit: ``limit``, else ``$CNNKIT_MAX_IMAGE_PIXELS``, else Pillow's."""
    if limit is None:
        raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
        if not raw:
            return DEFAULT_MAX_IMAGE_PIXELS
        try:
            limit = int(raw.replace("_", ""))
        except ValueError:
            raise CnnkitError(
                f"{MAX_PIXELS_ENV}={raw!r} is not a whole number of pixels, e.g. 89478485."
            ) from None
    if limit < 1:
        raise CnnkitError(f"the image pixel limit must be at least 1, got {limit}.")
    return int(limit)


def describe_source(source: Any, name: str | None) -> str:
    """How an image is named in error messages: ``name``, the path, or its size in bytes."""
    if name is not None:
        return name
    if isinstance(source, (str, Path)):
        return str(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    return f"<{type(source).__name__}>"


def open_image(source: ImageInput, name: str | None = None, max_pixels: int | None = None) -> Image.Image:
    """Open an image from a path, bytes or a PIL image, refusing more than ``max_pixels``
    (checked on the header, before any pixel is decoded). Not decoded yet (so ``draft`` works);
    every problem is one :class:`CnnkitError` line naming the image (``name`` for bytes)."""
    label = describe_source(source, name)
    if isinstance(source, Image.Image):
        image = source
    else:
        if isinstance(source, (str, Path)):
            path = Path(source)
            if not path.exists():
                raise CnnkitError(f"image file {label} does not exist. Check the path.")
            if path.is_dir():
                raise CnnkitError(
                    f"{label} is a directory, not an image. Pass image files (e.g. photos/*.jpg)."
                )
            if path.stat().st_size == 0:
                raise CnnkitError(f"image file {label} is empty (0 bytes). Pass a real image file.")
            fp: Any = path
        else:
            if len(source) == 0:
                raise CnnkitError(f"image {label} is empty (0 bytes). Upload a real image file.")
            fp = io.BytesIO(bytes(source))
        limit = max_image_pixels(max_pixels)
        # Pillow's own check must not fire below our limit; above it we answer, not Pillow.
        if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < limit:
            Image.MAX_IMAGE_PIXELS = limit
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(fp)
        except Image.DecompressionBombError as exc:  # over twice Pillow's limit: no size to show
            pixels = re.search(r"\((\d+) pixels\)", str(exc))
            raise _too_many_pixels(
                label, f"{int(pixels.group(1)):,} pixels" if pixels else "", limit
            ) from None
        except UnidentifiedImageError:
            raise CnnkitError(
                f"cannot read {label} as an image (not a JPEG/PNG/BMP/... file). Pass an image file."
            ) from None
        except Exception as exc:  # noqa: BLE001 - a header so broken the parser raises its own error
            raise CnnkitError(
                f"cannot decode image {label}: {str(exc) or type(exc).__name__}. The file may be truncated or corrupt."
            ) from None
        if image.width * image.height > limit:
            image.close()
            raise _too_many_pixels(label, f"{image.width}x{image.height}", limit)
    return image


def _too_many_pixels(label: str, size: str, limit: int) -> CnnkitError:
    return CnnkitError(
        f"image {label}{f' ({size})' if size else ''} has more pixels than the limit of {limit:,} "
        f"(a decompression bomb?). Raise it with --max-image-pixels or {MAX_PIXELS_ENV} if the image is genuine."
    )


def is_sideways(image: Image.Image) -> bool:
    """Whether the EXIF orientation turns the image by 90 degrees (values 5..8): width and
    height swap when it is shown. Read from the header only, nothing is decoded."""
    raw = image.info.get("exif")
    if not raw:
        return False
    exif = Image.Exif()
    try:
        exif.load(raw)
    except Exception:  # noqa: BLE001 - a broken EXIF block is no orientation
        return False
    return exif.get(ORIENTATION_TAG, 1) in (5, 6, 7, 8)


def array_to_image(array: np.ndarray) -> Image.Image:
    """HW, HWC or CHW (C = 1, 3, 4); uint8, uint16, bool or float in [0, 1] -> a PIL image."""
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
        a = a.transpose(1, 2, 0)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
        raise CnnkitError(f"an image array must be HxW, HxWxC or CxHxW with C in 1, 3, 4; got {a.shape}.")
    if a.dtype == np.uint16:
        a = (a.astype(np.float32) / 257.0).round().astype(np.uint8)
    elif a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif a.dtype != np.uint8:
        a = (np.clip(a.astype(np.float32), 0, 1) * 255).round().astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(a))


def convert_mode(image: Image.Image, channels: int) -> Image.Image:
    """To ``"L"`` (1 channel) or ``"RGB"`` (3): palettes through RGBA (transparency kept
    right), alpha dropped, CMYK/YCbCr converted, 16/32-bit integer and float images scaled
    to 8 bits (``convert`` alone would clip 16-bit pixels to white)."""
    mode = "L" if channels == 1 else "RGB"
    if image.mode == mode:
        return image
    if image.mode.startswith("I") or image.mode == "F":
        a = np.asarray(image).astype(np.float64)
        if image.mode == "F" and a.size and a.max() <= 1.0:
            a = a * 255.0
        elif image.mode.startswith("I;16") or (a.size and a.max() > 255):
            a = a / 257.0
        image = Image.fromarray(np.clip(a, 0, 255).round().astype(np.uint8))
        return image if mode == "L" else image.convert(mode)
    if image.mode in ("P", "PA"):
        image = image.convert("RGBA")
    return image.convert(mode)
