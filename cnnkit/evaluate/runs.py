"""A trained run, ready to be evaluated: its model, classes, normalisation and data.

Uses :class:`cnnkit.runs.Run` when it exists (the shared run-directory reader) and reads the
run layout directly otherwise (config.json, classes.json, normalization.json, best.ckpt).
The evaluation data is rebuilt with :func:`cnnkit.data.build_datamodule` exactly as the
run's training built it - same source, fractions, seed and saved ``split.json`` (so the
test split is the run's own), same size, channels and mean/std.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch.nn as nn

from cnnkit.errors import CnnkitError
from cnnkit.fileio import read_json

CROP_PCT = 0.875  # 10-crop of a run without random crops: resize to size / 0.875, cut size patches


@dataclass
class EvalRun:
    """What evaluation needs from a run directory."""

    path: Path
    config: dict[str, Any]
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: tuple[int, int, int]
    resize: str
    model: nn.Module


def open_run(path: str | Path) -> EvalRun:
    """Load a ``cnnkit train`` run directory (best checkpoint, eval mode); one-line error if it is not one."""
    run = Path(path).expanduser()
    if not (run / "config.json").is_file() or not (run / "normalization.json").is_file():
        raise CnnkitError(
            f"{run} is not a cnnkit run directory (no config.json/normalization.json); "
            "pass a folder written by 'cnnkit train'."
        )
    try:
        from cnnkit.runs import Run  # helper P's reader, when it has landed
    except ImportError:
        Run = None  # noqa: N806
    if Run is not None:
        loaded = Run.load(run)
        model, classes = loaded.load_model(), list(loaded.classes)
    else:
        from cnnkit.predict import load_run

        model, classes, _ = load_run(run)
    norm = read_json(run / "normalization.json")
    return EvalRun(
        path=run,
        config=read_json(run / "config.json"),
        classes=classes,
        mean=tuple(float(v) for v in norm["mean"]),
        std=tuple(float(v) for v in norm["std"]),
        input_size=tuple(int(v) for v in norm["input_size"]),  # type: ignore[arg-type]
        resize=norm.get("resize", "stretch"),
        model=model.eval(),
    )


@contextlib.contextmanager
def _split_dir(run: EvalRun, own_data: bool) -> Iterator[Path | None]:
    """A scratch run_dir holding a copy of the run's split.json (the datamodule reads the saved
    split from there and writes its own files there, never into the run)."""
    if not own_data or not (run.path / "split.json").is_file():
        yield None
        return
    tmp = Path(tempfile.mkdtemp(prefix="cnnkit-eval-"))
    try:
        shutil.copy(run.path / "split.json", tmp / "split.json")
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_datamodule(
    run: EvalRun, data: Any = None, batch_size: int = 128, scale: float = 1.0, workers: int | None = None
) -> Any:
    """The run's datamodule (``data=None``: its own data and splits), or one over new labelled
    ``data`` with the run's preprocessing. ``scale`` > 1 builds images that much larger than
    the model input (for 10-crop). Classes of new data must be the run's."""
    from cnnkit.data import build_datamodule
    from cnnkit.models.registry import model_info

    cfg = run.config
    own = data is None
    c, h, w = run.input_size
    target = (c, round(h * scale), round(w * scale)) if scale != 1.0 else run.input_size
    candidates: list[Any] = [cfg.get("image_size"), (h, w)]
    if scale != 1.0:
        candidates = [target[1:]]
    else:
        with contextlib.suppress(CnnkitError):
            candidates.append(tuple(model_info(cfg["model"]).input_size[1:]))
    # Only a random crop changes evaluation (a centre crop); the resolved spec says what "auto" became.
    augment = cfg.get("resolved", {}).get("augment", cfg.get("augment"))
    augment = None if augment == "auto" or scale != 1.0 else augment
    options = {
        "batch_size": batch_size,
        "in_chans": c,
        "augment": augment,
        "val_fraction": cfg.get("val_fraction", 0.1) if own else 0.0,
        "test_fraction": cfg.get("test_fraction", 0.1) if own else 0.0,
        "seed": cfg.get("seed", 0),
        "num_workers": workers,
        "resize": run.resize,
        "normalize": (run.mean, run.std),
    }
    with _split_dir(run, own) as scratch:
        for size in dict.fromkeys(tuple(s) if s is not None else None for s in candidates):
            dm = build_datamodule(cfg["data"] if own else data, image_size=size, run_dir=scratch, **options)
            if tuple(dm.input_size) == tuple(target):
                break
        else:
            raise CnnkitError(
                f"cannot rebuild {run.path}'s {tuple(target)} inputs from its data; "
                "was the run trained with a custom image size?"
            )
    if not own:
        check_classes(run.classes, dm.classes, data)
    return dm


def check_classes(run_classes: list[str], data_classes: list[str], data: Any) -> None:
    """New data must have exactly the run's classes (any order); one line naming the differences."""
    missing = [c for c in run_classes if c not in data_classes]
    extra = [c for c in data_classes if c not in run_classes]
    if missing or extra:
        lists = {"not in the run": extra, "missing from the data": missing}
        parts = "; ".join(f"{label}: {', '.join(names[:10])}" for label, names in lists.items() if names)
        raise CnnkitError(
            f"the classes of {data} do not match the run's ({parts}); "
            "evaluate on data with the same class folders."
        )


def eval_batches(dm: Any, split: str) -> Iterator[tuple[Any, Any]]:
    """Deterministic, in-order evaluation batches of ``split`` (centre-cropped for random-crop runs)."""
    loader = getattr(dm, "eval_dataloader", None)
    return iter(loader(split) if loader is not None else dm._loader(split, train=False))


def split_names(dm: Any) -> list[str]:
    return list(dm.split_sizes())


def sample_ids(dm: Any, split: str) -> list[str]:
    """One identifier per sample of ``split`` in loader order: file paths, or ``split:index``."""
    if getattr(dm, "format", None) == "folder":
        root = Path(dm.data).expanduser()
        return [str(root / rel) for rel, _ in dm.files[split]]
    return [f"{split}:{i}" for i in range(dm.split_sizes()[split])]
