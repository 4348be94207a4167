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
from cnnkit.fileio import read_json, write_json_atomic, write_text_atomic
from cnnkit.runs import (
    BEST_CKPT,
    CLASSES_FILE,
    CONFIG_FILE,
    LAST_CKPT,
    NORMALIZATION_FILE,
    RESULTS_FILE,
    RUN_DIR_ENV,
    SUMMARY_FILE,
    data_label,
    global_rank_from_env,
)
from cnnkit.summary import count_params
from cnnkit.train.build import build_run
from cnnkit.train.cached import FeatureDataModule, can_cache
from cnnkit.train.callbacks import AtomicCheckpointIO, EpochHistory
from cnnkit.train.config import TrainConfig, monitor_mode, parse_max_time
from cnnkit.train.module import ClassifierModule, evaluate, ten_crop_accuracy
from cnnkit.train.optim import learning_rate
from cnnkit.train.quiet import quiet_lightning

# CPU training in channels_last: the rule, and the tables that back it, from
# ``python bench/bench_channels_last.py`` (one SGD step, NCHW time / NHWC time).
# On a 2-core Xeon (its kernels were not recorded; this is the rule for every CPU but AVX2)
# NHWC wins for depthwise nets (MobileNetV2 1.43x, EfficientNet-Lite0 1.76x at 64 px) and for
# CIFAR-sized inputs (NIN 1.52x, CIFAR ResNet-20 1.14x, pre-act ResNet-110 1.21x, MiniVGG
# 1.08x); it loses for LeNet-sized nets (LeNet-5 0.90x) and ImageNet ResNet-18 at 64 px (0.86x).
# On a CPU whose best kernels are AVX2 (a 2-core AMD EPYC, median of 9 pairs) NHWC wins for
# all eleven nets of the bench: LeNet-5 1.36x, the paper LeNet-5 1.47x, small_cnn 1.33x,
# seed_cifar_cnn 1.42x, MiniVGG 1.21x, NIN 1.28x, ResNet-20 1.18x, pre-act ResNet-110 1.19x,
# ResNet-18 at 64 px 1.07x, MobileNetV2 1.34x, Lite0 1.26x (NCHW max-pooling alone is 1.4x
# slower there).
# A rule of the model and the CPU's instruction set, not a timed probe, so that a rerun on a
# busy machine makes the same choice (the two layouts round differently, and reruns must be
# identical).
CHANNELS_LAST_MAX_SIDE = 32
CHANNELS_LAST_MIN_MACS = 1_000_000
CHANNELS_LAST_EVERYWHERE = ("AVX2",)  # torch.backends.cpu.get_cpu_capability() values


def cpu_channels_last(
    model: torch.nn.Module,
    input_size: tuple[int, ...] | None = None,
    macs: int | None = None,
    capability: str | None = None,
) -> bool:
    """Whether training ``model`` on a CPU uses channels_last: every convolutional net on a
    CPU whose best kernels are AVX2 (``capability``: torch's name for this CPU's kernels,
    ``torch.backends.cpu.get_cpu_capability()`` when not given); elsewhere nets with
    depthwise convolutions, and inputs of at most 32x32 pixels on nets of at least 1M
    multiply-adds per image (``macs``: from the summary; counted here when not given)."""
    size = tuple(input_size or getattr(model, "default_input_size", None) or ())
    if len(size) != 3:  # text models and unknown inputs: nothing to decide
        return False
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    if not convs:
        return False
    if (capability or torch.backends.cpu.get_cpu_capability()) in CHANNELS_LAST_EVERYWHERE:
        return True
    if any(c.groups > 1 and c.groups == c.in_channels for c in convs):
        return True
    if max(size[1:]) > CHANNELS_LAST_MAX_SIDE:
        return False
    if macs is None:
        from cnnkit.summary import summary

        macs = summary(model, size).total_macs
    return macs >= CHANNELS_LAST_MIN_MACS


