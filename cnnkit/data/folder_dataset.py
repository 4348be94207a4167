"""Batches from image files: PIL decoding in DataLoader workers, or reads from a one-time
cache of resized uint8 images in a memory-mapped ``.npy`` file.

The cache is built once (at setup, the "first epoch" of decoding) into a temp file that is
renamed into place only when complete, so an interrupted build never leaves a half cache;
every later epoch - and later runs with the same files and size - read the memmap and never
decode a JPEG again. Files that fail to decode while building are reported as skipped.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from cnnkit.data.loaders import BatchPipeline, apply_pipeline
from cnnkit.fileio import atomic_path, read_json, write_json_atomic
from cnnkit.preprocess import load_pixels

log = logging.getLogger(__name__)
DECODE_VERSION = 2


class DecodeCounter:
    """How many images this process decoded (the tests use it to prove cache reads)."""

    count = 0


class FolderBatchDataset(Dataset):
    """Whole batches of images from files (decoded here) or from the cache (rows ``cache_rows``)."""

    def __init__(
        self,
        root: Path,
        files: list[str],
        labels: np.ndarray,
        size: tuple[int, int],
        channels: int,
        resize: str,
        train: bool,
        pipeline: BatchPipeline | None,
        cache_path: Path | None = None,
        cache_rows: np.ndarray | None = None,
    ) -> None:
        self.root, self.files, self.labels = (
            Path(root),
            list(files),
            torch.as_tensor(labels, dtype=torch.long),
        )
        self.size, self.channels, self.resize = size, channels, resize
        self.train, self.pipeline = train, pipeline
        self.cache_path, self.cache_rows = cache_path, cache_rows
        self._cache: np.ndarray | None = None  # opened lazily in each worker (memmaps don't pickle)

    def __len__(self) -> int:
        return len(self.files)

    def decode(self, i: int) -> np.ndarray:
        """Decode file i; a file that fails now (it passed the scan) is replaced by the next one."""
        for attempt in range(len(self.files)):
            j = (i + attempt) % len(self.files)
            try:
                DecodeCounter.count += 1
                return load_pixels(self.root / self.files[j], self.size, self.channels, self.resize)
            except Exception as exc:  # noqa: BLE001 - never hand a broken sample to the model
                warnings.warn(f"skipping unreadable image {self.files[j]}: {exc}", stacklevel=2)
        raise RuntimeError("no readable image left in this split")

    def read(self, indices: np.ndarray) -> torch.Tensor:
        if self.cache_path is not None:
            if self._cache is None:
                self._cache = np.load(self.cache_path, mmap_mode="r")
            # one gather, no sort-and-scatter: after the first epoch the rows are in the page cache
            return torch.from_numpy(np.take(self._cache, self.cache_rows[indices], axis=0))
        return torch.from_numpy(np.stack([self.decode(int(i)) for i in indices]))

    def __getitem__(self, item: tuple[np.ndarray, int]) -> tuple[torch.Tensor, torch.Tensor]:
        indices, seed = item
        x = self.read(np.asarray(indices, dtype=np.int64))
        return apply_pipeline(x, self.pipeline, self.train, seed), self.labels[torch.as_tensor(indices)]


def cache_key(root: Path, files: list[str], size: tuple[int, int], channels: int, resize: str) -> str:
    """Changes whenever a file, its size or mtime, or the decode settings change."""
    # DECODE_VERSION: bump when decoding changes (v2: EXIF orientation, 16-bit scaling)
    digest = hashlib.sha1(f"{DECODE_VERSION}|{Path(root).resolve()}|{size}|{channels}|{resize}".encode())
    for rel in files:
        st = (Path(root) / rel).stat()
        digest.update(f"{rel}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _keep(item):  # noqa: ANN001, ANN202 - collate that leaves one decoded item alone
    return item


class _DecodeOne(Dataset):
    def __init__(self, root: Path, files: list[str], size, channels, resize) -> None:  # noqa: ANN001
        self.root, self.files, self.size, self.channels, self.resize = root, files, size, channels, resize

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray | None, str]:
        try:
            return i, load_pixels(self.root / self.files[i], self.size, self.channels, self.resize), ""
        except Exception as exc:  # noqa: BLE001
            return i, None, f"cannot decode ({type(exc).__name__}: {exc})"


def build_cache(
    root: Path,
    files: list[str],
    size: tuple[int, int],
    channels: int,
    resize: str,
    cache_dir: Path,
    num_workers: int,
) -> tuple[Path, list[int], list[str]]:
    """Decode every file once into ``cache_dir/cnnkit-cache-<key>.npy`` (reused when present).

    Returns (path, indices of files that failed to decode, their reasons).
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = cache_key(root, files, size, channels, resize)
    path = cache_dir / f"cnnkit-cache-{key}.npy"
    meta_path = path.with_suffix(".json")
    if path.is_file() and meta_path.is_file():
        meta = read_json(meta_path)
        return path, meta["bad"], meta["reasons"]
    bad, reasons = [], []
    loader = DataLoader(
        _DecodeOne(root, files, size, channels, resize),
        batch_size=None,
        num_workers=num_workers,
        collate_fn=_keep,
    )
    log.info("caching %d images at %dx%d into %s", len(files), size[0], size[1], path)
    with atomic_path(path) as tmp:  # complete or absent: an interrupted build leaves nothing
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(files), channels, *size))
        for i, image, reason in loader:
            if image is None:
                bad.append(i)
                reasons.append(reason)
            else:
                array[i] = image
        array.flush()
        del array
    write_json_atomic(meta_path, {"files": len(files), "bad": bad, "reasons": reasons})
    return path, bad, reasons
