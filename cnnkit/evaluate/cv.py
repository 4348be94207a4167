"""``cross_validate``: stratified K-fold cross-validation of one training recipe.

The training pool is cut into K stratified folds (scikit-learn's ``StratifiedKFold``; Kohavi,
"A Study of Cross-Validation and Bootstrap for Accuracy Estimation and Model Selection",
IJCAI 1995, recommends stratified 10-fold). Fold k is held out as the test split of run
``PARENT/fold-k`` and the rest is trained on with :func:`cnnkit.fit`, its validation split
(best checkpoint, early stopping) carved from the rest, stratified too.

The fold is handed to the training engine through the run's ``split.json``, written before
training: the data module reuses a saved split of the same source (the mechanism that lets
a resumed run keep its split), so every fold is an ordinary run directory that
``cnnkit evaluate``, ``ensemble`` and ``doctor`` read as usual. ``PARENT/cv.json`` holds
each fold's metrics and their mean and sample standard deviation (ddof=1).

    >>> from cnnkit.evaluate.cv import cross_validate
    >>> s = cross_validate(folds=5, model="lenet5", data="digits", epochs=3)  # doctest: +SKIP
    >>> s["mean"]["test_acc"], s["std"]["test_acc"], s["folds"][0]["run_dir"]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

from cnnkit.errors import CnnkitError
from cnnkit.fileio import write_json_atomic

CV_FILE = "cv.json"


def _is_metric(name: str, value: Any) -> bool:
    """Scores of results.json (test_*, best_val_*, train_seconds), not counts or settings."""
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    return numeric and (name.startswith(("test_", "best_val_")) or name == "train_seconds")


def fold_splits(
    labels: np.ndarray, folds: int, val_fraction: float, seed: int
) -> list[dict[str, np.ndarray]]:
    """Per fold, sorted pool indices of train / val / test: the test parts are disjoint and
    cover the pool, each stratified; val is a stratified share of the rest."""
    from sklearn.model_selection import StratifiedKFold

    from cnnkit.data.splits import stratified_split

    labels = np.asarray(labels, dtype=np.int64)
    smallest = int(np.bincount(labels)[np.unique(labels)].min()) if len(labels) else 0
    if not 2 <= folds <= smallest:
        raise CnnkitError(
            f"--folds {folds} needs 2 <= K <= {smallest} (the smallest class has {smallest} images). "
            "Lower --folds or add images."
        )
    out = []
    kfold = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for rest, test in kfold.split(np.zeros(len(labels)), labels):
        inner = stratified_split(labels[rest], val_fraction, 0.0, seed)
        out.append(
            {
                "train": np.sort(rest[inner["train"]]),
                "val": np.sort(rest[inner["val"]]),
                "test": np.sort(test),
            }
        )
    return out


def _prepare(data: Any, options: dict[str, Any]) -> tuple[Any, np.ndarray, str]:
    """The data to train every fold on, its pool labels and the split key fit will check."""
    from cnnkit.data.datamodule import CnnkitDataModule
    from cnnkit.data.sources import load_cifar_data, load_idx_data

    keys = ("val_fraction", "test_fraction", "seed")
    probe_args = {k: options[k] for k in keys if k in options}

    def probe(source: Any) -> CnnkitDataModule:
        dm = CnnkitDataModule(source, batch_size=1, num_workers=0, **probe_args)
        dm.setup()
        return dm

    dm = probe(data)
    labels, key, made = dm.split_pool()
    if "test" not in made:  # the source has its own test split: fold its training pool instead
        if dm.format == "idx":
            x, y = load_idx_data(Path(data)).splits["train"]
        elif dm.format == "cifar":
            x, y = load_cifar_data(Path(data)).splits["train"]
        else:
            raise CnnkitError(
                f"{data} has its own test/ split; cross-validation folds one pool of images. "
                "Point --data at its train/ folder (or merge the splits)."
            )
        data = (x.numpy(), y.numpy())
        labels, key, _ = probe(data).split_pool()
    return data, labels, key


def cross_validate(
    model: str | None = None,
    data: Any = None,
    folds: int = 5,
    out: str | Path | None = None,
    verbose: int | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Train one run per fold under ``out`` (default ``runs/cv-<model>-<data>-<time>``) and
    return the summary written to ``out/cv.json`` (``path`` is ``out``). ``model``, ``data``
    and ``options`` are :func:`cnnkit.fit`'s (epochs, batch_size, ...); each fold's
    ``test_fraction`` is ``1/folds`` (its test split is the held-out fold)."""
    from cnnkit.runs import SPLIT_FILE, new_run_dir
    from cnnkit.train.config import TrainConfig
    from cnnkit.train.fit import fit

    if options.pop("resume", None) is not None:
        raise CnnkitError(
            "cnnkit cv cannot --resume; rerun it, or resume one fold with 'cnnkit train --resume'."
        )
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise CnnkitError(f"unknown training option(s) {', '.join(unknown)}; see 'cnnkit train --help'.")
    defaults = TrainConfig()
    model = model or defaults.model
    data = data if data is not None else defaults.data
    options.pop("out", None)
    if not isinstance(folds, int) or folds < 2:
        raise CnnkitError(f"--folds {folds} must be at least 2, e.g. --folds 5.")
    options["test_fraction"] = round(1.0 / folds, 6)
    options = {k: v for k, v in options.items() if v is not None}
    options.setdefault("val_fraction", defaults.val_fraction)
    options.setdefault("seed", defaults.seed)
    if not isinstance(model, str):
        raise CnnkitError(
            "cnnkit cv trains zoo models by name; pass model='lenet5' or another 'cnnkit models' name."
        )
    train_data, labels, key = _prepare(data, options)
    plan = fold_splits(labels, folds, options["val_fraction"], options["seed"])

    parent = Path(out).expanduser() if out is not None else new_run_dir(f"cv-{model}", data)
    if (parent / CV_FILE).exists():
        raise CnnkitError(f"{parent} already holds a cross-validation ({CV_FILE}); choose another --out.")
    parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for k, split in enumerate(plan, start=1):
        run_dir = parent / f"fold-{k}"
        run_dir.mkdir(exist_ok=True)
        write_json_atomic(
            run_dir / SPLIT_FILE,
            {"source": key, "seed": options["seed"], "cv_fold": k, "cv_folds": folds,
             "splits": {name: idx.tolist() for name, idx in split.items()}},
        )  # fmt: skip
        history = fit(model=model, data=train_data, out=str(run_dir), verbose=verbose, **options)
        results = dict(history.results)
        metrics = {name: float(value) for name, value in results.items() if _is_metric(name, value)}
        rows.append({"fold": k, "run_dir": str(run_dir), **_sizes(split),
                     "eval_split": results.get("eval_split"), "metrics": metrics})  # fmt: skip
    summary = summarize(rows)
    summary.update(
        {
            "folds": rows,
            "k": folds,
            "model": model,
            "data": str(data) if isinstance(data, (str, Path)) else "<arrays>",
            "options": {k: v for k, v in options.items() if _jsonable(v)},
            "parent": str(parent),
            "path": str(parent),
        }
    )
    write_json_atomic(parent / CV_FILE, summary)
    return summary


