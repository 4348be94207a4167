"""``cnnkit train``: train a zoo model and write a run directory.

With no arguments it trains LeNet-5 on the embedded 8x8 digits (resized to 28x28) and
prints the test accuracy - about 98%, in seconds on a laptop CPU. The flags are generated
from the fields of :class:`cnnkit.train.TrainConfig` (help, choices and parser live in
each field's metadata), so the CLI and :func:`cnnkit.fit` cannot drift apart. Options left
out keep the config's defaults (or, with ``--resume``, the saved run's values).
"""

from __future__ import annotations

import argparse
import dataclasses

from cnnkit.train.config import TrainConfig

SKIPPED = ("model", "data")  # the two positional-like options, read separately


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model (default: LeNet-5 on the embedded digits) and write a run directory",
        description="Train a zoo model on a dataset; writes runs/<model>-<data>-<time>/ "
        "(config, checkpoints, metrics.csv, curves.png, results.json).",
    )
    for f in dataclasses.fields(TrainConfig):
        meta = dict(f.metadata)
        if meta.pop("flag", True) is False:
            continue
        flag = "--" + f.name.replace("_", "-")
        help_text, choices = meta.pop("help", ""), meta.pop("choices", None)
        if choices:  # checked by TrainConfig.validate, for a one-line error
            help_text += f"; one of {', '.join(choices)}"
            meta.setdefault("metavar", f.name.upper())
        if "type" not in meta and str(f.type).startswith("bool"):  # --flag / --no-flag
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            p.add_argument(flag, default=None, help=help_text, **meta)
    p.add_argument(
        "--recipe",
        default=None,
        metavar="NAME",
        help="start from a shipped recipe (see 'cnnkit recipes'); explicit flags override it",
    )
    p.add_argument("--resume", default=None, metavar="RUN", help="continue a stopped run from RUN/last.ckpt")
    p.add_argument("--quiet", "-q", action="store_true", help="print only the final report")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from cnnkit.train.fit import fit

    names = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in SKIPPED]
    options = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    model, data = args.model, args.data
    if args.recipe is not None:
        from cnnkit.errors import CnnkitError
        from cnnkit.recipes import load_recipe, train_options

        if args.resume is not None:
            raise CnnkitError(
                "--recipe and --resume do not go together: a resumed run keeps its own options."
            )
        base = train_options(load_recipe(args.recipe))
        model = model if model is not None else base.pop("model", None)
        data = data if data is not None else base.pop("data", None)
        base.pop("model", None), base.pop("data", None)
        options = {**base, **options}
    if args.resume is not None:
        options.pop("out", None)
    verbose = 0 if args.quiet else None
    history = fit(model=model, data=data, resume=args.resume, verbose=verbose, **options)
    results = history.results
    if not results:  # a helper process of a multi-process run: rank 0 reports
        return 0
    split = "test" if results["eval_split"] == "test" else "validation (no test split)"
    print(
        f"test accuracy {results['test_acc']:.2%} on {results['eval_samples']} {split} "
        f"{results.get('sample_kind', 'images')} (best checkpoint: epoch {results['best_epoch']})"
    )
    skipped = results.get("skipped_files", 0)
    print(
        f"best val accuracy {results['best_val_acc']:.2%}; {results['epochs']} epochs in "
        f"{results['train_seconds']:.1f} s" + (f"; {skipped} unreadable files skipped" if skipped else "")
    )
    print(f"run directory: {history.run_dir}")
    if results.get("sample_kind", "images") == "images":
        warn_about_leaks(history.run_dir, history.config.data)
    if not args.quiet:  # the training doctor's reading of the curves (cnnkit doctor RUN)
        from cnnkit.evaluate import diagnose, format_findings

        findings = diagnose(history.run_dir)
        if findings:
            print("doctor:\n" + format_findings(findings))
    return 0


def warn_about_leaks(run_dir: object, data: object) -> None:
    """Warn when the run's test/validation images are (near-)copies of its training images:
    testing on training images measures nothing (the seeds' reviewer). Exact copies only for
    MNIST-style digits, where different hand-written strokes hash alike."""
    import sys

    from cnnkit.data.sources import detect_format
    from cnnkit.evaluate import find_leaks

    fmt = detect_format(data)
    if fmt == "arrays":
        return
    leaks = [
        p
        for p in find_leaks(data, run=run_dir, crops=False, near=fmt != "idx")
        if p["split_a"] != p["split_b"]
    ]
    if leaks:
        kinds = sorted({p["kind"] for p in leaks})
        print(
            f"warning: {len(leaks)} {'/'.join(kinds)} duplicate pairs across this run's splits "
            f"(e.g. {leaks[0]['a']} ~ {leaks[0]['b']}); the test accuracy is optimistic. "
            f"See: cnnkit leakage {data} --run {run_dir}",
            file=sys.stderr,
        )
