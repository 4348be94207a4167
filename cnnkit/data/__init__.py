"""Data for cnnkit: sources, batched augmentation, loaders and caching.

    >>> from cnnkit.data import build_datamodule
    >>> dm = build_datamodule("digits", batch_size=64, augment="default")
    >>> x, y = next(iter(dm.train_dataloader()))   # float32 (64, 1, 8, 8), normalised; int64
    >>> dm.eval_preprocess                         # the same evaluation transform, for new files

Sources: ``"digits"`` (embedded), image folders, MNIST-format IDX files, CIFAR-10/100
python batches, ``(x, y)`` arrays. See :func:`build_datamodule`. The names below are loaded
on first use, so ``cnnkit.data.sources`` or ``cnnkit.data.augment`` can be imported without
Lightning (only the datamodule needs it).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "AugmentConfig": "cnnkit.data.augment",
    "CnnkitDataModule": "cnnkit.data.datamodule",
    "build_datamodule": "cnnkit.data.datamodule",
    "IMAGENET_MEAN": "cnnkit.preprocess",
    "IMAGENET_STD": "cnnkit.preprocess",
    "Preprocess": "cnnkit.preprocess",
    "ten_crop": "cnnkit.data.preprocess",
    "preprocess_images": "cnnkit.data.preprocess",
    "augment_batch": "cnnkit.data.transforms",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cnnkit.data' has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