def _cpu_layout(
    model: torch.nn.Module, input_size: tuple[int, ...], resumed: Path | None, table: Any
) -> bool:
    """The CPU layout decision (:func:`cpu_channels_last`); a resumed run keeps the one it
    started with, whatever the rule says now."""
    if resumed is not None:
        saved = read_json(resumed / CONFIG_FILE).get("resolved", {}).get("channels_last")
        if isinstance(saved, bool):
            return saved
    return cpu_channels_last(model, input_size, getattr(table, "total_macs", None))


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
        # None on a CPU: decided by cpu_channels_last once the model exists
        "channels_last": (True if gpu else None)
        if config.channels_last is None
        else bool(config.channels_last),
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

        def make_datamodule(
            image_size: tuple[int, int] | None, in_chans: int | None, normalize: Any, augment: Any
        ) -> Any:
            return build_datamodule(
                data=config.data,
                batch_size=config.batch_size or 64,
                image_size=image_size,
                in_chans=in_chans,
                augment=augment,
                val_fraction=config.val_fraction,
                test_fraction=config.test_fraction,
                seed=config.seed,
                num_workers=config.workers,
                cache=config.cache,
                run_dir=run_dir if writer else None,
                resize=config.resize,
                normalize=normalize,
            )

        try:
            built = build_run(config, make_datamodule, run_dir if writer else None, verbose)
        except BaseException:
            if fresh_dir:  # a run that never started leaves no folder behind
                shutil.rmtree(run_dir, ignore_errors=True)
            if fresh_parent:
                with contextlib.suppress(OSError):
                    run_dir.parent.rmdir()  # only if empty: another run may have appeared there
            raise
        dm, model, table, plan = built["dm"], built["model"], built["table"], built["plan"]
        input_size = tuple(int(d) for d in dm.input_size)
        if hw["channels_last"] is None:
            hw["channels_last"] = _cpu_layout(model, input_size, run_dir if resume else None, table)
        if writer:
            _write_run_files(run_dir, config, dm, table, hw, input_size, plan)
        if hw["gpu"]:
            dm.device_transforms = True  # uint8 batches to the GPU, augmented and normalised there
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        if hw["channels_last"]:
            model = model.to(memory_format=torch.channels_last)
        if config.compile:
            model.compile()  # in place: state_dict keys stay those of the plain model
        train_dm = dm
        if can_cache(plan, dm, config):  # frozen backbone: run it once, train the head on its output
            device = torch.device("cuda" if hw["gpu"] and torch.cuda.is_available() else "cpu")
            train_dm = FeatureDataModule(model.to(device), dm, config, run_dir, device)
            model.cpu()
        module = ClassifierModule(
            model,
            config,
            channels_last=hw["channels_last"],
            num_classes=dm.num_classes,
            plan=plan,
            head_only=train_dm is not dm,
        )

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
            trainer.fit(module, datamodule=train_dm, ckpt_path=str(run_dir / LAST_CKPT) if resume else None)
        finally:
            os.environ.pop(RUN_DIR_ENV, None)
        fit_seconds = time.perf_counter() - start
        if not trainer.is_global_zero:
            return {"rows": history.rows, "results": {}, "model": model}
        # With ddp_spawn the epochs ran (and metrics.csv was written) in spawned processes:
        # this process' history is empty, the checkpoint has it.
        rows = history.rows or _rows_from_checkpoint(run_dir / LAST_CKPT)
        if not rows:
            raise CnnkitError(
                "training stopped before the first epoch ended (max_time too short?); nothing to save."
            )
        results = _final_results(config, run_dir, dm, model, rows, hw, trainer)
        results["train_seconds"] = round(fit_seconds + history.restored_seconds, 3)
        write_json_atomic(run_dir / RESULTS_FILE, results)
    return {"rows": rows, "results": results, "model": model}


