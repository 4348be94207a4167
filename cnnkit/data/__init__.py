"""Data for cnnkit: sources, preprocessing, batched augmentation and caching.

    >>> from cnnkit.data import build_datamodule
    >>> dm = build_datamodule("digits", batch_size=64, augment="default")
    >>> x, y = next(iter(dm.train_dataloader()))   # float32 (64, 1, 8, 8), normalised; int64

Sources: ``"digits"`` (embedded), image folders, MNIST-format IDX files, CIFAR-10/100
python batches, ``(x, y)`` arrays. See :func:`build_datamodule`.
"""

from cnnkit.data.augment import AugmentConfig
from cnnkit.data.datamodule import CnnkitDataModule, build_datamodule
from cnnkit.data.preprocess import IMAGENET_MEAN, IMAGENET_STD, preprocess_images, ten_crop
from cnnkit.data.transforms import augment_batch

__all__ = [
    "AugmentConfig",
    "CnnkitDataModule",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "augment_batch",
    "build_datamodule",
    "preprocess_images",
    "ten_crop",
]
