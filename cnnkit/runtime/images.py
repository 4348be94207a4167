"""Uploaded bytes and image files -> model input, through the one preprocessing record.

Decoding, orientation, resizing and normalisation are :class:`cnnkit.preprocess.Preprocess`'s
(the same path training's evaluation and ``cnnkit predict`` use). What is added here is the
guard in front of every upload, :func:`check_upload`: the bytes must be a real image (the
format is read from the content, never from a file name or a content-type) and the pixel
count is checked from the header *before* any pixel is decoded (a 100 kB PNG can claim
10^10 pixels: a decompression bomb). Each refusal is an :class:`ImageRejected` carrying the
HTTP status that fits it, with one line naming the problem and the fix.
"""

from __future__ import annotations

import dataclasses
import io
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from cnnkit.errors import CnnkitError
from cnnkit.preprocess import Preprocess

DEFAULT_MAX_PIXELS = 50_000_000  # a 50 MP photo; a bigger claim is refused before decoding
FORMATS = "JPEG, PNG, BMP, GIF, TIFF or WebP"


class ImageRejected(CnnkitError):
    """An upload that is not a usable image; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def check_upload(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[str, int, int]:
    """(format, width, height) of an upload, read from its header; refuses before decoding.

    Empty -> 400, not an image -> 415, more than ``max_pixels`` -> 413. Truncated or corrupt
    pixel data is found when the image is decoded (:func:`load_upload`).
    """
    if not data:
        raise ImageRejected(f"the upload is empty (0 bytes); send a {FORMATS} image.", 400)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                fmt, (width, height) = str(image.format), image.size
    except Image.DecompressionBombError as exc:
        raise ImageRejected(
            f"the image is too large to decode safely ({exc}); send a smaller image.", 413
        ) from None
    except UnidentifiedImageError:
        raise ImageRejected(
            f"the upload is not an image (its bytes were checked, not its name or type); send a {FORMATS} file.",
            415,
        ) from None
    except Exception as exc:  # a header so broken PIL's parsers raise their own errors
        raise ImageRejected(
            f"the image header is damaged ({str(exc) or type(exc).__name__}); send the original file.", 400
        ) from None
    if width < 1 or height < 1:
        raise ImageRejected(f"the image claims a size of {width}x{height}; send a real photo.", 400)
    if width * height > max_pixels:
        raise ImageRejected(
            f"the image is {width}x{height} = {width * height:,} pixels, over this server's limit of "
            f"{max_pixels:,}; resize it (e.g. to 4000 px on the long side) and send it again.",
            413,
        )
    return fmt, width, height


def load_upload(
    data: bytes, pre: Preprocess, name: str = "upload", max_pixels: int = DEFAULT_MAX_PIXELS
) -> torch.Tensor:
    """Checked upload -> normalised (C, H, W) tensor; a corrupt image is a 400."""
    check_upload(data, max_pixels)
    pre = dataclasses.replace(pre, max_image_pixels=max_pixels)
    try:
        return pre.load_one(data, name=name)
    except CnnkitError as exc:
        raise ImageRejected(f"{exc}", 400) from None
    except Exception as exc:  # a decoder bug must answer 400, never take the server down
        raise ImageRejected(
            f"image {name} does not decode ({str(exc) or type(exc).__name__}); it is truncated or corrupt.",
            400,
        ) from None


def display_image(data: bytes, longest: int = 512) -> Image.Image:
    """An already checked upload as an RGB picture at most ``longest`` px (for heat-map overlays)."""
    from PIL import ImageOps

    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (longest, longest))
        image = ImageOps.exif_transpose(image).convert("RGB")
    image.thumbnail((longest, longest), Image.BICUBIC)
    return image


def prepare(item: Any, pre: Preprocess) -> np.ndarray:
    """One image (path, bytes, PIL image or array) -> normalised float32 (C, H, W) array.

    Normalised with NumPy, not torch: this runs in decoding threads next to the model's
    forward pass, and a torch op called from another thread starts its own OpenMP team,
    oversubscribing the cores the model is using (what :func:`cnnkit.preprocess.normalize`
    computes, in the same float32 order: pixels * (1/255/std) - mean/std).
    """
    pixels = pre.pixels(item)
    std = np.asarray(pre.std, dtype=np.float32).reshape(-1, 1, 1)
    mean = np.asarray(pre.mean, dtype=np.float32).reshape(-1, 1, 1)
    out = pixels.astype(np.float32)
    out *= np.float32(1 / 255) / std
    out -= mean / std
    return out


def to_batch(images: Sequence[Any], pre: Preprocess) -> torch.Tensor:
    """Several images -> one (N, C, H, W) float batch."""
    return pre(list(images))