def _sizes(split: dict[str, np.ndarray]) -> dict[str, int]:
    return {f"n_{name}": len(idx) for name, idx in split.items()}


def _jsonable(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, type(None), list, dict, tuple))


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample standard deviation (ddof=1; 0 for one fold) of every metric all folds have."""
    common = set.intersection(*(set(r["metrics"]) for r in rows)) if rows else set()
    mean, std = {}, {}
    for name in sorted(common):
        values = np.array([r["metrics"][name] for r in rows], dtype=np.float64)
        mean[name] = float(values.mean())
        std[name] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return {"mean": mean, "std": std}


def format_cv(summary: dict[str, Any]) -> str:
    """A table: one row per fold, then mean ± std, for the test metrics and best val accuracy."""
    shown = [
        m
        for m in ("test_acc", "test_top5", "test_loss", "best_val_acc", "train_seconds")
        if m in summary["mean"]
    ]
    header = ["fold", "train", "val", "test", *shown]
    lines = [header]
    for row in summary["folds"]:
        lines.append(
            [str(row["fold"]), str(row["n_train"]), str(row["n_val"]), str(row["n_test"])]
            + [_fmt(m, row["metrics"][m]) for m in shown]
        )
    lines.append(
        ["mean ± std", "", "", ""]
        + [f"{_fmt(m, summary['mean'][m])} ± {_fmt(m, summary['std'][m])}" for m in shown]
    )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.rjust(w) for cell, w in zip(line, widths, strict=True)) for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    return (
        "\n".join(text)
        + f"\n{summary['k']}-fold cross-validation of {summary['model']}; runs in {summary['parent']}"
    )


def _fmt(metric: str, value: float) -> str:
    if math.isnan(value):
        return "nan"
    if metric.endswith("seconds"):
        return f"{value:.1f}"
    return f"{value:.4f}"
