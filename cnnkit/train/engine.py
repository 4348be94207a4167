"""The heavy half of :func:`cnnkit.fit`: data + model + Lightning Trainer, then the final
evaluation and the run directory's result files.

Kept apart from :mod:`cnnkit.train.fit` so that ``import cnnkit`` and argument errors
never pay for importing Lightning.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from torch import nn

from cnnkit.errors import CnnkitError
from cnnkit.fileio import write_json_atomic, write_text_atomic
from cnnkit.models.registry import create_model, model_info
from cnnkit.runs import RUN_DIR_ENV, data_label, global_rank_from_env
from cnnkit.summary import ModelSummary, count_params, summary
from cnnkit.train.callbacks import AtomicCheckpointIO, EpochHistory
from cnnkit.train.config import TrainConfig, parse_max_time
from cnnkit.train.module import ClassifierModule, evaluate, ten_crop_accuracy
from cnnkit.train.optim import learning_rate
from cnnkit.train.quiet import quiet_lightning


def build_model_for_data(config: TrainConfig, make_datamodule: Any) -> tuple[Any, nn.Module, ModelSummary]:
    """The datamodule and the model, at the training image size, and the model's summary.

    The image-size rule: ``config.image_size`` if given; else the data's own size if the
    model can take it (a flatten-head net such as LeNet-5 or VGG is *built* for that
    size); else the data is resized to the model's default input size (8x8 digits ->
    28x28 for LeNet-5). "Can take it" is decided by running the model once on a
    zero image of that size (the summary pass), so every architecture is judged by
    what it actually does.
    """
    info = model_info(config.model)
    dm = make_datamodule(config.image_size)
    try:
        model, table = _build_and_probe(config, dm.num_classes, dm.input_size)
        return dm, model, table
    except _SizeError as exc:
        if config.image_size is not None:
            h, w = config.image_size
            raise CnnkitError(
                f"{config.model} cannot train on {h}x{w} images: {exc}. "
                f"Use a larger --image-size (its default is {info.input_size[1]}x{info.input_size[2]})."
            ) from None
    dm = make_datamodule(tuple(info.input_size[1:]))
    try:
        model, table = _build_and_probe(config, dm.num_classes, dm.input_size)
    except _SizeError as exc:
        raise CnnkitError(f"{config.model} cannot train on this data: {exc}.") from None
    return dm, model, table


class _SizeError(Exception):
    pass


def _build_and_probe(
    config: TrainConfig, num_classes: int, size: tuple[int, ...]
) -> tuple[nn.Module, ModelSummary]:
    size = tuple(int(d) for d in size)
    try:
        model = create_model(
            config.model, num_classes=num_classes, in_chans=size[0], input_size=size, **config.model_options
        )
    except CnnkitError:
        raise
    except Exception as exc:  # e.g. a dense layer of negative width: the input is too small
        raise _SizeError(_first_line(exc)) from exc
    try:
        table = summary(model, size)
    except CnnkitError as exc:
        # summary says "<model> cannot take input HxW: <why>. Its default input size is ..."
        why = _first_line(exc).split(": ", 1)[-1].split(". Its default input size")[0]
        raise _SizeError(why.rstrip(".")) from exc
    return model, table


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def resolve_hardware(config: TrainConfig) -> dict[str, Any]:
    """Precision, memory format and determinism for the device the run will use."""
    gpu = config.accelerator in ("gpu", "cuda") or (
        config.accelerator == "auto" and torch.cuda.is_available()
    )
    if config.precision is not None:
        precision = str(config.precision)
    elif gpu:
        precision = (
            "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "16-mixed"
        )
    else:
        precision = "32-true"
    return {
        "gpu": gpu,
        "precision": precision,
        "channels_last": gpu if config.channels_last is None else bool(config.channels_last),
        "deterministic": (not gpu) if config.deterministic is None else bool(config.deterministic),
    }


def run_training(
    config: TrainConfig,
    run_dir: Path,
    resume: bool,
    extra_callbacks: list[Any],
    verbose: int,
) -> dict[str, Any]:
    """Train, evaluate the best checkpoint and write the run directory.

    Returns ``{"rows", "results", "model"}``; only the writing process (global rank 0)
    has results.
    """
    from cnnkit.data import build_datamodule

    writer = global_rank_from_env() == 0
    hw = resolve_hardware(config)
    fresh_dir, fresh_parent = writer and not run_dir.exists(), writer and not run_dir.parent.exists()
    with quiet_lightning(verbose):
        L.seed_everything(config.seed, workers=True, verbose=False)

        def make_datamodule(image_size: tuple[int, int] | None) -> Any:
            return build_datamodule(
                data=config.data,
                batch_size=config.batch_size,
                image_size=image_size,
                in_chans=config.in_chans,
                augment=config.augment,
                val_fraction=config.val_fraction,
                test_fraction=config.test_fraction,
                seed=config.seed,
                num_workers=config.workers,
                cache=config.cache,
                run_dir=run_dir if writer else None,
                resize=config.resize,
                normalize=config.normalize,
            )

        try:
            dm, model, table = build_model_for_data(config, make_datamodule)
        except BaseException:
            if fresh_dir:  # a run that never started leaves no folder behind
                shutil.rmtree(run_dir, ignore_errors=True)
            if fresh_parent:
                with contextlib.suppress(OSError):
                    run_dir.parent.rmdir()  # only if empty: another run may have appeared there
            raise
        input_size = tuple(int(d) for d in dm.input_size)
        if writer:
            _write_run_files(run_dir, config, dm, table, hw, input_size)
        if hw["gpu"]:
            dm.device_transforms = True  # uint8 batches to the GPU, augmented and normalised there
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        if hw["channels_last"]:
            model = model.to(memory_format=torch.channels_last)
        if config.compile:
            model.compile()  # in place: state_dict keys stay those of the plain model
        module = ClassifierModule(model, config, channels_last=hw["channels_last"])

        history = EpochHistory(run_dir, config.epochs, verbose=verbose)
        callbacks, logger = _callbacks(config, run_dir, history, extra_callbacks)
        trainer = L.Trainer(
            max_epochs=config.epochs,
            accelerator=config.accelerator,
            devices=int(config.devices) if str(config.devices).isdigit() else config.devices,
            num_nodes=config.num_nodes,
            strategy=config.strategy,
            precision=hw["precision"],
            deterministic=hw["deterministic"],
            benchmark=hw["gpu"] and not hw["deterministic"],
            callbacks=callbacks,
            logger=logger,
            enable_progress_bar=verbose == 1,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            default_root_dir=str(run_dir),
            max_time=parse_max_time(config.max_time) if config.max_time else None,
            plugins=[AtomicCheckpointIO()],
            log_every_n_steps=10,
        )
        os.environ[RUN_DIR_ENV] = str(run_dir)
        start = time.perf_counter()
        try:
            trainer.fit(module, datamodule=dm, ckpt_path=str(run_dir / "last.ckpt") if resume else None)
        finally:
            os.environ.pop(RUN_DIR_ENV, None)
        fit_seconds = time.perf_counter() - start
        if not trainer.is_global_zero:
            return {"rows": history.rows, "results": {}, "model": model}
        # With ddp_spawn the epochs ran (and metrics.csv was written) in spawned processes:
        # this process' history is empty, the checkpoint has it.
        rows = history.rows or _rows_from_checkpoint(run_dir / "last.ckpt")
        if not rows:
            raise CnnkitError(
                "training stopped before the first epoch ended (max_time too short?); nothing to save."
            )
        results = _final_results(config, run_dir, dm, model, rows, hw, trainer)
        results["train_seconds"] = round(fit_seconds + history.restored_seconds, 3)
        write_json_atomic(run_dir / "results.json", results)
    return {"rows": rows, "results": results, "model": model}


def _callbacks(
    config: TrainConfig, run_dir: Path, history: EpochHistory, extra: list[Any]
) -> tuple[list[Any], Any]:
    mode = "max" if config.monitor == "val_acc" else "min"
    checkpoint = ModelCheckpoint(
        dirpath=str(run_dir),
        filename="best",
        monitor=config.monitor,
        mode=mode,
        save_top_k=1,
        save_last=True,
        enable_version_counter=False,
        auto_insert_metric_name=False,
        save_on_train_epoch_end=False,
    )
    callbacks: list[Any] = [history, checkpoint]
    if config.patience is not None:
        callbacks.append(
            EarlyStopping(
                monitor=config.monitor, patience=config.patience, min_delta=config.min_delta, mode=mode
            )
        )
    logger: Any = False
    try:  # TensorBoard only when it is installed; metrics.csv is the always-there log
        import tensorboard  # noqa: F401
        from lightning.pytorch.loggers import TensorBoardLogger

        logger = TensorBoardLogger(str(run_dir), name="tensorboard", version="")
        callbacks.append(LearningRateMonitor(logging_interval="epoch"))
    except ImportError:
        pass
    return callbacks + list(extra), logger


def _write_run_files(
    run_dir: Path, config: TrainConfig, dm: Any, table: ModelSummary, hw: dict[str, Any], input_size: tuple
) -> None:
    import cnnkit

    resolved = {
        "input_size": list(input_size),
        "lr": learning_rate(config),
        "precision": hw["precision"],
        "channels_last": hw["channels_last"],
        "deterministic": hw["deterministic"],
        "num_classes": dm.num_classes,
    }
    saved = {**config.to_json(), "resolved": resolved, "cnnkit_version": cnnkit.__version__}
    write_json_atomic(run_dir / "config.json", saved)
    write_json_atomic(run_dir / "classes.json", list(dm.classes))
    normalization = {
        "mean": [float(m) for m in dm.mean],
        "std": [float(s) for s in dm.std],
        "input_size": list(input_size),
        "resize": config.resize,
    }
    write_json_atomic(run_dir / "normalization.json", normalization)
    write_text_atomic(run_dir / "summary.txt", str(table) + "\n")


def _rows_from_checkpoint(path: Path) -> list[dict[str, float]]:
    """Epoch rows from a checkpoint's EpochHistory state (when training ran in spawned processes)."""
    if not path.is_file():
        return []
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key, value in state.get("callbacks", {}).items():
        if key.startswith("EpochHistory") and isinstance(value, dict):
            return list(value.get("rows", []))
    return []


