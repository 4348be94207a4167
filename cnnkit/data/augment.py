"""What augmentation to apply: :class:`AugmentConfig`, its presets and its text form.

The knobs are those of Keras' ``ImageDataGenerator`` (seed 001/002) plus the random erasing
of Zhong et al. 2017 (seed 002, ``get_random_eraser``) and the random patch crop of the
AlexNet recipe (seed 003, ``PatchPreprocessor``: 256 -> 227). The config is plain data;
:mod:`cnnkit.data.transforms` applies it to a whole batch at once.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
from dataclasses import dataclass, fields
from typing import Any

from cnnkit.errors import CnnkitError

FILL_MODES = {"nearest": "border", "constant": "zeros", "reflect": "reflection"}


@dataclass
class AugmentConfig:
    """Random transformations of training images (all off by default = identity).

    Geometry (one affine warp per image, Keras semantics):
      ``rotation_range`` degrees, angle ~ U(-r, r), positive = counter-clockwise;
      ``width_shift_range`` / ``height_shift_range`` fractions of the width / height;
      ``shear_range`` shear angle in degrees, ~ U(-s, s);
      ``zoom_range`` float z -> scale ~ U(1-z, 1+z) per axis, or (lo, hi); as in Keras a
      scale < 1 zooms in (the sampling grid shrinks);
      ``horizontal_flip`` / ``vertical_flip`` flip with probability 1/2;
      ``fill_mode`` "nearest" | "constant" | "reflect" for pixels that come from outside
      the image, ``cval`` the constant in [0, 1] units.
    Photometric: ``brightness_range`` (lo, hi) multiplies the image by U(lo, hi);
      ``channel_shift_range`` adds U(-r, r) to each channel, in 0..255 pixel units as in Keras.
    Random erasing (Zhong et al. 2017): with probability ``random_erasing`` one rectangle of
      area fraction ~ U(``erasing_area``) and aspect ratio ~ U(r1, 1/r1)
      (r1 = ``erasing_aspect``) is replaced by random values in ``erasing_values`` ([0, 1]
      units), one per pixel when ``erasing_pixel_level`` else one per rectangle.
    ``random_crop``: (h, w) or an int, a random patch of that size is cut out of every
      training image (evaluation images get the centre patch), e.g. 227 out of 256.
    ``pad_crop``: p pixels, pad each image by p on every side (with ``fill_mode``/``cval``)
      and cut a random patch of its own size: whole-pixel shifts of up to p, no interpolation.
      This is the 4-pixel pad and random crop of He et al. 2015 Sec. 4.2 (torchvision's
      ``RandomCrop(32, padding=4)``); the float shifts above resample bilinearly, which blurs
      every training image a little and costs a point on CIFAR-10.
    """

    rotation_range: float = 0.0
    width_shift_range: float = 0.0
    height_shift_range: float = 0.0
    shear_range: float = 0.0
    zoom_range: float | tuple[float, float] = 0.0
    horizontal_flip: bool = False
    vertical_flip: bool = False
    fill_mode: str = "nearest"
    cval: float = 0.0
    brightness_range: tuple[float, float] | None = None
    channel_shift_range: float = 0.0
    random_erasing: float = 0.0
    erasing_area: tuple[float, float] = (0.02, 0.4)
    erasing_aspect: float = 0.3
    erasing_values: tuple[float, float] = (0.0, 1.0)
    erasing_pixel_level: bool = True
    random_crop: int | tuple[int, int] | None = None
    pad_crop: int = 0

    def __post_init__(self) -> None:
        if self.fill_mode not in FILL_MODES:
            raise CnnkitError(f"unknown fill_mode {self.fill_mode!r}. Use one of: {', '.join(FILL_MODES)}.")
        if isinstance(self.zoom_range, (int, float)):
            if not 0 <= self.zoom_range < 1:
                raise CnnkitError(f"zoom_range={self.zoom_range} must be in [0, 1). Use e.g. 0.1.")
        else:
            self.zoom_range = _pair(self.zoom_range, "zoom_range")
        if self.brightness_range is not None:
            self.brightness_range = _pair(self.brightness_range, "brightness_range")
        self.erasing_area = _pair(self.erasing_area, "erasing_area")
        self.erasing_values = _pair(self.erasing_values, "erasing_values")
        if not 0 <= self.random_erasing <= 1:
            raise CnnkitError(
                f"random_erasing={self.random_erasing} is a probability. Use a value in [0, 1]."
            )
        if not 0 < self.erasing_aspect <= 1:
            raise CnnkitError(f"erasing_aspect={self.erasing_aspect} must be in (0, 1]. Use e.g. 0.3.")
        if self.random_crop is not None:
            crop = self.random_crop
            crop = (crop, crop) if isinstance(crop, int) else tuple(int(v) for v in crop)
            if len(crop) != 2 or min(crop) < 1:
                raise CnnkitError(f"random_crop={self.random_crop!r} must be a size h,w. Use e.g. 227.")
            self.random_crop = crop
        if int(self.pad_crop) != self.pad_crop or self.pad_crop < 0:
            raise CnnkitError(f"pad_crop={self.pad_crop!r} must be a whole number of pixels. Use e.g. 4.")
        self.pad_crop = int(self.pad_crop)

    @property
    def zoom_bounds(self) -> tuple[float, float]:
        z = self.zoom_range
        return (1 - z, 1 + z) if isinstance(z, (int, float)) else tuple(z)  # type: ignore[return-value]

    @property
    def has_affine(self) -> bool:
        """Whether a (non-flip) geometric warp is needed; flips alone are done exactly."""
        return bool(
            self.rotation_range
            or self.width_shift_range
            or self.height_shift_range
            or self.shear_range
            or self.zoom_bounds != (1.0, 1.0)
        )

    @property
    def is_identity(self) -> bool:
        return self == AugmentConfig(fill_mode=self.fill_mode, cval=self.cval)

    def to_dict(self) -> dict[str, Any]:
        """The knobs as JSON-friendly values (for the run directory)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def preset(cls, name: str, channels: int = 3) -> AugmentConfig:
        """A named preset; ``default`` depends on the channel count.

        * ``default``: 1 channel (digits, MNIST-like): rotation 10 deg, shifts 0.1, zoom 0.1,
          no flips (a flipped 2 is not a 2); 3 channels (natural images): horizontal flip and
          shifts 0.1 with reflected borders (the classic CIFAR recipe).
        * ``light``: shifts 0.1 (plus horizontal flip for 3 channels).
        * ``strong``: the seed's ImageDataGenerator recipe scaled for small images: rotation 15,
          shifts 0.15, shear 10, zoom 0.15, random erasing 0.5; 3 channels add flip, brightness
          0.8..1.2 and channel shift 20.
        """
        natural = channels >= 3
        if name == "default":
            if natural:
                return cls(
                    width_shift_range=0.1, height_shift_range=0.1, horizontal_flip=True, fill_mode="reflect"
                )
            return cls(
                rotation_range=10,
                width_shift_range=0.1,
                height_shift_range=0.1,
                zoom_range=0.1,
                fill_mode="constant",
            )
        if name == "light":
            return cls(
                width_shift_range=0.1,
                height_shift_range=0.1,
                horizontal_flip=natural,
                fill_mode="reflect" if natural else "constant",
            )
        if name == "strong":
            extra: dict[str, Any] = (
                dict(
                    horizontal_flip=True,
                    brightness_range=(0.8, 1.2),
                    channel_shift_range=20.0,
                    fill_mode="reflect",
                )
                if natural
                else dict(fill_mode="constant")
            )
            return cls(
                rotation_range=15,
                width_shift_range=0.15,
                height_shift_range=0.15,
                shear_range=10,
                zoom_range=0.15,
                random_erasing=0.5,
                **extra,
            )
        if name in ("none", "off", ""):
            return cls()
        raise CnnkitError(f"unknown augmentation preset {name!r}. Use default, light, strong or none.")

    @classmethod
    def from_dict(cls, knobs: dict[str, Any], base: AugmentConfig | None = None) -> AugmentConfig:
        """Build from a dict of knobs (on top of ``base``); unknown knobs are a clear error."""
        names = [f.name for f in fields(cls)]
        for key in knobs:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise CnnkitError(f"unknown augmentation knob {key!r}.{hint} Known: {', '.join(names)}.")
        values = dataclasses.asdict(base) if base is not None else {}
        values.update(knobs)
        return cls(**values)

    @classmethod
    def parse(cls, text: str, channels: int = 3) -> AugmentConfig:
        """Parse the CLI form: ``"rotation_range=10,horizontal_flip=true,zoom_range=(0.9,1.1)"``.

        A leading preset name is allowed and the rest override it: ``"default,zoom_range=0"``.
        """
        parts = [p.strip() for p in split_top_level(text) if p.strip()]
        base: AugmentConfig | None = None
        if parts and "=" not in parts[0]:
            base = cls.preset(parts.pop(0).lower(), channels)
        knobs: dict[str, Any] = {}
        for part in parts:
            if "=" not in part:
                raise CnnkitError(
                    f"augmentation item {part!r} is not knob=value. Write e.g. rotation_range=10."
                )
            key, raw = (s.strip() for s in part.split("=", 1))
            knobs[key] = parse_value(raw)
        return cls.from_dict(knobs, base)


