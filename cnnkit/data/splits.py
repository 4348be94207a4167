"""Seeded stratified splits, saved as ``split.json`` so a run can be repeated or resumed with
exactly the same train/val/test membership."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from cnnkit.errors import CnnkitError
from cnnkit.fileio import read_json
from cnnkit.runs import SPLIT_FILE


def stratified_split(
    labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, np.ndarray]:
    """Indices for train/val/test, the same class proportions in each.

    val/test get exactly ``round(N * fraction)`` images, shared out between classes in
    proportion to their sizes (largest remainders); every class keeps at least one
    training image.
    """
    for name, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= frac < 1:
            raise CnnkitError(f"{name}={frac} must be in [0, 1). Use e.g. 0.1.")
    if val_fraction + test_fraction >= 1:
        raise CnnkitError("val_fraction + test_fraction must leave something to train on. Lower them.")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    val_counts = _apportion(counts, val_fraction)
    test_counts = _apportion(counts, test_fraction)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for cls, n_val, n_test in zip(classes, val_counts, test_counts, strict=True):
        idx = np.flatnonzero(labels == cls)
        idx = idx[rng.permutation(len(idx))]
        while n_val + n_test >= len(idx) and (n_val or n_test):  # keep one for training
            if n_test >= n_val:
                n_test -= 1
            else:
                n_val -= 1
        parts["val"].append(idx[:n_val])
        parts["test"].append(idx[n_val : n_val + n_test])
        parts["train"].append(idx[n_val + n_test :])
    return {k: np.sort(np.concatenate(v)).astype(np.int64) for k, v in parts.items()}


def _apportion(counts: np.ndarray, fraction: float) -> list[int]:
    """Per-class shares summing to exactly round(total * fraction) (largest remainders)."""
    exact = counts * fraction
    shares = np.floor(exact).astype(int)
    missing = int(round(counts.sum() * fraction)) - int(shares.sum())
    if missing > 0:
        shares[np.argsort(-(exact - shares), kind="stable")[:missing]] += 1
    return [int(s) for s in shares]


def load_split(run_dir: Path | None, source: str) -> dict[str, list] | None:
    """A previously saved split of the same source from ``run_dir/split.json``, else None."""
    if run_dir is None:
        return None
    path = Path(run_dir) / SPLIT_FILE
    if not path.is_file():
        return None
    try:
        saved = read_json(path)
    except CnnkitError:  # a damaged split file: make a fresh split
        return None
    if saved.get("source") != source:
        return None
    return saved.get("splits")


def split_key(
    source: str, labels: np.ndarray, names: list[str] | None, val_fraction: float, test_fraction: float
) -> str:
    """The key a saved split must carry to be reused: the same data (label sequence and, for
    folders, file names) and the same fractions; anything else gets a fresh split."""
    digest = hashlib.sha1(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    digest.update("\n".join(names or []).encode())
    return f"{source}:n={len(labels)}:val={val_fraction}:test={test_fraction}:{digest.hexdigest()[:12]}"


def carve_splits(
    labels: np.ndarray,
    missing: list[str],
    key: str,
    run_dir: Path | None,
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> dict[str, np.ndarray]:
    """Indices into the train pool for "train" and the ``missing`` splits: the split saved
    in ``run_dir`` under ``key`` when there is one (a resumed run), else a fresh stratified one."""
    if not missing:
        return {}
    saved = load_split(run_dir, key)
    if saved is not None and all(s in saved for s in ["train", *missing]):
        return {s: np.asarray(saved[s], dtype=np.int64) for s in ["train", *missing]}
    made = stratified_split(
        labels,
        val_fraction if "val" in missing else 0.0,
        test_fraction if "test" in missing else 0.0,
        seed,
    )
    return {s: made[s] for s in ["train", *missing]}
