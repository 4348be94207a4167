"""``cnnkit lr-find [--model M] [--data SRC] [--optimizer adam] [--steps 100] [--out lr_find.png]``:
the learning-rate range test - a plot of loss against an exponentially growing learning rate,
and the suggested rate to pass to ``cnnkit train --lr``."""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lr-find", help="learning-rate range test: plot and a suggested --lr")
    p.add_argument("--model", default="lenet5", help="architecture (default: lenet5)")
    p.add_argument("--data", default="digits", help="data source, as for 'cnnkit train' (default: digits)")
    p.add_argument("--optimizer", default="adam", help="optimizer, as for 'cnnkit train' (default: adam)")
    p.add_argument("--batch-size", type=int, default=64, help="(default: 64)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="(default: 0)")
    p.add_argument("--momentum", type=float, default=0.9, help="for SGD-type optimizers (default: 0.9)")
    p.add_argument("--augment", default="none", help="augmentation, as for 'cnnkit train' (default: none)")
    p.add_argument("--start-lr", type=float, default=1e-7, help="(default: 1e-7)")
    p.add_argument("--end-lr", type=float, default=10.0, help="(default: 10)")
    p.add_argument("--steps", type=int, default=100, help="training steps in the sweep (default: 100)")
    p.add_argument("--seed", type=int, default=0, help="(default: 0)")
    p.add_argument("--out", default="lr_find.png", help="plot to write (default: ./lr_find.png)")
    p.add_argument("--json", action="store_true", help="print the sweep as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from cnnkit.evaluate.lr_find import lr_find

    result = lr_find(
        args.model, args.data, args.start_lr, args.end_lr, args.steps, args.out, optimizer=args.optimizer,
        batch_size=args.batch_size, weight_decay=args.weight_decay, momentum=args.momentum,
        augment=args.augment, seed=args.seed,
    )  # fmt: skip
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.model} with {args.optimizer}: {len(result['lrs'])} steps, lowest loss {result['min_loss']:.3f} "
          f"at lr {result['min_loss_lr']:.2g}")  # fmt: skip
    if "note" in result:
        print(result["note"])
    print(
        f"suggested learning rate: {result['suggested_lr']:.2g}  (cnnkit train --lr {result['suggested_lr']:.2g})"
    )
    print(f"wrote {result['png']}")
    return 0
