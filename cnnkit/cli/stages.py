"""``cnnkit stages MODEL``: the named stages of a network, the names ``--cut`` / ``--freeze`` take.

One row per stage (timm's ``feature_info``): its name, channels, stride, output shape at
the model's input size (or ``--input-size``), parameters and trainable parameters; then
the head. The default CAM / Grad-CAM layer is named underneath.
"""

from __future__ import annotations

import argparse
import json

from cnnkit.cli.summary import parse_size, resolve_size
from cnnkit.errors import CnnkitError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stages", help="the stages of a model: channels, stride, shape, parameters")
    p.add_argument("model", help="architecture name (see 'cnnkit models')")
    p.add_argument("--input-size", type=parse_size, default=None, help="CxHxW (default: the model's own)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from cnnkit.models.registry import create_model, model_info
    from cnnkit.summary import format_shape, summary

    info = model_info(args.model)
    if info.kind != "image":
        raise CnnkitError(f"{args.model} is a {info.kind} model; stages are defined for image models.")
    size = resolve_size(info, args.input_size)
    with torch.device("meta"):  # shapes and counts only: no weights are allocated
        model = create_model(args.model, input_size=size)
    result = summary(model, size)
    if not result.stages:
        raise CnnkitError(f"{args.model} has no convolutional stages (it is an MLP on flattened pixels).")
    if args.json:
        print(
            json.dumps({"model": args.model, "cam_layer": model.cam_layer, "stages": result.stages}, indent=2)
        )
        return 0
    header = f"{'stage':<16} {'module':<16} {'channels':>8} {'stride':>6}  {'output':<18} {'params':>12} {'trainable':>12}"
    print(f'Model: "{args.model}"  input {format_shape((None, *result.input_size))}')
    print(header)
    print("-" * len(header))
    for r in result.stages:
        chans = "" if r["num_chs"] is None else str(r["num_chs"])
        stride = "" if r.get("reduction") is None else str(r["reduction"])
        print(
            f"{r['name']:<16} {r['module']:<16} {chans:>8} {stride:>6}  {format_shape(r['output_shape']):<18} "
            f"{r['params']:>12,} {r['trainable']:>12,}"
        )
    print(
        f"CAM layer: {model.cam_layer}; cut or freeze at a stage by its name (e.g. --cut {result.stages[len(result.stages) // 2]['name']})."
    )
    return 0
