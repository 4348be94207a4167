"""``cnnkit ensemble RUN1 RUN2 ... [--method mean|vote|weighted|stack|all] [--json]``: combine
trained runs and compare the ensemble with each member on the same test split."""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ensemble", help="combine runs (mean, vote, weighted, stacking) on one test split")
    p.add_argument("runs", nargs="+", metavar="RUN", help="two or more 'cnnkit train' run directories")
    p.add_argument("--method", default="all", choices=("all", "mean", "vote", "weighted", "stack"))
    p.add_argument("--split", default="test", help="split to report on (default: test; weights fit on val)")
    p.add_argument("--out", default=None, help="also write the JSON summary to this file")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from cnnkit.evaluate.ensemble import METHODS, ensemble_runs, format_ensemble
    from cnnkit.fileio import write_json_atomic

    methods = METHODS if args.method == "all" else (args.method,)
    report = ensemble_runs(args.runs, methods, args.split)
    if args.out:
        write_json_atomic(args.out, report)
    print(json.dumps(report, indent=2) if args.json else format_ensemble(report))
    return 0