def resolve_augment(spec: Any, channels: int) -> AugmentConfig | None:
    """None | preset name | "knob=value,..." | dict | AugmentConfig  ->  AugmentConfig or None."""
    if spec is None or spec is False:
        return None
    if isinstance(spec, AugmentConfig):
        config = spec
    elif isinstance(spec, dict):
        config = AugmentConfig.from_dict(spec)
    elif isinstance(spec, str):
        config = AugmentConfig.parse(spec, channels)
    elif spec is True:
        config = AugmentConfig.preset("default", channels)
    else:
        raise CnnkitError(
            f"augment={spec!r} is not understood. Use None, a preset name, a dict or AugmentConfig."
        )
    return None if config.is_identity else config


def _pair(value: Any, name: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise CnnkitError(f"{name}={value!r} must be a pair (lo, hi). Write e.g. {name}=(0.8,1.2).") from None
    if lo > hi:
        raise CnnkitError(f"{name}=({lo}, {hi}) has lo > hi. Swap the two values.")
    return (lo, hi)


def split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside brackets, so tuples survive ("a=1,b=(2,3)" -> 2 parts).
    The one parser of ``key=value,...`` option strings (augmentation, schedule and model options)."""
    parts, depth, current = [], 0, []
    for char in text:
        depth += char in "(["
        depth -= char in ")]"
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def parse_value(raw: str) -> Any:
    """``true/yes/on``, ``false/no/off``, ``none/null``, a Python literal, else the bare word."""
    lowered = raw.lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw  # a bare word such as fill_mode=reflect
