"""The result of ``cnnkit.features.extract_features``: one row per image.

A :class:`Features` record holds the embeddings (the "CNN codes" of Razavian et al. 2014,
*CNN Features off-the-shelf*) with everything needed to use them without the images: the
label, a name that finds the image again (a file path relative to the data folder, or
``"<source split>/<index>"`` for in-memory datasets), the split, the class names, and
optionally K augmented views of every row. It saves to and loads from one ``.npz`` file
(plain arrays, no pickle).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from cnnkit.errors import CnnkitError
from cnnkit.fileio import atomic_path

ARRAYS = ("embeddings", "labels", "names", "indices", "splits")


@dataclass
class Features:
    """Embeddings of a dataset and what each row is.

    ``embeddings`` float32 (N, D); ``labels`` int64 (N,); ``names`` str (N,); ``indices``
    int64 (N,) position of the row inside its split; ``splits`` str (N,) "train" | "val" |
    "test"; ``classes`` the class names (label i is ``classes[i]``); ``views`` float32
    (K, N, D) augmented views or None (rows of splits that were not augmented repeat their
    plain embedding); ``meta`` how they were made (model, weights, cut, preprocessing, cache
    keys); ``cache_hit`` True when every split came from the on-disk cache.
    """

    embeddings: np.ndarray
    labels: np.ndarray
    names: np.ndarray
    indices: np.ndarray
    splits: np.ndarray
    classes: list[str]
    views: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    cache_hit: bool = False

    def __post_init__(self) -> None:
        n = len(self.embeddings)
        for name in ARRAYS[1:]:
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} rows, embeddings {n}")
        if self.views is not None and self.views.shape[1:] != self.embeddings.shape:
            raise ValueError(f"views {self.views.shape} do not match embeddings {self.embeddings.shape}")

    def __len__(self) -> int:
        return len(self.embeddings)

    @property
    def num_features(self) -> int:
        return int(self.embeddings.shape[1])

    @property
    def num_views(self) -> int:
        return 0 if self.views is None else int(self.views.shape[0])

    @property
    def split_names(self) -> list[str]:
        """The splits present, in row order."""
        return list(dict.fromkeys(self.splits.tolist()))

    def split(self, name: str) -> Features:
        """The rows of one split (a new record; arrays are copies)."""
        mask = self.splits == name
        if not mask.any():
            raise CnnkitError(f"these features have no {name!r} split (they have {self.split_names}).")
        views = None if self.views is None else self.views[:, mask]
        arrays = {k: getattr(self, k)[mask] for k in ARRAYS}
        return replace(self, **arrays, views=views)

    @staticmethod
    def concat(parts: list[Features]) -> Features:
        """Rows of several records (same classes, same width) one after another."""
        if not parts:
            raise CnnkitError("no features to join; ask for at least one split.")
        first = parts[0]
        with_views = [p.views is not None for p in parts]
        views = None
        if any(with_views):
            k = max(p.num_views for p in parts)
            views = np.concatenate(
                [
                    p.views
                    if p.views is not None
                    else np.broadcast_to(p.embeddings, (k, *p.embeddings.shape))
                    for p in parts
                ],
                axis=1,
            )
        arrays = {name: np.concatenate([getattr(p, name) for p in parts]) for name in ARRAYS}
        return Features(
            **arrays,
            classes=list(first.classes),
            views=views,
            meta=dict(first.meta),
            cache_hit=all(p.cache_hit for p in parts),
        )

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        """Write an ``.npz`` atomically: the arrays, ``classes`` and ``meta`` (as JSON text)."""
        path = Path(path)
        payload = {name: getattr(self, name) for name in ARRAYS}
        payload["classes"] = np.asarray(self.classes, dtype=str)
        payload["meta"] = np.asarray(json.dumps(self.meta, default=str))
        if self.views is not None:
            payload["views"] = self.views
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **payload)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Features:
        """Read a file written by :meth:`save` (or ``cnnkit features --out``); never unpickles."""
        path = Path(path)
        if not path.is_file():
            raise CnnkitError(f"features file {path} does not exist. Make one with 'cnnkit features'.")
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {name: z[name] for name in ARRAYS}
                classes = z["classes"].tolist()
                meta = json.loads(str(z["meta"])) if "meta" in z else {}
                views = z["views"] if "views" in z else None
        except (OSError, ValueError, KeyError) as exc:
            raise CnnkitError(f"{path} is not a cnnkit features file ({exc}). Write it again.") from None
        return cls(**arrays, classes=classes, views=views, meta=meta)
