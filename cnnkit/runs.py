"""The run directory: where it goes, and how files get there without ever being half-written.

Layout (every file written through a temp file in the same folder + ``os.replace``, so a
killed run leaves the previous complete version, never a truncated one)::

    runs/<model>-<data>-<YYYYmmdd-HHMMSS>/
        config.json         every option of the run (``--resume`` rebuilds from it)
        classes.json        class names, index order
        normalization.json  mean, std, input_size, resize: what inference must do
        split.json          train/val/test membership (written by the data package)
        summary.txt         cnnkit.summary of the model at the training input size
        best.ckpt last.ckpt Lightning checkpoints (best by the monitored metric; every epoch)
        metrics.csv         one row per epoch
        curves.png          loss and accuracy, train vs validation
        results.json        test accuracy and the other final numbers
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

from cnnkit.errors import CnnkitError

RUN_DIR_ENV = "CNNKIT_RUN_DIR"  # hands the run directory to the processes Lightning's DDP launcher starts


def data_label(data: Any) -> str:
    """A short, filesystem-safe name for the data source ('digits', 'MNIST', 'arrays')."""
    if not isinstance(data, (str, os.PathLike)):
        return "arrays"
    path = Path(data).expanduser()
    name = path.name if path.name not in ("raw", "train", "") else path.resolve().parent.name
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:40] or "data"


def new_run_dir(model: str, data: Any, root: str | Path = "runs") -> Path:
    """``runs/<model>-<data>-<timestamp>``, with a suffix if two runs start in the same second."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{model}-{data_label(data)}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def check_resumable(run_dir: str | Path) -> Path:
    """The run directory to resume, or a one-line error saying what is missing."""
    run_dir = Path(run_dir).expanduser()
    if not run_dir.is_dir():
        raise CnnkitError(
            f"cannot resume {run_dir}: no such directory. Pass a run directory, e.g. runs/lenet5-..."
        )
    if not (run_dir / "config.json").is_file():
        raise CnnkitError(f"cannot resume {run_dir}: it is not a cnnkit run directory (no config.json).")
    if not (run_dir / "last.ckpt").is_file():
        raise CnnkitError(
            f"cannot resume {run_dir}: it has no last.ckpt (the run stopped before its first epoch ended). "
            "Start a new run instead."
        )
    return run_dir


def global_rank_from_env() -> int:
    """This process' rank before the process group exists (0 for a plain single-process run).

    ``RANK`` (torchrun), ``SLURM_PROCID`` (srun), or the (``NODE_RANK``, ``LOCAL_RANK``) that
    Lightning's own DDP launcher gives the processes it starts; any non-zero part means
    "not the process that writes the run directory".
    """
    for key in ("RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    node = int(os.environ.get("NODE_RANK", os.environ.get("GROUP_RANK", "0")) or 0)
    local = int(os.environ.get("LOCAL_RANK", "0") or 0)
    return node * 100_000 + local


def inherited_run_dir() -> Path | None:
    """Rank 0's run directory, in a process that Lightning's DDP launcher started."""
    value = os.environ.get(RUN_DIR_ENV)
    return Path(value) if value and global_rank_from_env() != 0 else None
