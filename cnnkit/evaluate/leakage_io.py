"""Images of a data source, split by split, as small gray thumbnails for duplicate search.

Every source the trainer reads: image folders (with ``train/ val/ test/`` or without - then
one split, ``all``), MNIST IDX files, CIFAR-10/100 batches, the embedded digits, or a dict
``{split: uint8 array}``. A run's ``split.json`` can replace the source's own splits (the
val/test splits ``cnnkit train`` carved out of a training pool).

Each image becomes a 32x32 gray uint8 thumbnail (the hashes are computed from it) and an
8-byte digest of its decoded pixels (equal digests = exact copies).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from cnnkit.errors import CnnkitError

THUMB = 32
MIN_SIDE = 16  # smaller images (8x8 digits) carry too little detail to tell a copy from a look-alike
LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


@dataclass
class SplitImages:
    """One split: identifiers (file paths or ``split:index``), thumbnails, digests, and a loader
    of the full colour image ``i`` (for the report's pictures)."""

    ids: list[str]
    thumbs: np.ndarray  # (N, 32, 32) uint8
    digests: np.ndarray  # (N,) uint64
    load: Callable[[int], np.ndarray]  # i -> (H, W, 3) uint8
    min_side: int = THUMB  # the smallest native image side (below MIN_SIDE only exact copies count)


def _resize(n: int) -> torch.Tensor:
    """(THUMB, n): the bilinear (antialiased when shrinking) 1-D resize of F.interpolate as a matrix,
    so a batch is resized with two matrix products."""
    impulses = torch.eye(n).view(n, 1, 1, n)
    rows = F.interpolate(impulses, size=(1, THUMB), mode="bilinear", align_corners=False, antialias=n > THUMB)
    return rows.view(n, THUMB).T.contiguous()


def _digest(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def array_split(name: str, x: Any, index: np.ndarray | None = None, thumbs: bool = True) -> SplitImages:
    """A uint8 (N, C, H, W) / (N, H, W) / (N, H, W, C) array (optionally a subset ``index``);
    ``thumbs=False`` skips the 32x32 thumbnails (an exact-copies-only search needs digests)."""
    t = torch.as_tensor(np.asarray(x))
    if t.dim() == 3:
        t = t[:, None]
    if t.dim() != 4:
        raise CnnkitError(f"split {name!r}: images must be N,H,W[,C] or N,C,H,W; got {tuple(t.shape)}.")
    if t.shape[1] not in (1, 3, 4) and t.shape[-1] in (1, 3, 4):
        t = t.permute(0, 3, 1, 2)
    t = t[:, :3].contiguous()
    if t.dtype != torch.uint8:
        raise CnnkitError(f"split {name!r}: pass uint8 images (0..255).")
    if index is not None:
        t = t[torch.as_tensor(index, dtype=torch.long)]
    h, w = t.shape[-2:]
    ry, rx = _resize(h), _resize(w)
    small_images = []
    for start in range(0, len(t) if thumbs else 0, 4096):
        part = t[start : start + 4096].float()
        gray = (part * LUMA).sum(1) if part.shape[1] == 3 else part[:, 0]
        small = gray if (h, w) == (THUMB, THUMB) else ry @ gray @ rx.T
        small_images.append(small.round_().clamp_(0, 255).to(torch.uint8).numpy())
    arr = t.numpy()
    digests = np.array([_digest(arr[i].tobytes()) for i in range(len(arr))], dtype=np.uint64)
    ids = [f"{name}:{int(i)}" for i in (index if index is not None else range(len(arr)))]

    def load(i: int) -> np.ndarray:
        img = arr[i].transpose(1, 2, 0)
        return np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img

    empty = np.zeros((0, THUMB, THUMB), np.uint8)
    return SplitImages(
        ids, np.concatenate(small_images) if small_images else empty, digests, load, int(min(h, w))
    )


def _open_rgb(path: Path) -> Image.Image:
    image = Image.open(path)
    image.load()
    return image.convert("RGB")


def _file_thumb(path: Path) -> tuple[np.ndarray, int] | None:
    try:
        image = _open_rgb(path)
    except (OSError, SyntaxError, ValueError):
        return None  # unreadable files are the folder scan's business, not a duplicate
    digest = _digest(f"{image.size}".encode() + image.tobytes())
    small = image.convert("L").resize((THUMB, THUMB), Image.BILINEAR, reducing_gap=3.0)
    return np.asarray(small, dtype=np.uint8), digest


def file_split(paths: list[Path], workers: int | None = None) -> SplitImages:
    """Image files, decoded in a thread pool (PIL releases the GIL while decoding)."""
    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        decoded = list(pool.map(_file_thumb, paths, chunksize=64))
    keep = [i for i, d in enumerate(decoded) if d is not None]
    kept = [paths[i] for i in keep]
    thumbs = np.stack([decoded[i][0] for i in keep]) if keep else np.zeros((0, THUMB, THUMB), np.uint8)
    digests = np.array([decoded[i][1] for i in keep], dtype=np.uint64)
    return SplitImages([str(p) for p in kept], thumbs, digests, lambda i: np.asarray(_open_rgb(kept[i])))


def load_source(
    source: Any, run: str | Path | None = None, workers: int | None = None, thumbs: bool = True
) -> dict[str, SplitImages]:
    """``{split: SplitImages}`` for a data source (see the module docstring); ``thumbs=False``:
    in-memory sources get digests only (what an exact-copies search uses)."""
    if isinstance(source, dict):
        return {str(k): array_split(str(k), v, thumbs=thumbs) for k, v in source.items()}
    from cnnkit.data.sources import (
        detect_format,
        load_cifar_data,
        load_digits_data,
        load_idx_data,
        resolve_dataset,
    )

    source = resolve_dataset(source)
    fmt = detect_format(source)
    saved = _saved_splits(run)
    if fmt == "folder":
        return _folder_source(Path(source).expanduser(), saved, workers)
    if fmt == "arrays":
        raise CnnkitError("pass arrays as a dict {split: images}, e.g. {'train': x_train, 'test': x_test}.")
    data = {"digits": load_digits_data, "idx": load_idx_data, "cifar": load_cifar_data}[fmt]
    memory = data() if fmt == "digits" else data(Path(source).expanduser())
    splits = {k: x for k, (x, _) in memory.splits.items()}
    out: dict[str, SplitImages] = {}
    if saved and saved.get("splits"):  # val/test carved from the train pool by cnnkit train
        for name, index in saved["splits"].items():
            out[name] = array_split(name, splits["train"], np.asarray(index, dtype=np.int64), thumbs)
        for name, x in splits.items():
            if name != "train" and name not in out:
                out[name] = array_split(name, x, thumbs=thumbs)
        return out
    return {name: array_split(name, x, thumbs=thumbs) for name, x in splits.items()}


def _saved_splits(run: str | Path | None) -> dict[str, Any] | None:
    if run is None:
        return None
    from cnnkit.fileio import read_json

    path = Path(run).expanduser() / "split.json"
    if not path.is_file():
        raise CnnkitError(f"{run} has no split.json; pass a 'cnnkit train' run directory.")
    return read_json(path)


def _folder_source(root: Path, saved: dict[str, Any] | None, workers: int | None) -> dict[str, SplitImages]:
    from cnnkit.data.folder import scan_folder

    if saved and saved.get("files"):
        return {
            name: file_split([root / rel for rel in rels], workers) for name, rels in saved["files"].items()
        }
    folder = scan_folder(root)
    return {
        name: file_split([root / rel for rel, _ in files], workers)
        for name, files in folder.files.items()
        if files
    }
