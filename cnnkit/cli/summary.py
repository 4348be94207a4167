"""``cnnkit summary NAME [--input-size 3x224x224]``: the Keras-style layer table, stages marked."""

from __future__ import annotations

import argparse
import json
import sys

from cnnkit.errors import CnnkitError


def parse_size(text: str) -> tuple[int, ...]:
    """'3x224x224', '3,224,224' or '224' (square, channels from the model) -> a tuple."""
    parts = text.replace(",", "x").lower().split("x")
    try:
        dims = tuple(int(p) for p in parts if p)
    except ValueError:
        raise CnnkitError(f"cannot read input size {text!r}; write it as CxHxW, e.g. 3x224x224.") from None
    if not dims or any(d < 1 for d in dims):
        raise CnnkitError(f"input size {text!r} must be positive numbers, e.g. 3x224x224.")
    return dims


def resolve_size(info: object, size: tuple[int, ...] | None) -> tuple[int, ...] | None:
    """A parsed ``--input-size`` completed with the model's channels: 224 -> 3x224x224."""
    if size is None or info.kind != "image":  # type: ignore[attr-defined]
        return size
    channels = info.input_size[0]  # type: ignore[attr-defined]
    if len(size) == 1:
        return (channels, size[0], size[0])
    if len(size) == 2:
        return (channels, *size)
    if len(size) != 3:
        raise CnnkitError(f"input size {size} should be CxHxW, e.g. 3x224x224.")
    return size


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("summary", help="layer-by-layer table: output shapes, parameters, MACs")
    p.add_argument("model", help="architecture name (see 'cnnkit models')")
    p.add_argument("--input-size", type=parse_size, default=None, help="CxHxW (default: the model's own)")
    p.add_argument(
        "--num-classes", type=int, default=None, help="classes of the head (default: the reference)"
    )
    p.add_argument("--depth", type=int, default=None, help="fold layers below this nesting depth")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument(
        "--diagram",
        default=None,
        metavar="FILE",
        help="also draw the architecture (top-level blocks) to FILE.svg/.png",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from cnnkit.models.registry import create_model, model_info
    from cnnkit.summary import summary

    size = resolve_size(model_info(args.model), args.input_size)
    with torch.device("meta"):  # the table needs shapes, not weights
        model = create_model(args.model, num_classes=args.num_classes, input_size=size)
    result = summary(model, size, depth=args.depth)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result)
    if args.diagram:
        from cnnkit.explain.diagram import save_architecture

        print(f"architecture diagram -> {save_architecture(model, args.diagram, size)}", file=sys.stderr)
    return 0
