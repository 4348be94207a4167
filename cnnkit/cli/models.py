"""``cnnkit models [PATTERN]``: every architecture with its exact size and cost."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

from cnnkit.models.registry import model_info, skip_weight_init
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
            }
        )
    return rows


def _cache_path() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "cnnkit" / "model-table.json"


def _source_key(name: str) -> str:
    """A model's sizes change only when its code does: hash the family's source file and
    the modules every count passes through, plus the torch version."""
    import torch

    modules = (model_info(name).builder.__module__, "cnnkit.models.layers", "cnnkit.summary", "cnnkit.models")
    digest = hashlib.sha256(torch.__version__.encode())
    for f in [sys.modules[m].__file__ for m in modules] + [__file__]:
        digest.update(Path(f).read_bytes())
    return digest.hexdigest()[:16]


def _params_and_macs(names: list[str]) -> dict[str, tuple[int, int]]:
    """Parameters and MACs at the default size, measured once and cached on disk: a
    forward pass of all architectures costs most of a minute on two CPU cores."""
    from cnnkit.models.registry import create_model
    from cnnkit.summary import count_params, summary

    path = _cache_path()
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    result, changed = {}, False
    for i, name in enumerate(names):
        key = _source_key(name)
        hit = cache.get(name)
        if hit and hit.get("key") == key:
            result[name] = (hit["params"], hit["macs"])
            continue
        print(f"measuring {name} ({i + 1}/{len(names)}; cached afterwards)...", file=sys.stderr)
        with skip_weight_init():
            model = create_model(name)
        result[name] = (count_params(model), summary(model).total_macs)
        cache[name] = {"key": key, "params": result[name][0], "macs": result[name][1]}
        changed = True
    if changed:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(cache, indent=1))
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only home just means no cache
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
    header = f"{'model':<24} {'params':>13} {'MACs':>10} {'input':>11} {'classes':>7}  reference"
    print(header)
    print("-" * len(header))
    for r in rows:
        size = "x".join(map(str, r["input_size"]))
        print(
            f"{r['name']:<24} {r['params']:>13,} {human_count(r['macs']):>10} {size:>11} "
            f"{r['num_classes']:>7}  {r['reference']}"
        )
    print(f"{len(rows)} architectures")
    return 0
