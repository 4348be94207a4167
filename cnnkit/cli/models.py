"""``cnnkit models [PATTERN]``: every architecture with its exact size and cost."""

from __future__ import annotations

import argparse
import json

from cnnkit.models.registry import model_info
from cnnkit.summary import human_count


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the architectures with parameters, MACs and references")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'resnet*'")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.set_defaults(run=run)


def model_table(pattern: str = "*") -> list[dict]:
    """One dict per model: name, family, params and MACs at the default size, reference."""
    from cnnkit.models.registry import list_models

    rows = []
    names = list_models(pattern)
    sizes = _params_and_macs(names)
    for name in names:
        info = model_info(name)
        params, macs = sizes[name]
        rows.append(
            {
                "name": name,
                "family": info.family,
                "params": params,
                "macs": macs,
                "input_size": list(info.input_size),
                "num_classes": info.num_classes,
                "reference": info.reference,
                "ref_params": info.ref_params,
                "weights": list(info.weights),
            }
        )
    return rows


def _params_and_macs(names: list[str]) -> dict[str, tuple[int, int]]:
    """Parameters and MACs at the default size, each model built on the *meta* device:
    shapes only, no weights, no arithmetic - all architectures take seconds, not the
    minute a real forward pass of each cost on two CPU cores (so no cache is needed)."""
    import torch

    from cnnkit.models.registry import create_model
    from cnnkit.summary import count_params, summary

    result = {}
    for name in names:
        with torch.device("meta"):
            model = create_model(name)
        result[name] = (count_params(model), summary(model, stages=False).total_macs)
    return result


def run(args: argparse.Namespace) -> int:
    from cnnkit.errors import CnnkitError
    from cnnkit.models.registry import list_models

    if not list_models(args.pattern):
        raise CnnkitError(f"no model matches {args.pattern!r}; run 'cnnkit models' to see them all.")
    rows = model_table(args.pattern)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = (
        f"{'model':<24} {'params':>13} {'MACs':>10} {'input':>11} {'classes':>7}  {'weights':<9} reference"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        size = "x".join(map(str, r["input_size"]))
        print(
            f"{r['name']:<24} {r['params']:>13,} {human_count(r['macs']):>10} {size:>11} "
            f"{r['num_classes']:>7}  {','.join(r['weights']) or '-':<9} {r['reference']}"
        )
    with_weights = sum(bool(r["weights"]) for r in rows)
    print(
        f"{len(rows)} architectures, {with_weights} with pretrained weights (create_model(name, pretrained=True))"
    )
    return 0
