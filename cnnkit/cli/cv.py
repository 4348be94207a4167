"""``cnnkit cv --folds K [--model M] [--data SRC] [train options]``: stratified K-fold
cross-validation; every fold's run under one parent folder, mean ± std of each metric."""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cv", help="stratified K-fold cross-validation: mean ± std of each metric")
    p.add_argument("--folds", type=int, default=5, help="number of folds (default: 5)")
    p.add_argument("--model", default="lenet5", help="architecture (default: lenet5)")
    p.add_argument("--data", default="digits", help="data source, as for 'cnnkit train' (default: digits)")
    p.add_argument("--epochs", type=int, default=10, help="epochs per fold (default: 10)")
    p.add_argument("--batch-size", type=int, default=64, help="(default: 64)")
    p.add_argument("--optimizer", default="adam", help="(default: adam)")
    p.add_argument("--lr", type=float, default=None, help="(default: the optimizer's usual rate)")
    p.add_argument("--augment", default="default", help="(default: default)")
    p.add_argument("--seed", type=int, default=0, help="folds and training seed (default: 0)")
    p.add_argument("--out", default=None, help="parent folder of the fold runs (default: runs/cv-...)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from cnnkit.evaluate.cv import cross_validate, format_cv

    summary = cross_validate(
        args.model, args.data, args.folds, args.out, epochs=args.epochs, batch_size=args.batch_size,
        optimizer=args.optimizer, lr=args.lr, augment=args.augment, seed=args.seed, verbose=0,
    )  # fmt: skip
    print(json.dumps(summary, indent=2) if args.json else format_cv(summary))
    if not args.json:
        print(f"wrote {summary['path']}/cv.json and fold-1 .. fold-{args.folds}")
    return 0
