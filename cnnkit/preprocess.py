"""One preprocessing path for inference: file/bytes/PIL image -> the tensor a model expects.

:class:`Preprocess` is a record (size, resize mode, filter, mean/std, channels) that lives
next to the weights it belongs to (``cnnkit.models`` weights records) and in every run
directory, and is applied the same way by training's evaluation path, ``cnnkit predict``
and the server. No Lightning here: importing this module is cheap.

Constants are on the [0, 1] scale, one value per channel.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# TensorFlow's (x - 127) / 128 on 0..255 pixels (EfficientNet-Lite, MobileNet TF releases).
TF_MEAN = (127 / 255,) * 3
TF_STD = (128 / 255,) * 3


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes a normalised (C, H, W) float tensor.

    ``size`` is the model input (H, W). ``resize``: ``"stretch"`` resizes the whole image to
    ``size``; ``"aspect"`` scales the shorter side to fit and centre-crops. ``crop_pct`` < 1
    (timm's convention) first resizes to ``size / crop_pct`` and then centre-crops ``size``
    (torchvision's "resize 256, crop 224" is ``crop_pct=0.875``).
    ``resample`` is the PIL filter name. ``mean``/``std`` on [0, 1], per channel.
    """

    size: tuple[int, int] = (224, 224)
    resize: str = "stretch"
    resample: str = "bilinear"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    channels: int = 3
    crop_pct: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocess:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in known.items()})
