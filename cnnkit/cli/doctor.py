"""``cnnkit doctor RUN [--json]``: diagnose a training run from its curves (under/overfitting,
learning rate, plateau) and say what to change."""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="diagnose a run: under/overfitting, learning rate, plateau; advice")
    p.add_argument("run_dir", metavar="RUN", help="a 'cnnkit train' run directory")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from cnnkit.evaluate.doctor import diagnose, format_findings

    findings = diagnose(args.run_dir)
    print(json.dumps([f.to_dict() for f in findings], indent=2) if args.json else format_findings(findings))
    return 0
