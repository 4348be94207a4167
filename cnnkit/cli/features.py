"""``cnnkit features MODEL|RUN DATA --out feats.npz [--cut STAGE] [--split all]``: CNN codes.

Embeds every image of DATA (``digits``, an image folder, MNIST IDX or CIFAR batches) with a
zoo model's shipped weights or a ``cnnkit train`` run, and writes one ``.npz`` (atomically):
``embeddings`` (N, D) float32, ``labels``, ``names`` (file paths, or ``split/index``),
``indices``, ``splits``, ``classes``, optional ``views`` and ``meta`` (JSON). The backbone
runs once per (model, weights, cut, preprocessing, data): repeats come from the cache.
Read the file back with ``cnnkit.features.Features.load``.
"""

from __future__ import annotations

import argparse
import dataclasses


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("features", help="embed a dataset with a frozen backbone (cached CNN codes)")
    p.add_argument(
        "model", metavar="MODEL|RUN", help="zoo model with weights (efficientnet_lite0) or a run directory"
    )
    p.add_argument(
        "data", metavar="DATA", help="'digits', an image folder, an MNIST IDX or CIFAR batches folder"
    )
    p.add_argument("--out", required=True, help="the .npz file to write")
    p.add_argument(
        "--weights", default=None, help="weights tag or checkpoint file for MODEL (default: shipped)"
    )
    p.add_argument(
        "--cut", default=None, help="stage to cut at (see 'cnnkit stages MODEL'; default: pre-logits)"
    )
    p.add_argument(
        "--split", default="all", choices=["train", "val", "test", "all"], help="which split (default: all)"
    )
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default: 64)")
    p.add_argument("--image-size", type=int, default=None, help="input side in pixels (default: the model's)")
    p.add_argument("--views", type=int, default=0, help="also cache K augmented views of the train split")
    p.add_argument("--augment", default="default", help="augmentation of the views (preset or knobs)")
    p.add_argument(
        "--limit", type=int, default=None, help="only the first N images of each split (MNIST/CIFAR)"
    )
    p.add_argument(
        "--cache-dir", default=None, help="feature cache (default: $CNNKIT_FEATURES_CACHE or ~/.cache)"
    )
    p.add_argument("--no-cache", action="store_true", help="compute without reading or writing the cache")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from cnnkit.errors import CnnkitError
    from cnnkit.features import extract_features, load_backbone

    if args.batch_size < 1:
        raise CnnkitError(f"--batch-size must be at least 1, got {args.batch_size}.")
    if args.image_size is not None and args.image_size < 1:
        raise CnnkitError(f"--image-size must be at least 1, got {args.image_size}.")
    backbone = load_backbone(args.model, weights=args.weights)
    pre = backbone.preprocess
    if args.image_size is not None:
        side = args.image_size
        pre = dataclasses.replace(pre, size=(side, side), resize_size=None)
    data_kwargs = {"limit": args.limit} if args.limit is not None else {}
    feats = extract_features(
        backbone,
        args.data,
        cut=args.cut,
        preprocess=pre,
        split=args.split,
        batch_size=args.batch_size,
        views=args.views,
        augment=args.augment,
        cache_dir=False if args.no_cache else args.cache_dir,
        progress=not args.quiet,
        **data_kwargs,
    )
    path = feats.save(args.out)
    sizes = ", ".join(f"{s}={info['rows']}" for s, info in feats.meta["splits"].items())
    hit = "cache hit" if feats.cache_hit else "computed"
    print(
        f"wrote {path}: {len(feats)} x {feats.num_features} embeddings ({backbone.name}, "
        f"{args.cut or 'pre-logits'}, {pre.size[0]}x{pre.size[1]}), {len(feats.classes)} classes, {sizes}; {hit}"
    )
    return 0
