"""``cnnkit predict IMAGE... [--model efficientnet_lite0] [--topk 5] [--json]``: top-k labels.

Without ``--weights`` the model's shipped ImageNet weights are used (``cnnkit models`` lists
the models that have them; all offline); ``--weights PATH --classes FILE`` classifies with a
state_dict of any zoo model; ``--model runs/NAME`` uses a training run's best checkpoint,
classes and exactly its evaluation preprocessing; ``--runtime onnx`` runs the same model
through onnxruntime (an exported ``.onnx`` file, or the model exported on the fly). Each bad image (missing, not an image,
truncated, more pixels than ``--max-image-pixels``) gets one ``cnnkit: error:`` line; the
others are still classified, and the exit status is 2.
"""

from __future__ import annotations

import argparse
import json
import sys


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
    p.add_argument(
        "--max-image-pixels",
        type=int,
        default=None,
        metavar="N",
        help="refuse images with more pixels, a decompression-bomb guard "
        "(default: $CNNKIT_MAX_IMAGE_PIXELS, else 89478485 as Pillow)",
    )
    p.add_argument(
        "--runtime",
        choices=("torch", "onnx"),
        default="torch",
        help="inference runtime; onnx runs --model FILE.onnx, or exports the model on the fly",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch runtime: compile the model with torch.compile on the first batch (7-25 s once, "
        "then about 1.6x faster on a CPU; needs a C++ compiler)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="threads decoding images while the model runs (default: CPUs, at most 8)",
    )
    p.add_argument(
        "--tta",
        choices=("none", "flip", "10crop"),
        default="none",
        help="test-time augmentation: average the probabilities of the image and its mirror (flip), "
        "or of 4 corner + centre crops and their mirrors (10crop)",
    )
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
    from cnnkit.preprocess import max_image_pixels
    from cnnkit.runtime import load_runtime, predict_paths

    if args.batch_size < 1:
        raise CnnkitError(f"--batch-size must be at least 1, got {args.batch_size}.")
    if args.max_image_pixels is not None and args.max_image_pixels < 1:
        raise CnnkitError(f"--max-image-pixels must be at least 1, got {args.max_image_pixels}.")
    errors: list[tuple[str, str]] = []
    if args.workers is not None and args.workers < 1:
        raise CnnkitError(f"--workers must be at least 1, got {args.workers}.")
    loaded = load_runtime(
        args.model,
        args.runtime,
        weights=args.weights,
        classes=args.classes,
        max_image_pixels=max_image_pixels(args.max_image_pixels),
        compile=args.compile,
    )
    results = predict_paths(
        loaded,
        args.images,
        topk=args.topk,
        batch_size=args.batch_size,
        workers=args.workers,
        errors=errors,
        tta=args.tta,
    )
    if args.json:
        print(json.dumps(results, indent=2))
    elif results:
        print(format_predictions(results))
    for _, message in errors:
        print(f"cnnkit: error: {message}", file=sys.stderr)
    warn_about_training_copies(args.model, [r["image"] for r in results])
    return 2 if errors else 0


def warn_about_training_copies(model: str, images: list[str]) -> None:
    """With a run directory as ``--model``: warn about inputs that are (near-)copies of the
    run's training images - the answer for those says nothing about new photos."""
    from pathlib import Path

    from cnnkit.runs import CONFIG_FILE, Run

    if not images or not (Path(model) / CONFIG_FILE).is_file():
        return
    run = Run.load(model)
    data = run.config.get("data")
    if run.kind != "image" or not isinstance(data, str) or data.startswith("<"):
        return
    from cnnkit.evaluate import find_copies

    for pair in find_copies(images, data, run=run.path, crops=False):
        print(
            f"warning: {pair['b']} is a {pair['kind']} copy of training image {pair['a']} of this run; "
            "its answer says nothing about new photos.",
            file=sys.stderr,
        )