def _callbacks(
    config: TrainConfig, run_dir: Path, history: EpochHistory, extra: list[Any]
) -> tuple[list[Any], Any]:
    mode = monitor_mode(config.monitor)
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
    run_dir: Path, config: TrainConfig, dm: Any, table: Any, hw: dict[str, Any], input_size: tuple, plan: Any
) -> None:
    import cnnkit

    resolved = {
        "input_size": list(input_size),
        "lr": learning_rate(config),
        "batch_size": dm.batch_size,
        "augment": dm.augment.to_dict() if getattr(dm, "augment", None) is not None else None,
        "precision": hw["precision"],
        "channels_last": hw["channels_last"],
        "deterministic": hw["deterministic"],
        "num_classes": dm.num_classes,
    }
    if not isinstance(config.model, str):  # a module passed from Python: its class is the record
        resolved["model_class"] = f"{type(config.model).__module__}.{type(config.model).__qualname__}"
    if plan is not None:
        resolved["transfer_groups"] = plan.describe()
    saved = {**config.to_json(), "resolved": resolved, "cnnkit_version": cnnkit.__version__}
    write_json_atomic(run_dir / CONFIG_FILE, saved)
    write_json_atomic(run_dir / CLASSES_FILE, list(dm.classes))
    if hasattr(dm, "mean"):  # image data: what inference must do to an image
        normalization = {
            "mean": [float(m) for m in dm.mean],
            "std": [float(s) for s in dm.std],
            "input_size": list(input_size),
            "resize": config.resize,
        }
        preprocess = getattr(dm, "eval_preprocess", None)
        if preprocess is not None:
            normalization["preprocess"] = preprocess.to_dict()
    else:  # text: the vocabulary file (vocab.json) says the rest
        normalization = {"input_size": list(input_size), "kind": "text"}
    write_json_atomic(run_dir / NORMALIZATION_FILE, normalization)
    write_text_atomic(run_dir / SUMMARY_FILE, str(table) + "\n")


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
    """Evaluate the best checkpoint on the test split (validation split if there is none).

    ``best_epoch`` is 1-based, as printed and as in metrics.csv; ``best_<metric>`` is given
    for every validation metric logged, each by its own direction.
    """
    from cnnkit.models.weights import read_state_dict

    best_path = run_dir / BEST_CKPT
    model.load_state_dict(read_state_dict(best_path if best_path.is_file() else run_dir / LAST_CKPT))
    split = "test" if dm.has_test else "val"
    loader = dm.test_dataloader() if split == "test" else dm.val_dataloader()
    device = next(model.parameters()).device
    autocast = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(hw["precision"])
    transform = (
        (lambda batch: dm.on_after_batch_transfer(batch, 0)) if getattr(dm, "device_transforms", 0) else None
    )
    scores = evaluate(model, loader, device, autocast, hw["channels_last"], transform)
    best = (max if monitor_mode(config.monitor) == "max" else min)(rows, key=lambda r: r[config.monitor])
    results: dict[str, Any] = {"test_acc": scores["acc"], "test_loss": scores["loss"]}
    if dm.num_classes > 5:
        results["test_top5"] = scores["top5"]
    results.update(
        {
            "eval_split": split,
            "eval_samples": scores["n"],
            "best_epoch": int(best["epoch"]),
            "monitor": config.monitor,
        }
    )
    for key in rows[0]:
        if key.startswith("val_"):
            pick = max if monitor_mode(key) == "max" else min
            results[f"best_{key}"] = pick(r[key] for r in rows)
    results.update(
        {
            "epochs": len(rows),
            "stopped_early": bool(trainer.should_stop) and len(rows) < config.epochs,
            "skipped_files": len(dm.skipped),
            "model": config.to_json()["model"],
            "data": data_label(config.data),
            "num_classes": dm.num_classes,
            "input_size": list(dm.input_size),
            "params": count_params(model),
            "split_sizes": dm.split_sizes(),
            "batch_size": dm.batch_size,
            "precision": hw["precision"],
            "world_size": trainer.world_size,
        }
    )
    if config.regime is not None:
        results["regime"] = config.regime
    if not hasattr(dm, "mean"):
        results["sample_kind"] = "sentences"
    crop = dm.augment.random_crop if dm.augment is not None else None
    if crop is not None:  # trained on random patches: also test on ten of them per image
        results["test_acc_10crop"] = ten_crop_accuracy(model, dm.uncropped_batches(split), crop, device)
    return results
