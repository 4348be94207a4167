"""``cnnkit predict IMAGE... [--model efficientnet_lite0] [--topk 5] [--json]``: top-k labels.

Without ``--weights`` the model's shipped ImageNet weights are used (EfficientNet-Lite0,
offline); ``--weights PATH --classes FILE`` classifies with a state_dict of any zoo model;
``--model runs/NAME`` uses a training run's best checkpoint, classes and preprocessing.
"""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify image files: top-k labels with probabilities")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG, BMP, ...)")
    p.add_argument(
        "--model",
        default="efficientnet_lite0",
        help="architecture (default: efficientnet_lite0), or a 'cnnkit train' run directory",
    )
    p.add_argument("--topk", type=int, default=5, help="how many classes to show per image (default: 5)")
    p.add_argument("--weights", default=None, help="state_dict file (.safetensors or .pth) for --model")
    p.add_argument("--classes", default=None, help="class names, one per line (default: ImageNet's for 1000)")
    p.add_argument("--batch-size", type=int, default=16, help="images per forward pass (default: 16)")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of text")
    p.set_defaults(run=run)


def format_predictions(results: list[dict]) -> str:
    """Human-readable block per image: rank, label, probability in percent."""
    lines = []
    for item in results:
        lines.append(item["image"])
        width = max(len(t["label"]) for t in item["topk"])
        for rank, t in enumerate(item["topk"], 1):
            lines.append(f"  {rank}. {t['label']:<{width}}  {100 * t['prob']:6.2f}%  (class {t['index']})")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from cnnkit.errors import CnnkitError
    from cnnkit.predict import predict_images

    if args.batch_size < 1:
        raise CnnkitError(f"--batch-size must be at least 1, got {args.batch_size}.")
    results = predict_images(
        args.images,
        model=args.model,
        topk=args.topk,
        weights=args.weights,
        classes=args.classes,
        batch_size=args.batch_size,
    )
    print(json.dumps(results, indent=2) if args.json else format_predictions(results))
    return 0
