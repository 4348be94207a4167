"""One preprocessing path: file / bytes / PIL image / array -> the tensor a model expects.

:class:`Preprocess` is a record (size, resize mode, filter, crop, mean/std, channels) that
lives next to the weights it belongs to (``cnnkit.models.get_weights(name).preprocess``) and
in every run directory (``normalization.json``), and is applied by the same functions in
training's evaluation path (``cnnkit.data``), ``cnnkit predict`` and the server. The steps,
in order: decode (one clear line for a missing, empty, truncated, non-image or oversized
file), EXIF orientation, mode conversion to 1 or 3 channels, resize (stretch, or shorter
side + centre crop), centre crop (``crop_pct`` / ``resize_size``: torchvision's "resize 256,
crop 224"), normalise. No Lightning here: importing this module is cheap. The decoding
step lives in :mod:`cnnkit.decode`; its names are re-exported here.

Constants are on the [0, 1] scale, one value per channel.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from cnnkit.decode import (  # re-exported: decoding is the first step of this path
    DEFAULT_MAX_IMAGE_PIXELS,  # noqa: F401
    MAX_PIXELS_ENV,  # noqa: F401
    ORIENTATION_TAG,  # noqa: F401
    ImageInput,
    array_to_image,
    convert_mode,
    describe_source,
    is_sideways,
    max_image_pixels,  # noqa: F401
    open_image,
)
from cnnkit.errors import CnnkitError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# TensorFlow's (x - 127) / 128 on 0..255 pixels (EfficientNet-Lite, MobileNet TF releases).
TF_MEAN = (127 / 255,) * 3
TF_STD = (128 / 255,) * 3
# Training-set statistics of common datasets (cnnkit measures them itself with normalize="dataset").
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)

RESIZE_MODES = ("stretch", "aspect")
RESAMPLE = {
    "nearest": Image.NEAREST,
    "box": Image.BOX,
    "bilinear": Image.BILINEAR,
    "hamming": Image.HAMMING,
    "bicubic": Image.BICUBIC,
    "lanczos": Image.LANCZOS,
}
REDUCING_GAP = 3.0  # PIL reduces by an integer factor first when shrinking > 3x (fast, same look)


def check_resize_mode(resize: str) -> str:
    if resize not in RESIZE_MODES:
        raise CnnkitError(f"unknown resize mode {resize!r}. Use 'stretch' or 'aspect'.")
    return resize


def normalization(normalize: Any, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """Mean/std for a ``normalize`` option: "imagenet" | "tf" | "none" | (mean, std);
    ``"dataset"`` -> None (it must be measured on the training split)."""
    if isinstance(normalize, str):
        presets = {
            "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
            "tf": (TF_MEAN, TF_STD),
            "none": ((0.0,) * 3, (1.0,) * 3),
        }
        if normalize == "dataset":
            return None
        if normalize not in presets:
            raise CnnkitError(
                f"unknown normalize={normalize!r}. Use 'dataset', 'imagenet', 'none', 'tf' or a (mean, std) pair."
            )
        mean, std = presets[normalize]
        if channels == 1:  # one gray channel: the average of the three

            def gray(v: tuple[float, ...]) -> tuple[float]:
                return (v[0],) if len(set(v)) == 1 else (round(sum(v) / 3, 4),)

            return gray(mean), gray(std)
        return mean, std
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


def resize_image(
    image: Image.Image, size: tuple[int, int], resize: str = "stretch", resample: str = "bilinear"
) -> Image.Image:
    """Resize to ``size`` = (H, W): ``"stretch"`` the whole image, or ``"aspect"``: scale the
    shorter side to fit and centre-crop the longer one (seed 003's AspectAwarePreprocessor)."""
    h, w = size
    if image.size == (w, h):
        return image
    filt = RESAMPLE[resample]
    if resize == "aspect":
        scale = max(h / image.height, w / image.width)
        new_w, new_h = max(w, round(image.width * scale)), max(h, round(image.height * scale))
        image = image.resize((new_w, new_h), filt, reducing_gap=REDUCING_GAP)
        left, top = (new_w - w) // 2, (new_h - h) // 2
        return image.crop((left, top, left + w, top + h))
    return image.resize((w, h), filt, reducing_gap=REDUCING_GAP)


def center_crop(x: Any, size: tuple[int, int]) -> Any:
    """The centre (h, w) patch of an array or tensor (..., H, W); the same rounding everywhere."""
    height, width = x.shape[-2:]
    top, left = (height - size[0]) // 2, (width - size[1]) // 2
    return x[..., top : top + size[0], left : left + size[1]]


@contextmanager
def one_thread(enabled: bool = True) -> Iterator[None]:
    """Run small CPU tensor ops on one thread (when ``enabled``).

    For a batch-sized op, waking torch's thread pool costs more than it saves; on a busy
    machine (more runnable threads than cores) each parallel op waits for every pool thread
    to be scheduled and the difference is 10-40x (measured with bench/bench_loader.py).
    """
    threads = torch.get_num_threads()
    if not enabled or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


NORMALIZE_CHUNK = 1 << 18  # elements (1 MB of float32): a chunk is cast, scaled and shifted in L2


def normalize(
    x: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    scale: float = 1 / 255,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(x * scale - mean) / std`` per channel of an (N, C, H, W) or (C, H, W) batch.

    Pixels are cast into the float32 result (``out`` when given, e.g. a reused or shared
    buffer), then scaled and shifted in place. On the CPU a batch goes through in chunks of
    about 1 MB, so the second and third passes hit the cache instead of memory: ~2x faster
    than one pass per op, ~4x faster than a broadcast ``addcmul`` on a 64 x 3 x 224 x 224
    uint8 batch (bench/bench_loader.py). ``scale``: 1/255 for 0..255 pixels, 1 for [0, 1].
    """
    shape = (-1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=x.device).view(shape)
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(shape)
    a, b = scale / s, m / s
    if out is None:
        out = torch.empty(x.shape, dtype=torch.float32, device=x.device)
    if x.dim() < 4 or x.device.type != "cpu":
        return out.copy_(x).mul_(a).sub_(b)
    step = max(1, NORMALIZE_CHUNK // max(1, x[0].numel()))
    with one_thread():  # chunk-sized ops: waking a thread pool costs more than it saves
        for i in range(0, len(x), step):
            out[i : i + step].copy_(x[i : i + step]).mul_(a).sub_(b)
    return out


def load_pixels(
    source: ImageInput,
    size: tuple[int, int] | None,
    channels: int,
    resize: str = "stretch",
    resample: str = "bilinear",
    name: str | None = None,
    max_pixels: int | None = None,
) -> np.ndarray:
    """Decode, orient, convert and resize one image; uint8 (C, H, W). ``size=None``: as is.

    JPEGs much larger than ``size`` are decoded at a reduced DCT scale (PIL ``draft``),
    several times faster than a full decode followed by shrinking.
    """
    label = describe_source(source, name)
    image = array_to_image(source) if isinstance(source, np.ndarray) else open_image(source, name, max_pixels)
    try:
        if size is not None and image.format == "JPEG":
            draft = (max(size),) * 2 if resize == "aspect" or is_sideways(image) else (size[1], size[0])
            image.draft("L" if channels == 1 else "RGB", draft)
        image.load()  # decode now, so a truncated file fails here and not in the model
        image = ImageOps.exif_transpose(image) or image
        image = convert_mode(image, channels)
        if size is not None:
            image = resize_image(image, size, resize, resample)
        array = np.asarray(image, dtype=np.uint8)
    except CnnkitError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever a damaged file makes a decoder raise: one line
        raise CnnkitError(
            f"cannot decode image {label}: {str(exc) or type(exc).__name__}. The file may be truncated or corrupt."
        ) from None
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes a normalised (C, H, W) float tensor.

    ``size`` is the model input (H, W). ``resize``: ``"stretch"`` resizes the whole image;
    ``"aspect"`` scales the shorter side to fit and centre-crops. The image is first resized
    to ``resize_size`` (H, W) when given, else to ``size / crop_pct`` (timm's convention;
    torchvision's "resize 256, crop 224" is ``crop_pct=0.875``), then the centre ``size`` is
    cut out. ``resample`` is the PIL filter name. ``mean``/``std`` on [0, 1], per channel.
    ``max_image_pixels`` (None: ``$CNNKIT_MAX_IMAGE_PIXELS``, else Pillow's 89,478,485) is a
    safety limit of this process, not part of the transform: ``to_dict`` leaves it out.

        >>> prep = Preprocess(size=(224, 224), resize="aspect", crop_pct=0.875)
        >>> prep(["cat.jpg", open("dog.png", "rb").read()]).shape  # doctest: +SKIP
        torch.Size([2, 3, 224, 224])
    """

    size: tuple[int, int] = (224, 224)
    resize: str = "stretch"
    resample: str = "bilinear"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    channels: int = 3
    crop_pct: float = 1.0
    resize_size: tuple[int, int] | None = None
    max_image_pixels: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        def fix(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        size = (self.size, self.size) if isinstance(self.size, int) else tuple(int(v) for v in self.size)
        fix("size", size)
        if self.resize_size is not None:
            rs = self.resize_size
            fix("resize_size", (rs, rs) if isinstance(rs, int) else tuple(int(v) for v in rs))
        fix("mean", tuple(float(v) for v in self.mean))
        fix("std", tuple(float(v) for v in self.std))
        check_resize_mode(self.resize)
        if self.resample not in RESAMPLE:
            raise CnnkitError(
                f"unknown resample filter {self.resample!r}. Use one of: {', '.join(RESAMPLE)}."
            )
        if self.channels not in (1, 3):
            raise CnnkitError(f"channels={self.channels} is not supported. Use 1 (grayscale) or 3 (RGB).")
        if len(self.mean) != self.channels or len(self.std) != self.channels or min(self.std) <= 0:
            raise CnnkitError(
                f"mean/std need {self.channels} values each and std > 0; got {self.mean}, {self.std}."
            )
        if not 0 < self.crop_pct <= 1:
            raise CnnkitError(f"crop_pct={self.crop_pct} must be in (0, 1], e.g. 0.875.")
        if (
            len(size) != 2
            or min(size) < 1
            or min(self.scaled_size[0] - size[0], self.scaled_size[1] - size[1]) < 0
        ):
            raise CnnkitError(f"size {size} must be positive and fit inside resize_size {self.scaled_size}.")

    @property
    def scaled_size(self) -> tuple[int, int]:
        """(H, W) the image is resized to before the centre crop to ``size``."""
        if self.resize_size is not None:
            return self.resize_size  # type: ignore[return-value]
        if self.crop_pct >= 1:
            return self.size
        return (round(self.size[0] / self.crop_pct), round(self.size[1] / self.crop_pct))

    @property
    def input_size(self) -> tuple[int, int, int]:
        """(C, H, W) of the tensors this produces (the model's input size)."""
        return (self.channels, *self.size)

    def pixels(self, image: ImageInput, name: str | None = None) -> np.ndarray:
        """One image as uint8 (C, H, W): decoded, converted, resized and centre-cropped."""
        array = load_pixels(
            image, self.scaled_size, self.channels, self.resize, self.resample, name, self.max_image_pixels
        )
        return center_crop(array, self.size) if self.scaled_size != self.size else array

    def load_one(self, image: ImageInput, name: str | None = None) -> torch.Tensor:
        """One image (path, bytes, PIL image or array) -> normalised float (C, H, W).
        ``name`` labels the image in error messages (e.g. an upload's file name)."""
        return normalize(torch.from_numpy(np.array(self.pixels(image, name))), self.mean, self.std)

    def __call__(self, images: ImageInput | Sequence[ImageInput]) -> torch.Tensor:
        """One image or a sequence of them -> (N, C, H, W) float32."""
        if isinstance(images, (str, Path, bytes, bytearray, memoryview, Image.Image)) or (
            isinstance(images, np.ndarray) and images.ndim in (2, 3)
        ):
            images = [images]
        if len(images) == 0:
            raise CnnkitError("no images given. Pass at least one image file.")
        batch = torch.from_numpy(np.stack([self.pixels(image) for image in images]))
        return normalize(batch, self.mean, self.std)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: lists for tuples, without the process-level ``max_image_pixels``."""
        out = asdict(self)
        out.pop("max_image_pixels")
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocess:
        """Inverse of :meth:`to_dict`; unknown keys (from other versions) are ignored."""
        names = {f.name for f in fields(cls)}
        known = {k: v for k, v in data.items() if k in names}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in known.items()})
