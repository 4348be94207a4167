"""Batch-at-a-time loading: a seeded batch sampler, the uint8 -> normalised float pipeline,
and the in-memory dataset that slices whole batches out of one uint8 tensor.

Every loader item is a whole batch: the sampler yields ``(indices, batch_seed)`` and the
dataset returns ``(x, y)`` for all of them at once. The seed is derived from (seed, epoch,
batch number), so augmentation is reproducible whatever the number of workers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from cnnkit.data.augment import AugmentConfig
from cnnkit.data.preprocess import resize_batch
from cnnkit.data.transforms import augment_batch
from cnnkit.preprocess import center_crop, normalize, one_thread

SMALL_BATCH = 1 << 21  # elements (about 256 x 3 x 52 x 52) below which CPU transforms use one thread


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
        self.buffers = BufferPool()

    def __getstate__(self) -> dict:  # a worker gets the settings, not the main process's buffers
        return {**self.__dict__, "buffers": BufferPool()}

    def __call__(
        self, x: torch.Tensor, train: bool, generator: torch.Generator | None = None, shared: bool = False
    ) -> torch.Tensor:
        """``shared``: write the result straight into shared memory (a DataLoader worker's
        batch then reaches the main process without the copy ``share_memory_`` would make)."""
        if x.device.type == "cpu" and x.numel() < SMALL_BATCH:
            with one_thread():
                return self._transform(x, train, generator, shared)
        return self._transform(x, train, generator, shared)

    def _transform(
        self, x: torch.Tensor, train: bool, generator: torch.Generator | None, shared: bool = False
    ) -> torch.Tensor:
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
        out = None
        if x.device.type == "cpu":
            out = shared_empty(x.shape) if shared else self.buffers.empty(x.shape)
        return normalize(x, self.mean, self.std, scale, out)  # the same arithmetic as prediction


class BufferPool:
    """Float32 CPU output buffers, reused once nothing refers to them any more.

    A fresh 38 MB batch (64 x 3 x 224 x 224) costs more in page faults than the arithmetic
    that fills it - glibc maps every block over 32 MB anew. A buffer is handed out again only
    when the pool holds the sole reference to its storage (any tensor, view or numpy array of
    a batch still in use keeps a reference), so a kept batch is never overwritten.
    """

    MIN_BYTES = 1 << 22  # smaller blocks are recycled by malloc itself

    def __init__(self, size: int = 3) -> None:
        self.size = size
        self.storages: list[torch.UntypedStorage] = []

    def empty(self, shape: Sequence[int]) -> torch.Tensor:
        nbytes = int(np.prod(shape)) * 4
        use_count = getattr(torch._C, "_storage_Use_Count", None)
        if nbytes < self.MIN_BYTES or use_count is None:
            return torch.empty(tuple(shape), dtype=torch.float32)
        for storage in self.storages:
            if storage.nbytes() == nbytes and use_count(storage._cdata) == 1:
                break
        else:
            storage = torch.UntypedStorage(nbytes)
            self.storages = [*self.storages[-(self.size - 1) :], storage] if self.size > 1 else [storage]
        return torch.empty(0, dtype=torch.float32).set_(storage, 0, tuple(shape))


def shared_empty(shape: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """An uninitialised CPU tensor in shared memory, as DataLoader's own collate makes in workers."""
    numel = int(np.prod(shape))
    storage = torch.UntypedStorage._new_shared(numel * torch.empty((), dtype=dtype).element_size())
    return torch.empty(0, dtype=dtype).set_(storage, 0, tuple(shape))


def in_worker() -> bool:
    """True inside a DataLoader worker process (its batches cross to the main process)."""
    return get_worker_info() is not None


def apply_pipeline(x: torch.Tensor, pipeline: BatchPipeline | None, train: bool, seed: int) -> torch.Tensor:
    """CPU path: transform with a generator seeded for this batch (None = leave uint8).

    In a worker the result is written into shared memory directly (one pass over the batch
    less than the default hand-over; bench/bench_loader.py)."""
    if pipeline is None:
        return x
    return pipeline(x, train, torch.Generator().manual_seed(seed), shared=in_worker())


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


def memory_split_loader(
    samplers: dict[str, SeededBatchSampler],
    split: str,
    x: Any,
    y: Any,
    batch_size: int,
    seed: int,
    train: bool,
) -> DataLoader:
    """In-memory ``(x, y)`` batches of one split, through that split's seeded sampler (made on
    first use and kept in ``samplers``, so a resumed run replays the same order)."""
    sampler = samplers.setdefault(
        split, SeededBatchSampler(len(y), batch_size, shuffle=train, drop_last=train, seed=seed)
    )
    return DataLoader(MemoryBatchDataset(x, y, train, None), batch_size=None, sampler=sampler)
