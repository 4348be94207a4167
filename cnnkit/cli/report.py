"""``cnnkit report RUN [--out FILE]``: one self-contained HTML page about a training run
(summary, curves, per-class metrics, confusion matrix, calibration, worst errors, the
doctor's advice, Grad-CAM examples; images inlined)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="one self-contained HTML report of a run")
    p.add_argument("run_dir", metavar="RUN", help="a 'cnnkit train' run directory")
    p.add_argument("--out", default=None, help="HTML file to write (default: RUN/report.html)")
    p.add_argument("--tta", default="none", choices=("none", "flip", "10crop"), help="test-time augmentation")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from cnnkit.evaluate.report import build_report

    print(f"wrote {build_report(args.run_dir, args.out, args.tta)}")
    return 0
