"""The 1,000 ImageNet-1k (ILSVRC 2012) class names, shipped with the package.

Line i + 1 of ``cnnkit/data/imagenet_classes.txt`` is class i, in the standard order of
torchvision and most pretrained models (0 ``tench`` ... 999 ``toilet tissue``). Two names
occur twice, as in the original list: ``crane`` (134 the bird, 517 the machine) and
``maillot`` (638, 639). The 118 dog breeds are the contiguous block :data:`DOG_CLASSES`
(151 ``Chihuahua`` .. 268 ``Mexican hairless``).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

NUM_IMAGENET_CLASSES = 1000
DOG_CLASSES = range(151, 269)  # the dog breeds of ImageNet-1k


@lru_cache(maxsize=1)
def _load() -> tuple[str, ...]:
    text = resources.files("cnnkit").joinpath("data", "imagenet_classes.txt").read_text(encoding="utf-8")
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(names) != NUM_IMAGENET_CLASSES:  # a damaged install, not a user error
        raise RuntimeError(f"imagenet_classes.txt holds {len(names)} names, expected {NUM_IMAGENET_CLASSES}")
    return names


def imagenet_classes() -> list[str]:
    """The 1,000 class names, index = class id (a fresh list each call)."""
    return list(_load())
