"""Training a head on bottleneck features computed once (frozen backbone, no augmentation).

When nothing before the head can change - the ``features`` and ``truncate`` regimes without
``train_bn`` and without augmentation - every epoch would push the same images through the
same frozen backbone. Instead the backbone runs once over each split (in eval mode, exactly
as evaluation does) and the head trains on the stored vectors: an epoch is a few matrix
products. With :mod:`cnnkit.features` installed the vectors are also kept on disk in its
cache (keyed by model, weights, cut, preprocessing and the input tensors' content), so a
second run on the same data does not run the backbone at all.

The run still checkpoints the whole network, and its final test accuracy is measured on
the images, end to end - so a mismatch between cached and live features would show.
"""

from __future__ import annotations

import hashlib
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn

from cnnkit.data.loaders import SeededBatchSampler
from cnnkit.data.text import MemorySplitLoaders


def can_cache(plan: Any, dm: Any, config: Any) -> bool:
    """Frozen backbone, no augmentation, one process, image data."""
    return (
        plan is not None
        and plan.frozen_backbone()
        and getattr(dm, "augment", None) is None
        and str(config.devices) in ("1", "auto")
        and config.num_nodes == 1
        and hasattr(dm, "eval_preprocess")
    )


def embed(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The vector the head sees: pooled pre-logits (or the pooled stage after a cut)."""
    return model.forward_head(model.forward_features(x), pre_logits=True)


def _eval_batches(dm: Any, split: str) -> Any:
    loader = getattr(dm, "_loader", None)  # all of the split, in order, evaluation transform
    return loader(split, train=False) if loader is not None else dm.test_dataloader()


@torch.no_grad()
def embed_split(model: nn.Module, dm: Any, split: str, device: torch.device, cache: Any = None) -> tuple:
    """(features float32 (N, D), labels int64) of one split, from the disk cache when it has them."""
    batches = [(x, y) for x, y in _eval_batches(dm, split)]
    digest = hashlib.blake2b(digest_size=16)
    for x, y in batches:
        digest.update(x.numpy().tobytes())
        digest.update(y.numpy().tobytes())
    key = cache.key(split, digest.hexdigest()) if cache is not None else None
    hit = cache.read(key) if cache is not None else None
    if hit is not None:
        return torch.from_numpy(hit["embeddings"]), torch.from_numpy(hit["labels"])
    was_training = model.training
    model.eval()
    try:
        parts = []
        for x, y in batches:
            x = x.to(device)
            if x.dtype == torch.uint8:  # GPU path: the datamodule normalises on the device
                x, _ = dm.on_after_batch_transfer((x, y.to(device)), 0)
            parts.append(embed(model, x).float().cpu())
    finally:
        model.train(was_training)
    feats, labels = torch.cat(parts), torch.cat([y for _, y in batches])
    if cache is not None:
        cache.write(key, feats.numpy(), labels.numpy(), split)
    return feats, labels


class DiskCache:
    """:mod:`cnnkit.features.cache` entries for one (model, weights, cut, preprocessing)."""

    def __init__(self, model: nn.Module, config: Any, dm: Any, run_dir: Any) -> None:
        from cnnkit.features import cache

        self.cache = cache
        self.root = cache.default_cache_dir(None)  # shared between runs ($CNNKIT_FEATURES_CACHE)
        self.name = str(config.model)
        self.common = {
            "model": self.name,
            "weights": cache.weights_fingerprint(model),
            "cut": config.cut,
            "head_input": "train-engine",
            "preprocess": dm.eval_preprocess.to_dict(),
        }

    def key(self, split: str, content: str) -> str:
        return self.cache.cache_key({**self.common, "data": content})

    def read(self, key: str) -> dict[str, Any] | None:
        return self.cache.read_entry(self.cache.entry_dir(self.root, self.name, key), key)

    def write(self, key: str, feats: np.ndarray, labels: np.ndarray, split: str) -> None:
        folder = self.cache.entry_dir(self.root, self.name, key)
        meta = {k: v for k, v in self.common.items() if k != "weights"}
        self.cache.write_entry(folder, key, {"embeddings": feats, "labels": labels}, {**meta, "split": split})


def open_cache(model: nn.Module, config: Any, dm: Any, run_dir: Any) -> DiskCache | None:
    try:
        return DiskCache(model, config, dm, run_dir)
    except (ImportError, AttributeError):  # cnnkit.features absent or changed: in-memory only
        return None


class FeatureDataModule(MemorySplitLoaders, L.LightningDataModule):
    """Loaders of (feature vector, label) batches, with the image datamodule's batch size and seed."""

    def __init__(self, model: nn.Module, dm: Any, config: Any, run_dir: Any, device: torch.device) -> None:
        super().__init__()
        cache = open_cache(model, config, dm, run_dir)
        self.batch_size, self.seed = dm.batch_size, config.seed
        self.splits = {
            s: embed_split(model, dm, s, device, cache) for s in dm.split_sizes() if s in ("train", "val")
        }
        self._samplers: dict[str, SeededBatchSampler] = {}
