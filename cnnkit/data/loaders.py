"""Batch-at-a-time loading: a seeded batch sampler, the uint8 -> normalised float pipeline,
and the in-memory dataset that slices whole batches out of one uint8 tensor.

Every loader item is a whole batch: the sampler yields ``(indices, batch_seed)`` and the
dataset returns ``(x, y)`` for all of them at once. The seed is derived from (seed, epoch,
batch number), so augmentation is reproducible whatever the number of workers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from cnnkit.data.augment import AugmentConfig
from cnnkit.data.preprocess import resize_batch
from cnnkit.data.transforms import augment_batch, center_crop

SMALL_BATCH = 1 << 21  # elements (about 256 x 3 x 52 x 52) below which CPU transforms use one thread


@contextmanager
def one_thread() -> Iterator[None]:
    """Run small CPU tensor ops on one thread.

    For a batch-sized op, waking torch's thread pool costs more than it saves; on a busy
    machine (more runnable threads than cores) each parallel op waits for every pool thread
    to be scheduled and the difference is 10-40x (measured with bench/bench_loader.py).
    """
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class SeededBatchSampler(Sampler):
    """Yields ``(indices, batch_seed)``; shuffles with a generator seeded by (seed, epoch).

    The epoch advances by one at each ``iter()``; Lightning's ``set_epoch`` overrides it.
    """

    def __init__(self, n: int, batch_size: int, shuffle: bool, drop_last: bool, seed: int) -> None:
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        # Dropping a ragged last batch only when there is more than one batch: a tiny
        # dataset must still give a batch.
        self.drop_last = drop_last and n > batch_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[np.ndarray, int]]:
        epoch = self.epoch
        self.epoch += 1
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.n) if self.shuffle else np.arange(self.n)
        for b in range(len(self)):
            batch_seed = int(np.random.default_rng([self.seed, epoch, b]).integers(2**62))
            yield order[b * self.batch_size : (b + 1) * self.batch_size], batch_seed


class BatchPipeline:
    """uint8 (N, C, H, W) -> float32 resized, augmented (train) and normalised, on x's device."""

    def __init__(
        self,
        image_size: tuple[int, int] | None,
        resize: str,
        augment: AugmentConfig | None,
        mean: Sequence[float],
        std: Sequence[float],
    ) -> None:
        self.image_size, self.resize, self.augment = image_size, resize, augment
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(
        self, x: torch.Tensor, train: bool, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        if x.device.type == "cpu" and x.numel() < SMALL_BATCH:
            with one_thread():
                return self._transform(x, train, generator)
        return self._transform(x, train, generator)

    def _transform(self, x: torch.Tensor, train: bool, generator: torch.Generator | None) -> torch.Tensor:
        augmenting = train and self.augment is not None
        crop = self.augment.random_crop if self.augment is not None else None
        if not augmenting and crop is not None and self.image_size is None:
            x = center_crop(x, crop)  # on uint8, before the float copy
            crop = None
        scale = 1.0 / 255.0
        if augmenting or self.image_size is not None:  # these steps need [0, 1] floats
            x = resize_batch(x.float().mul_(scale), self.image_size, self.resize)
            scale = 1.0
            if augmenting:
                if generator is None:
                    generator = torch.Generator(device=x.device)
                    generator.seed()
                x = augment_batch(x, self.augment, generator)
            elif crop is not None:
                x = center_crop(x, crop)
        # (x * scale - mean) / std as one fused multiply-add: one pass over the batch.
        std = torch.tensor(self.std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
        mean = torch.tensor(self.mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
        return torch.addcmul(-mean / std, x.to(torch.float32).contiguous(), scale / std)


def apply_pipeline(x: torch.Tensor, pipeline: BatchPipeline | None, train: bool, seed: int) -> torch.Tensor:
    """CPU path: transform with a generator seeded for this batch (None = leave uint8)."""
    if pipeline is None:
        return x
    return pipeline(x, train, torch.Generator().manual_seed(seed))


class MemoryBatchDataset(Dataset):
    """Whole batches sliced out of an in-memory uint8 tensor (no per-image Python)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, train: bool, pipeline: BatchPipeline | None) -> None:
        self.x, self.y, self.train, self.pipeline = x, y, train, pipeline

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, item: tuple[np.ndarray, int]) -> tuple[torch.Tensor, torch.Tensor]:
        indices, seed = item
        idx = torch.from_numpy(np.asarray(indices, dtype=np.int64))
        with one_thread():  # a gather of one batch: thread wake-ups would cost more than the copy
            x, y = self.x[idx], self.y[idx]
        return apply_pipeline(x, self.pipeline, self.train, seed), y
