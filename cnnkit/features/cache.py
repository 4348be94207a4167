"""The on-disk cache of bottleneck features: keys, fingerprints, atomic entries.

An entry is valid only for the exact computation that made it, so its key hashes
everything that changes the numbers: the model name, the weights (a hash of every tensor of
the state_dict, buffers included, so a fine-tuned copy of the same architecture never reuses
its parent's entry), the cut point, the preprocessing record (``Preprocess.to_dict()``), the
number of augmented views and their augmentation, and the content of the data split (the
decoded uint8 pixels and labels of an in-memory dataset; the bytes of every file of an image
folder). Change any of them and the key changes; the stale entry is simply never read again.

Layout: ``<root>/<model>/<key[:24]>/`` holding ``embeddings.npy``, ``labels.npy``,
``names.npy``, ``indices.npy``, optional ``views.npy`` and ``meta.json``, each written
through :func:`cnnkit.fileio.atomic_path`; ``meta.json`` is written last and carries the
full key, so a half-written entry (killed process) is never taken for a complete one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from cnnkit.fileio import atomic_path, write_json_atomic

CACHE_ENV = "CNNKIT_FEATURES_CACHE"  # overrides the default cache folder
FORMAT_VERSION = 1  # bump when the way features are computed changes
_CHUNK = 1 << 20


def default_cache_dir(run_dir: str | Path | None = None) -> Path:
    """``$CNNKIT_FEATURES_CACHE``, else ``<run_dir>/features`` for a run, else
    ``~/.cache/cnnkit/features`` (``$XDG_CACHE_HOME`` respected)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if run_dir is not None:
        return Path(run_dir) / "features"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cnnkit" / "features"


def weights_fingerprint(model: nn.Module) -> str:
    """Hash of every tensor in ``model.state_dict()`` (name, dtype, shape and bytes)."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def tensor_fingerprint(*tensors: torch.Tensor | np.ndarray) -> str:
    """Hash of arrays' dtypes, shapes and bytes (in-memory image splits and their labels)."""
    digest = hashlib.blake2b(digest_size=16)
    for t in tensors:
        a = np.ascontiguousarray(t.numpy() if isinstance(t, torch.Tensor) else t)
        digest.update(f"{a.dtype}|{a.shape}\n".encode())
        digest.update(memoryview(a).cast("B"))
    return digest.hexdigest()


def files_fingerprint(root: Path, files: list[tuple[str, int]]) -> str:
    """Hash of the relative names, labels and bytes of image files (their content, not mtimes)."""
    digest = hashlib.blake2b(digest_size=16)
    for rel, label in files:
        digest.update(f"{rel}|{label}\n".encode())
        with open(root / rel, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def cache_key(parts: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``parts`` (plus the format version)."""
    text = json.dumps({"version": FORMAT_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def entry_dir(root: Path, model_name: str, key: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", model_name)[:60] or "model"
    return Path(root) / slug / key[:24]


def read_entry(folder: Path, key: str) -> dict[str, Any] | None:
    """The arrays of a complete entry made with ``key``, else None (missing, partial, damaged)."""
    meta_file = folder / "meta.json"
    try:
        meta = json.loads(meta_file.read_text())
        if meta.get("key") != key:
            return None
        out: dict[str, Any] = {"meta": meta}
        for name in meta["arrays"]:
            out[name] = np.load(folder / f"{name}.npy", allow_pickle=False)
    except (OSError, ValueError, KeyError):
        return None
    return out


def write_entry(folder: Path, key: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write the arrays, then ``meta.json`` (the completion marker), each atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        with atomic_path(folder / f"{name}.npy") as tmp, open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(array), allow_pickle=False)
    write_json_atomic(folder / "meta.json", {**meta, "key": key, "arrays": sorted(arrays)})
