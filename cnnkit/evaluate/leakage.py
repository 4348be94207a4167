"""Train/val/test leakage: exact and near-duplicate images across splits (``find_leaks``).

Testing on images the model trained on measures nothing, and public datasets have them:
Barz & Denzler ("Do We Train on Test Data? Purging CIFAR of Near-Duplicates", 2020) found
3.3% of the CIFAR-10 test images duplicated in its training set.

Method:

1. exact copies - equal 64-bit digests of the decoded pixels;
2. near copies - DCT perceptual hashes (pHash: the 8x8 lowest frequencies of a 32x32 gray
   thumbnail against their median; Zauner, "Implementation and Benchmarking of Perceptual
   Image Hash Functions", 2010) within ``threshold`` bits (Hamming distance, vectorised
   XOR + popcount). pHash survives re-encoding and resizing; for crops, each image also
   gets the hashes of six crops of itself (90% at the centre and four corners, 80% at the
   centre), compared against the other split's full-image hashes in both directions;
3. every near candidate is confirmed by the Pearson correlation of the two (aligned)
   32x32 thumbnails after a high-pass (each minus its 5x5 local mean; ``min_similarity``,
   0.5): copies share their fine detail, unrelated images with the same coarse layout (a
   ship on a horizon) do not. On CIFAR-10 the hash alone at 10 bits gives ~1,400
   train/test candidates; looking at them, most below 0.4 are look-alikes and most above
   0.5 are copies (also colour-shifted or slightly shifted ones).

Limitation: handwritten digits (MNIST) defeat any perceptual hash - two different upright
"1"s are as alike as a copy - so on such data the near pairs are mostly look-alikes; use
exact copies only there (``near=False``, ``cnnkit leakage --exact-only``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cnnkit.errors import CnnkitError
from cnnkit.evaluate.leakage_io import MIN_SIDE, THUMB, SplitImages, load_source

THRESHOLD = 10  # bits of 64
MIN_SIMILARITY = 0.5
MAX_MATCHES = 5  # an image "near" more images than this is a look-alike (a handwritten 1), not a copy
# (scale, top, left) of the crop variants, as fractions of the thumbnail side: the centred
# 90% crop, the four 90% corner crops and the centred 80% crop.
CROPS = [
    (0.9, 0.05, 0.05),
    *((0.9, top, left) for top in (0.0, 0.1) for left in (0.0, 0.1)),
    (0.8, 0.1, 0.1),
]
_SPLIT_ORDER = {"train": 0, "val": 1, "test": 2, "all": 3}


def _dct_matrix(n: int = 32) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None]
    return torch.cos(torch.pi * (2 * i + 1) * k / (2 * n))


def _resize_matrix(n: int, out: int = 32) -> torch.Tensor:
    """(out, n): the 1-D antialiased bilinear resize that F.interpolate applies, as a matrix."""
    impulses = torch.eye(n, dtype=torch.float32).view(n, 1, 1, n)
    rows = F.interpolate(impulses, size=(1, out), mode="bilinear", align_corners=False, antialias=out < n)
    return rows.view(n, out).T.double()


def _low_dct(n: int) -> torch.Tensor:
    """(8, n): crop side n -> resize to 32 -> the 8 lowest DCT rows, folded into one matrix."""
    resize = torch.eye(32, dtype=torch.float64) if n == THUMB else _resize_matrix(n)
    return (_dct_matrix() @ resize)[:8].float()


def _crop_box(scale: float, top: float, left: float) -> tuple[int, int, int]:
    n = round(THUMB * scale)
    return n, min(round(THUMB * top), THUMB - n), min(round(THUMB * left), THUMB - n)


def _small(thumbs: torch.Tensor) -> torch.Tensor:
    """The whole thumbnail as a float (N, 32, 32) image."""
    return thumbs.float()


def _crop(thumbs: torch.Tensor, scale: float, top: float, left: float) -> torch.Tensor:
    """The crop variant as a (N, 32, 32) image (for the similarity check and pictures)."""
    n, y, x = _crop_box(scale, top, left)
    r = _resize_matrix(n).float()
    return r @ thumbs[:, y : y + n, x : x + n].float() @ r.T


def _bits(coeffs: torch.Tensor) -> np.ndarray:
    flat = coeffs.reshape(-1, 64)
    bits = (flat > flat.median(dim=1, keepdim=True).values).numpy()
    return np.packbits(bits, axis=1).view(">u8").reshape(-1).astype(np.uint64)


def phash(gray32: torch.Tensor) -> np.ndarray:
    """(N, 32, 32) float gray images -> (N,) uint64 DCT perceptual hashes."""
    d = _dct_matrix().float()[:8]
    return _bits(d @ gray32.float() @ d.T)


def hashes(split: SplitImages, crops: bool = True) -> dict[str, np.ndarray]:
    """``full`` (N,) and, with ``crops``, ``crops`` (N, len(CROPS)) uint64 hashes of a split.

    Each hash is two small matrix products on the 32x32 thumbnail: crop, resize to 32x32
    and the 8x8 low-frequency DCT are one (8, n) matrix per side."""
    boxes = [(THUMB, 0, 0)] + ([_crop_box(*c) for c in CROPS] if crops else [])
    mats = {n: _low_dct(n) for n, _, _ in boxes}
    columns: list[list[np.ndarray]] = [[] for _ in boxes]
    for start in range(0, len(split.thumbs), 8192):
        t = torch.from_numpy(split.thumbs[start : start + 8192]).float()
        for k, (n, y, x) in enumerate(boxes):
            m = mats[n]
            columns[k].append(_bits(m @ t[:, y : y + n, x : x + n] @ m.T))
    joined = [np.concatenate(c) if c else np.zeros(0, np.uint64) for c in columns]
    out = {"full": joined[0]}
    if crops:
        out["crops"] = (
            np.stack(joined[1:], axis=1) if len(split.thumbs) else np.zeros((0, len(CROPS)), np.uint64)
        )
    return out


def hamming_pairs(a: np.ndarray, b: np.ndarray, threshold: int, same: bool = False) -> np.ndarray:
    """All (i, j, distance) with popcount(a[i] ^ b[j]) <= threshold; ``same``: only i < j.

    XOR + popcount, four rows of ``a`` against all of ``b`` at a time into preallocated
    buffers that stay in cache: about 2 ns per pair on one core (5e8 pairs in ~1 s)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((0, 3), np.int64)
    rows = 4
    x = np.empty((rows, len(b)), np.uint64)
    d = np.empty((rows, len(b)), np.uint8)
    hit = np.empty((rows, len(b)), bool)
    found = []
    for start in range(0, len(a), rows):
        k = min(rows, len(a) - start)
        np.bitwise_xor(a[start : start + k, None], b[None, :], out=x[:k])
        np.bitwise_count(x[:k], out=d[:k])
        np.less_equal(d[:k], threshold, out=hit[:k])
        if hit[:k].any():
            i, j = np.nonzero(hit[:k])
            found.append(np.stack([i + start, j, d[i, j]], axis=1).astype(np.int64))
    pairs = np.concatenate(found) if found else np.zeros((0, 3), np.int64)
    return pairs[pairs[:, 0] < pairs[:, 1]] if same else pairs


