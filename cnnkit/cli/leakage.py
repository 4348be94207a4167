"""``cnnkit leakage SRC [--json] [--out DIR] [--threshold BITS]``: duplicate images across splits.

Exact copies and near-duplicates (re-encoded, resized, slightly cropped) between the
train/val/test splits of an image folder, MNIST IDX or CIFAR folder; ``--run RUN`` checks
the split a training run made instead. Writes ``pairs.json`` and ``pairs.png`` (thumbnails).
"""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    from cnnkit.evaluate.leakage import MIN_SIMILARITY, THRESHOLD

    p = sub.add_parser("leakage", help="find exact and near-duplicate images across train/val/test")
    p.add_argument("source", metavar="SRC", help="image folder, MNIST/CIFAR folder, or 'digits'")
    p.add_argument(
        "--run",
        dest="run_dir",
        default=None,
        help="use this run's split.json (the split 'cnnkit train' made)",
    )
    p.add_argument(
        "--threshold",
        type=int,
        default=THRESHOLD,
        help=f"max hash distance in bits of 64 (default: {THRESHOLD})",
    )
    p.add_argument(
        "--min-similarity",
        type=float,
        default=MIN_SIMILARITY,
        help=f"min detail correlation to confirm a near pair (default: {MIN_SIMILARITY})",
    )
    p.add_argument("--exact-only", action="store_true", help="exact copies only (for handwritten digits)")
    p.add_argument("--no-crops", action="store_true", help="skip the crop variants (about 5x faster)")
    p.add_argument(
        "--out", default="leakage", help="folder for pairs.json and pairs.png (default: ./leakage)"
    )
    p.add_argument("--json", action="store_true", help="print the pairs as a JSON list")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cnnkit.errors import CnnkitError
    from cnnkit.evaluate.leakage import find_leaks, plot_pairs, public_pairs
    from cnnkit.evaluate.leakage_io import load_source
    from cnnkit.fileio import write_json_atomic

    if not 0 <= args.threshold <= 32:
        raise CnnkitError(f"--threshold {args.threshold} must be in 0..32 bits (default 10).")
    splits = load_source(args.source, run=args.run_dir)
    if not any(len(s.ids) for s in splits.values()):
        raise CnnkitError(f"{args.source} holds no readable images.")
    pairs = find_leaks(args.source, args.threshold, not args.no_crops, args.min_similarity, splits=splits)
    out = Path(args.out)
    write_json_atomic(out / "pairs.json", public_pairs(pairs))
    plot_pairs(pairs, splits, out / "pairs.png")
    if args.json:
        print(json.dumps(public_pairs(pairs), indent=2))
        return 0
    sizes = ", ".join(f"{name} {len(s.ids)}" for name, s in splits.items())
    exact = sum(p["kind"] == "exact" for p in pairs)
    print(f"{args.source}: {sizes} images")
    print(f"{len(pairs)} duplicate pairs ({exact} exact, {len(pairs) - exact} near)")
    for p in pairs[:20]:
        print(f"  {p['kind']:5s} d={p['distance']:2d} r={p['similarity']:.2f}  {p['a']}  <->  {p['b']}")
    if len(pairs) > 20:
        print(f"  ... {len(pairs) - 20} more in {out / 'pairs.json'}")
    print(f"wrote {out / 'pairs.json'} and {out / 'pairs.png'}")
    return 0