def _final_results(
    config: TrainConfig, run_dir: Path, dm: Any, model: nn.Module, rows: list, hw: dict, trainer: Any
) -> dict[str, Any]:
    """Evaluate the best checkpoint on the test split (validation split if there is none)."""
    from cnnkit.models.weights import read_state_dict

    best_path = run_dir / "best.ckpt"
    model.load_state_dict(read_state_dict(best_path if best_path.is_file() else run_dir / "last.ckpt"))
    split = "test" if dm.has_test else "val"
    loader = dm.test_dataloader() if split == "test" else dm.val_dataloader()
    device = next(model.parameters()).device
    autocast = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(hw["precision"])
    transform = (
        (lambda batch: dm.on_after_batch_transfer(batch, 0)) if getattr(dm, "device_transforms", 0) else None
    )
    scores = evaluate(model, loader, device, autocast, hw["channels_last"], transform)
    mode_max = config.monitor == "val_acc"
    best = (max if mode_max else min)(rows, key=lambda r: r[config.monitor])
    results: dict[str, Any] = {
        "test_acc": scores["acc"],
        "test_loss": scores["loss"],
        "eval_split": split,
        "eval_samples": scores["n"],
        "best_val_acc": max(r["val_acc"] for r in rows),
        "best_epoch": int(best["epoch"]),
        "monitor": config.monitor,
        "epochs": len(rows),
        "stopped_early": bool(trainer.should_stop) and len(rows) < config.epochs,
        "skipped_files": len(dm.skipped),
        "model": config.model,
        "data": data_label(config.data),
        "num_classes": dm.num_classes,
        "input_size": list(dm.input_size),
        "params": count_params(model),
        "split_sizes": dm.split_sizes(),
        "precision": hw["precision"],
        "world_size": trainer.world_size,
    }
    if dm.num_classes > 5:
        results["test_top5"] = scores["top5"]
    crop = dm.augment.random_crop if dm.augment is not None else None
    if crop is not None:  # trained on random patches: also test on ten of them per image
        results["test_acc_10crop"] = ten_crop_accuracy(model, dm.uncropped_batches(split), crop, device)
    return results
