"""``cnnkit evaluate RUN [--data SRC] [--split test] [--tta none|flip|10crop] [--topk 5] [--out DIR]``.

Accuracy, rank-k, per-class precision/recall/F1, confusion matrix, calibration and the most
confidently wrong images of a training run, on its own test split or on new labelled data.
"""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="metrics, confusion matrix, calibration and worst errors of a run")
    p.add_argument("run_dir", metavar="RUN", help="a 'cnnkit train' run directory")
    p.add_argument("--data", default=None, help="labelled data to evaluate on (default: the run's own data)")
    p.add_argument(
        "--split", default=None, help="split to evaluate (default: test, else val / all of --data)"
    )
    p.add_argument("--tta", default="none", choices=("none", "flip", "10crop"), help="test-time augmentation")
    p.add_argument("--topk", type=int, default=5, help="rank-k accuracy to report (default: 5)")
    p.add_argument("--out", default=None, help="output folder (default: RUN/eval-<split>[-<tta>])")
    p.add_argument("--batch-size", type=int, default=128, help="images per forward pass (default: 128)")
    p.add_argument("--json", action="store_true", help="print metrics.json instead of the text report")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cnnkit.errors import CnnkitError
    from cnnkit.evaluate import evaluate_run

    if args.batch_size < 1:
        raise CnnkitError(f"--batch-size must be at least 1, got {args.batch_size}.")
    metrics = evaluate_run(
        args.run_dir,
        data=args.data,
        split=args.split,
        tta=args.tta,
        topk=args.topk,
        out=args.out,
        batch_size=args.batch_size,
    )
    if args.json:
        print(json.dumps(metrics, indent=2))
        return 0
    print(Path(metrics["files"]["report"]).read_text().rstrip())
    print(
        f"\nwrote {Path(metrics['files']['report']).parent}/: metrics.json report.txt predictions.csv "
        "confusion.png reliability.png mistakes.png"
    )
    return 0
