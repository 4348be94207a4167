"""``cnnkit train``: train a zoo model and write a run directory.

With no arguments it trains LeNet-5 on the embedded 8x8 digits (resized to 28x28) and
prints the test accuracy - about 98%, in seconds on a laptop CPU. Every option maps to
a field of :class:`cnnkit.train.TrainConfig`; options left out keep its defaults (or,
with ``--resume``, the saved run's values).
"""

from __future__ import annotations

import argparse

from cnnkit.train.config import MONITORS, OPTIMIZERS, PRECISIONS, SCHEDULES, parse_options


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model (default: LeNet-5 on the embedded digits) and write a run directory",
        description="Train a zoo model on a dataset; writes runs/<model>-<data>-<time>/ "
        "(config, checkpoints, metrics.csv, curves.png, results.json).",
    )
    add = p.add_argument
    add("--data", default=None, help="'digits' (default), an image folder, an MNIST or CIFAR folder")
    add("--model", default=None, help="architecture name (default lenet5; see 'cnnkit models')")
    add("--epochs", type=int, default=None, help="epochs to train (default 10)")
    add("--batch-size", type=int, default=None, help="images per step and process (default 64)")
    add("--optimizer", default=None, metavar="NAME", help=f"one of {', '.join(OPTIMIZERS)} (default adam)")
    add(
        "--lr",
        type=float,
        default=None,
        help="learning rate (default: the optimizer's; x10 peak for onecycle)",
    )
    add("--momentum", type=float, default=None, help="momentum of the momentum/nesterov optimizers (0.9)")
    add("--weight-decay", type=float, default=None, help="L2 weight decay (default 0)")
    add(
        "--schedule",
        default=None,
        metavar="NAME",
        help=f"LR schedule: {', '.join(SCHEDULES)} (default onecycle)",
    )
    add(
        "--schedule-options",
        type=parse_options,
        default=None,
        metavar="K=V,...",
        help="e.g. step_size=5,gamma=0.5",
    )
    add(
        "--augment",
        default=None,
        help="'default' (default), 'light', 'strong', 'none', or knobs: rotation_range=10,...",
    )
    add(
        "--label-smoothing", type=float, default=None, help="label smoothing of the training loss (default 0)"
    )
    add("--seed", type=int, default=None, help="random seed: same seed, same run on CPU (default 0)")
    add(
        "--image-size",
        default=None,
        metavar="HxW",
        help="train at this size (default: the data's if the model takes it, else the model's)",
    )
    add("--val-fraction", type=float, default=None, help="share of the training pool for validation (0.1)")
    add(
        "--test-fraction",
        type=float,
        default=None,
        help="share held out for testing when no test split (0.1)",
    )
    add(
        "--monitor",
        default=None,
        metavar="METRIC",
        help=f"metric for best.ckpt and early stopping: {'|'.join(MONITORS)}",
    )
    add("--patience", type=int, default=None, help="stop after N epochs without improvement (default: never)")
    add("--min-delta", type=float, default=None, help="smallest change that counts as an improvement")
    add("--out", default=None, metavar="DIR", help="run directory (default runs/<model>-<data>-<timestamp>)")
    add("--resume", default=None, metavar="RUN", help="continue a stopped run from RUN/last.ckpt")
    add("--devices", default=None, help="processes/GPUs to train on (default 1), or 'auto'")
    add("--num-nodes", type=int, default=None, help="machines, for multi-node DDP (torchrun or SLURM)")
    add("--strategy", default=None, help="Lightning strategy, e.g. ddp (default auto)")
    add("--accelerator", default=None, help="auto (default), cpu or gpu")
    add(
        "--precision",
        default=None,
        metavar="P",
        help=f"{', '.join(PRECISIONS[:5])}... (default: bf16-mixed on GPU)",
    )
    add("--compile", action="store_true", default=None, help="torch.compile the model")
    add("--workers", type=int, default=None, help="data-loading processes (default: 0 in memory, else cores)")
    add("--cache", action="store_true", default=None, help="decode an image folder once into a uint8 cache")
    add("--max-time", default=None, metavar="T", help="stop after this long: 90s, 10m, 2h or DD:HH:MM:SS")
    add("--quiet", "-q", action="store_true", help="print only the final report")
    p.set_defaults(run=run)


# CLI option -> TrainConfig field (those not listed have the same name with '_').
_FIELDS = (
    "epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "schedule", "schedule_options",
    "augment", "label_smoothing", "seed", "image_size", "val_fraction", "test_fraction", "monitor",
    "patience", "min_delta", "out", "devices", "num_nodes", "strategy", "accelerator", "precision",
    "compile", "workers", "cache", "max_time",
)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from cnnkit.train.fit import fit

    options = {name: getattr(args, name) for name in _FIELDS if getattr(args, name) is not None}
    if args.resume is not None:
        options.pop("out", None)
    verbose = 0 if args.quiet else None
    history = fit(model=args.model, data=args.data, resume=args.resume, verbose=verbose, **options)
    results = history.results
    if not results:  # a helper process of a multi-process run: rank 0 reports
        return 0
    split = "test" if results["eval_split"] == "test" else "validation (no test split)"
    print(
        f"test accuracy {results['test_acc']:.2%} on {results['eval_samples']} {split} images "
        f"(best checkpoint: epoch {results['best_epoch'] + 1})"
    )
    print(
        f"best val accuracy {results['best_val_acc']:.2%}; {results['epochs']} epochs in "
        f"{results['train_seconds']:.1f} s"
        + (f"; {results['skipped_files']} unreadable files skipped" if results["skipped_files"] else "")
    )
    print(f"run directory: {history.run_dir}")
    return 0