def _high_pass(x: torch.Tensor) -> torch.Tensor:
    """(M, 32, 32) minus its 5x5 local mean: the detail that separates a copy from a look-alike."""
    return x - F.avg_pool2d(x[:, None], 5, 1, 2, count_include_pad=False)[:, 0]


def _similarity(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Row-wise Pearson correlation of the high-passed (M, 32, 32) batches."""
    x, y = _high_pass(x).flatten(1), _high_pass(y).flatten(1)
    x, y = x - x.mean(1, keepdim=True), y - y.mean(1, keepdim=True)
    return (x * y).sum(1) / (x.norm(dim=1) * y.norm(dim=1)).clamp_min(1e-6)


def _confirm(
    sa: SplitImages, sb: SplitImages, pairs: np.ndarray, crop_a: int | None, crop_b: int | None
) -> np.ndarray:
    """Similarity of each candidate (i, j): crop ``crop_a`` of a[i] (None = whole) vs b[j] likewise."""
    out = []
    for start in range(0, len(pairs), 4096):
        p = pairs[start : start + 4096]
        ta = torch.from_numpy(sa.thumbs[p[:, 0]])
        tb = torch.from_numpy(sb.thumbs[p[:, 1]])
        xa = _small(ta) if crop_a is None else _crop(ta, *CROPS[crop_a])
        xb = _small(tb) if crop_b is None else _crop(tb, *CROPS[crop_b])
        out.append(_similarity(xa, xb).numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def _split_pairs(names: list[str]) -> list[tuple[str, str]]:
    names = sorted(names, key=lambda n: (_SPLIT_ORDER.get(n, 9), n))
    if len(names) == 1:
        return [(names[0], names[0])]  # no splits yet: any duplicate would leak once split
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]


def find_leaks(
    source: Any,
    threshold: int = THRESHOLD,
    crops: bool = True,
    min_similarity: float = MIN_SIMILARITY,
    run: str | Path | None = None,
    splits: dict[str, SplitImages] | None = None,
    max_matches: int = MAX_MATCHES,
    near: bool = True,
) -> list[dict[str, Any]]:
    """Duplicate pairs across the splits of ``source`` (within the one split if it has no others).

    ``source``: an image folder, MNIST IDX / CIFAR folder, ``"digits"``, or ``{split: uint8
    images}``; ``run``: use that run's ``split.json`` membership instead of the source's
    splits (the split ``cnnkit train`` made). Returns a list of ``{"a", "b", "kind":
    "exact"|"near", "distance": bits, "similarity", "split_a", "split_b", "crop": bool}``,
    exact copies first, then by distance; ``a``/``b`` are file paths or ``split:index``.
    Images smaller than 16 pixels a side (the 8x8 digits) are checked for exact copies only,
    and an image with more than ``max_matches`` near matches is taken for a look-alike (on
    MNIST every upright "1" is "near" hundreds of others): its near pairs are dropped.
    ``near=False`` looks for exact copies only.
    """
    splits = splits if splits is not None else load_source(source, run=run, thumbs=near)
    hashed = {name: hashes(s, crops) for name, s in splits.items()} if near else {}
    found: dict[tuple[str, int, str, int], dict[str, Any]] = {}
    for name_a, name_b in _split_pairs(list(splits)):
        sa, sb, ha, hb = splits[name_a], splits[name_b], hashed.get(name_a), hashed.get(name_b)
        same = name_a == name_b
        # 1. exact: equal pixel digests
        index_b: dict[int, list[int]] = {}
        for j, d in enumerate(sb.digests.tolist()):
            index_b.setdefault(d, []).append(j)
        for i, d in enumerate(sa.digests.tolist()):
            for j in index_b.get(d, []):
                if not same or i < j:
                    found[(name_a, i, name_b, j)] = _record(
                        sa, sb, name_a, name_b, i, j, "exact", 0, 1.0, False
                    )
        # 2. near: full vs full, then crops of one vs the whole of the other, both ways
        searches = []  # exact copies only, or 8x8 digits: every near match would be a look-alike
        if ha is not None and hb is not None and min(sa.min_side, sb.min_side) >= MIN_SIDE:
            searches.append((ha["full"], hb["full"], None, None, same))
        if searches and crops:
            for c in range(len(CROPS)):
                searches.append((ha["crops"][:, c], hb["full"], c, None, False))
                searches.append((ha["full"], hb["crops"][:, c], None, c, False))
        for qa, qb, ca, cb, upper in searches:
            pairs = hamming_pairs(qa, qb, threshold, same=upper)
            if same and not upper:
                pairs = pairs[pairs[:, 0] != pairs[:, 1]]
            if not len(pairs):
                continue
            sim = _confirm(sa, sb, pairs, ca, cb)
            for (i, j, dist), s in zip(pairs.tolist(), sim.tolist(), strict=True):
                if s < min_similarity:
                    continue
                if same and i > j:
                    i, j = j, i
                key = (name_a, i, name_b, j)
                old = found.get(key)
                if old is None or (old["kind"] == "near" and dist < old["distance"]):
                    found[key] = _record(
                        sa, sb, name_a, name_b, i, j, "near", dist, s, ca is not None or cb is not None
                    )
    near_count: dict[tuple[str, int], int] = {}
    for (name_a, i, name_b, j), rec in found.items():
        if rec["kind"] == "near":
            near_count[(name_a, i)] = near_count.get((name_a, i), 0) + 1
            near_count[(name_b, j)] = near_count.get((name_b, j), 0) + 1
    kept = [
        rec
        for (name_a, i, name_b, j), rec in found.items()
        if rec["kind"] == "exact" or max(near_count[(name_a, i)], near_count[(name_b, j)]) <= max_matches
    ]
    order = sorted(kept, key=lambda r: (r["kind"] != "exact", r["distance"], -r["similarity"]))
    return order


def _record(
    sa: SplitImages,
    sb: SplitImages,
    name_a: str,
    name_b: str,
    i: int,
    j: int,
    kind: str,
    dist: int,
    sim: float,
    crop: bool,
) -> dict[str, Any]:
    return {
        "a": sa.ids[i],
        "b": sb.ids[j],
        "kind": kind,
        "distance": int(dist),
        "similarity": round(float(sim), 4),
        "split_a": name_a,
        "split_b": name_b,
        "crop": crop,
        "_index": (i, j),
    }


def public_pairs(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pairs without internal keys (for JSON)."""
    return [{k: v for k, v in p.items() if not k.startswith("_")} for p in pairs]


def plot_pairs(
    pairs: list[dict[str, Any]], splits: dict[str, SplitImages], path: str | Path, limit: int = 24
) -> Path:
    """The first ``limit`` pairs side by side (a | b), titled with kind, distance and similarity."""
    from cnnkit.evaluate.plots import new_figure, save_figure

    shown = pairs[:limit]
    rows = max(1, -(-len(shown) // 2))
    fig = new_figure(10, 2.4 * rows + 0.6)
    axes = np.atleast_1d(fig.subplots(rows, 4, squeeze=False)).ravel()
    for ax in axes:
        ax.axis("off")
    if not shown:
        axes[0].text(0, 0.5, "no duplicates found", fontsize=14, va="center")
    for k, pair in enumerate(shown):
        i, j = pair["_index"]
        for side, (split, idx, name) in enumerate(
            ((pair["split_a"], i, pair["a"]), (pair["split_b"], j, pair["b"]))
        ):
            ax = axes[2 * k + side]
            image = splits[split].load(idx)
            ax.imshow(image, interpolation="nearest" if max(image.shape[:2]) < 64 else "antialiased")
            label = name if len(name) <= 28 else "..." + name[-25:]
            ax.set_title(label, fontsize=7)
        axes[2 * k].text(
            1.02,
            -0.08,
            f"{pair['kind']} d={pair['distance']} r={pair['similarity']:.2f}",
            transform=axes[2 * k].transAxes,
            fontsize=7,
            ha="center",
            va="top",
        )
    fig.suptitle(f"{len(pairs)} duplicate pairs across splits (first {len(shown)})")
    fig.tight_layout()
    return save_figure(fig, path)


def find_copies(
    images: list[str | Path], source: Any, run: str | Path | None = None, split: str = "train", **options: Any
) -> list[dict[str, Any]]:
    """Which of the image files ``images`` are (near-)copies of ``split`` images of ``source``.

    For ``cnnkit predict`` on a run: ``find_copies(paths, run.config["data"], run=run.path)``
    (the run's own training split, from its split.json). Returns the pairs of
    :func:`find_leaks` with ``a`` = the training image and ``b`` = the input file.
    """
    from cnnkit.evaluate.leakage_io import file_split

    reference = load_source(source, run=run)
    if split not in reference:
        raise CnnkitError(f"{source} has no {split!r} split; it has {', '.join(reference)}.")
    inputs = file_split([Path(p) for p in images])
    pairs = find_leaks(None, splits={split: reference[split], "input": inputs}, **options)
    return public_pairs(pairs)
