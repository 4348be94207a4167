"""``cnnkit export RUN|NAME --format onnx|torchscript [--out FILE]``: a model file to ship.

The preprocessing and class names go beside it in ``FILE.json``; ``cnnkit predict
--runtime onnx --model FILE.onnx`` and ``cnnkit serve --model FILE.onnx --runtime onnx``
read them back.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a zoo model or a training run to ONNX or TorchScript")
    p.add_argument(
        "model", metavar="RUN|NAME", help="a 'cnnkit train' run directory or a zoo model with weights"
    )
    p.add_argument(
        "--format", choices=("onnx", "torchscript"), default="onnx", help="file format (default: onnx)"
    )
    p.add_argument("--out", default=None, help="model file (default: RUN/model.onnx or ./NAME.onnx)")
    p.add_argument("--weights", default=None, help="state_dict file (.safetensors or .pth) for a zoo model")
    p.add_argument("--classes", default=None, help="class names, one per line (with --weights)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from cnnkit.export import export

    out = export(args.model, args.format, args.out, weights=args.weights, classes=args.classes)
    print(f"wrote {out} and {out.name}.json (classes + preprocessing)")
    return 0
