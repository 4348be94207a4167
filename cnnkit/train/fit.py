"""``cnnkit.fit``: train a zoo model on a dataset, Keras-style, and get a ``History`` back.

    >>> import cnnkit
    >>> h = cnnkit.fit("lenet5", "digits", epochs=10)        # seconds on a laptop CPU
    >>> h.results["test_acc"], h.history["val_acc"][-1], h.run_dir

This module only resolves and validates the options (fast, no Lightning import); the
training itself is in :mod:`cnnkit.train.engine`.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from cnnkit.errors import CnnkitError
from cnnkit.runs import CONFIG_FILE, LAST_CKPT, RESULTS_FILE
from cnnkit.train.config import TrainConfig, is_custom_model

# What may change when a run is resumed: how long and where it runs, not what it learns.
RESUME_OVERRIDES = (
    "epochs",
    "devices",
    "num_nodes",
    "strategy",
    "accelerator",
    "workers",
    "max_time",
    "patience",
)
ARRAYS_PLACEHOLDER = "<arrays passed from Python>"


@dataclass
class History:
    """What :func:`fit` returns, shaped like Keras' ``History``.

    ``history`` maps each logged metric (train_loss, train_acc, val_loss, val_acc, val_top5,
    lr, time) to its list of per-epoch values; ``epoch`` lists the epoch numbers (from 1, as
    printed and as in metrics.csv and results.json's ``best_epoch``);
    ``results`` is ``results.json`` (test_acc, best_val_acc, epochs, train_seconds, ...);
    ``model`` is the trained network with the best checkpoint's weights.
    """

    history: dict[str, list[float]]
    epoch: list[int]
    run_dir: Path | None
    results: dict[str, Any] = field(default_factory=dict)
    config: TrainConfig | None = None
    model: Any = None

    def __repr__(self) -> str:
        acc = self.results.get("test_acc")
        shown = f"test_acc={acc:.4f}, " if isinstance(acc, float) else ""
        return f"History({shown}epochs={len(self.epoch)}, run_dir={str(self.run_dir)!r})"


def fit(
    model: str | nn.Module | None = None,
    data: Any = None,
    *,
    resume: str | os.PathLike | None = None,
    callbacks: list[Any] | None = None,
    verbose: int | None = None,
    **options: Any,
) -> History:
    """Train ``model`` on ``data`` and write a run directory.

    ``model`` is a registry name, or your own ``nn.Module`` (trained as given: its
    forward takes the (N, C, H, W) batches and returns logits for the data's classes; the
    run records its class name and summary; resume such a run from Python with the same
    module). ``data`` is ``"digits"`` (default, embedded), an image folder, an MNIST/CIFAR
    folder, ``(x, y)`` arrays, or a ``label<TAB>text`` .tsv file for a text model. ``options`` are the fields of :class:`TrainConfig` (epochs,
    batch_size, optimizer, lr, schedule, augment, image_size, patience, devices, ...).
    ``callbacks`` are extra Lightning callbacks. ``resume=RUN_DIR`` continues a stopped
    run from its ``last.ckpt`` with its saved ``config.json``; only
    :data:`RESUME_OVERRIDES` may be changed then (e.g. more ``epochs`` - except for the
    onecycle and cosine schedules, which are planned for the original length).
    ``verbose``: 0 silent, 1 progress bar, 2 one line per epoch (default: 1 on a
    terminal, else 2).

    Image size: ``image_size`` if given, else the data's own size when the model can
    take it (flatten-head nets are built for it), else the model's default input size
    (the data is resized to it) - e.g. 8x8 digits are trained at 28x28 with LeNet-5.

    Transfer learning: ``pretrained=True|TAG|PATH`` starts from weights, and
    ``regime="features"|"truncate"|"finetune"|"full"|"auto"`` (with ``head``, ``cut``,
    ``warmup_epochs``, ``backbone_lr_mult``, ``freeze``, ``unfreeze_at``, ``train_bn``)
    decides what trains - see :mod:`cnnkit.transfer`.

    Multi-process: ``devices=2, strategy="ddp"`` re-launches the calling *script* once
    per extra process (Lightning's launcher), so call it from a ``python script.py``,
    not from a notebook (there use ``strategy="ddp_notebook"`` or ``"ddp_spawn"``).
    """
    config, run_dir = resolve_config(model, data, resume, options)
    if verbose is None:
        from cnnkit.train.callbacks import is_interactive

        verbose = 1 if is_interactive() else 2
    from cnnkit.train.engine import run_training

    out = run_training(config, run_dir, resume is not None, list(callbacks or []), verbose)
    rows = out["rows"]
    keys = [k for k in dict.fromkeys(key for row in rows for key in row) if k != "epoch"]
    return History(
        history={k: [float(r.get(k, float("nan"))) for r in rows] for k in keys},
        epoch=[int(r["epoch"]) for r in rows],
        run_dir=run_dir,
        results=out["results"],
        config=config,
        model=out["model"],
    )


def resolve_config(
    model: str | nn.Module | None, data: Any, resume: str | os.PathLike | None, options: dict[str, Any]
) -> tuple[TrainConfig, Path]:
    """The validated configuration and the run directory, before anything heavy is imported."""
    from cnnkit.fileio import read_json
    from cnnkit.runs import check_resumable, new_run_dir

    names = [f.name for f in dataclasses.fields(TrainConfig)]
    for key in options:
        if key not in names or key in ("model", "data"):
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise CnnkitError(f"fit() got an unknown option {key!r}.{hint}")
    if resume is not None:
        run_dir = check_resumable(resume)
        config = TrainConfig.from_json(read_json(run_dir / CONFIG_FILE))
        changed = [k for k, v in options.items() if k not in RESUME_OVERRIDES and v != getattr(config, k)]
        if is_custom_model(config.model):
            recorded = config.model.split(":", 1)[1]
            if model is None or isinstance(model, str) or type(model).__name__ != recorded:
                raise CnnkitError(
                    f"{run_dir} trained a custom module {recorded} passed from Python; resume it from Python "
                    f"with the same module: cnnkit.fit(model={recorded}(...), resume={str(run_dir)!r})."
                )
            config.model = model
        elif model is not None and model != config.model:
            changed.append("model")
        if config.data == ARRAYS_PLACEHOLDER:
            if data is None:
                raise CnnkitError(
                    f"{run_dir} was trained on arrays passed from Python; pass the same data= again."
                )
            config.data = data
        elif data is not None and str(data) != str(config.data):
            changed.append("data")
        if changed:
            raise CnnkitError(
                f"--resume continues {run_dir} with its saved settings; cannot change {', '.join(changed)} "
                f"(only {', '.join(RESUME_OVERRIDES)}). Start a new run instead."
            )
        if options.get("epochs", config.epochs) != config.epochs and config.schedule in (
            "onecycle",
            "cosine",
        ):
            raise CnnkitError(
                f"cannot change the epochs of {run_dir}: its {config.schedule} schedule was planned for "
                f"{config.epochs} epochs. Resume without --epochs, or start a new run."
            )
        for key, value in options.items():
            setattr(config, key, value)
        config.out = str(run_dir)
        return config.validate(), run_dir
    config = TrainConfig(**options)
    config.model = model if model is not None else config.model
    config.data = data if data is not None else config.data
    if isinstance(config.data, (str, os.PathLike)) and str(config.data).lower() != "digits":
        from cnnkit.data.sources import resolve_dataset

        path = Path(resolve_dataset(str(config.data))).expanduser()
        if not path.exists():  # checked here too so that a typo fails before Lightning is imported
            raise CnnkitError(
                f"data path {path} does not exist. Pass an image folder, an MNIST/CIFAR folder, 'digits' or "
                "a dataset name (MNIST, FashionMNIST, CIFAR10)."
            )
        config.data = str(path.resolve())  # config.json must work from any folder
    config.validate()
    if isinstance(config.model, str):
        from cnnkit.models.registry import model_info

        model_info(config.model)  # an unknown name fails here, with suggestions
    elif not isinstance(config.model, nn.Module):
        raise CnnkitError(
            f"model must be a registry name or an nn.Module, not {type(config.model).__name__}."
        )
    run_dir = _new_run_dir(config, new_run_dir)
    return config, run_dir


def _new_run_dir(config: TrainConfig, new_run_dir: Any) -> Path:
    from cnnkit.runs import inherited_run_dir

    inherited = inherited_run_dir()
    if inherited is not None:  # a process started by Lightning's DDP launcher: same folder as rank 0
        return inherited
    if config.out is None:
        name = config.model if isinstance(config.model, str) else type(config.model).__name__.lower()
        return new_run_dir(name, config.data)
    run_dir = Path(config.out).expanduser()
    if (run_dir / LAST_CKPT).exists() or (run_dir / RESULTS_FILE).exists():
        raise CnnkitError(f"{run_dir} already holds a run; --resume it or choose another --out.")
    return run_dir
