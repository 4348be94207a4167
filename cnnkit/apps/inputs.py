"""Whatever the caller has -> (name, RGB PIL image), or one clear error line.

Accepted: a path (str or Path), encoded bytes, a PIL image, an (H, W) or (H, W, 3|4)
array (uint8, or float in [0, 1]). A missing, non-image, truncated or hostile file (a
decompression bomb) raises :class:`~cnnkit.errors.CnnkitError` naming the file and the fix.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from cnnkit.errors import CnnkitError

ImageInput = str | Path | bytes | Image.Image | np.ndarray


def _decode(source: Any, name: str) -> Image.Image:
    try:
        image = Image.open(source)
        image.load()  # decode now: a truncated file fails here, with its name
    except UnidentifiedImageError:
        raise CnnkitError(
            f"cannot read {name} as an image (not a JPEG/PNG/BMP/... file); pass an image file."
        ) from None
    except Image.DecompressionBombError as exc:
        raise CnnkitError(f"refusing {name}: {str(exc).rstrip('.')}; pass a smaller image.") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise CnnkitError(
            f"cannot decode image {name}: {exc}; the file may be truncated or corrupt."
        ) from None
    return image


def load_image(image: ImageInput) -> tuple[str, Image.Image]:
    """``(name, image)``: the name is the path as given, else ``<bytes>``/``<PIL image>``/``<array>``."""
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.exists():
            raise CnnkitError(f"image file {path} does not exist; check the path.")
        if path.is_dir():
            raise CnnkitError(f"{path} is a directory, not an image; pass image files (e.g. photos/*.jpg).")
        return str(image), _decode(path, str(path)).convert("RGB")
    if isinstance(image, (bytes, bytearray, memoryview)):
        if not len(image):
            raise CnnkitError("the image bytes are empty; pass the bytes of a JPEG/PNG/... file.")
        return "<bytes>", _decode(io.BytesIO(bytes(image)), "the image bytes").convert("RGB")
    if isinstance(image, Image.Image):
        return "<PIL image>", image.convert("RGB")
    if isinstance(image, np.ndarray):
        array = image
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)) or 0 in array.shape:
            raise CnnkitError(f"an image array must be (H, W) or (H, W, 3|4), got shape {image.shape}.")
        if array.dtype != np.uint8:
            if not np.isfinite(array).all():
                raise CnnkitError("the image array holds NaN or infinite values.")
            scale = 255.0 if float(array.max(initial=0)) <= 1.0 else 1.0
            array = np.clip(array * scale, 0, 255).round().astype(np.uint8)
        return "<array>", Image.fromarray(array).convert("RGB")
    raise CnnkitError(
        f"cannot use a {type(image).__name__} as an image; pass a path, bytes, a PIL image or an array."
    )
