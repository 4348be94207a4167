"""Lightning callbacks and plugins of a cnnkit run: the epoch history (``metrics.csv``,
the Keras-style ``History``, one line per epoch), and checkpoint I/O that is atomic and
loads with ``weights_only=True``.
"""

from __future__ import annotations

import io
import math
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from cnnkit.fileio import write_bytes_atomic, write_text_atomic
from cnnkit.train.quiet import quiet_worker

METRIC_FILE = "metrics.csv"
CURVES_FILE = "curves.png"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoint I/O that writes ``x.ckpt`` as ``.x.ckpt.<pid>.tmp`` then renames it.

    Lightning's own save goes through fsspec's transaction, which stages the file in the
    system temp folder and *moves* it: across filesystems that move is a copy, so a kill
    during it leaves a truncated checkpoint. Staging next to the target makes the last
    step a same-filesystem rename, which is atomic. Loading refuses anything but tensors
    and plain containers (``weights_only=True``): a checkpoint is data, never code.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        write_bytes_atomic(Path(path), buffer.getvalue())

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict:
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)


def current_lr(trainer: L.Trainer) -> float:
    """Learning rate of the first parameter group of the first optimizer (NaN if none)."""
    if not trainer.optimizers:
        return math.nan
    return float(trainer.optimizers[0].param_groups[0]["lr"])


class EpochHistory(L.Callback):
    """Collects one row per epoch and writes ``metrics.csv`` (and ``curves.png``).

    A row is ``epoch`` (from 1, as printed) + whatever the module computed for the epoch
    (``pl_module.epoch_metrics``) + ``lr`` + ``time``; the CSV's columns follow the rows.

    A row is recorded when validation ends - before ModelCheckpoint (which Lightning
    always runs last) saves ``last.ckpt`` - and the rows are part of this callback's
    checkpointed state. So a resumed run restores exactly the epochs its checkpoint
    holds and rewrites ``metrics.csv`` from them: every epoch appears once.
    ``verbose=2`` prints one line per epoch (the form for logs and non-terminals).
    """

    def __init__(
        self, run_dir: Path | None, epochs: int, verbose: int = 2, plot_every_s: float = 30.0
    ) -> None:
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.epochs = epochs
        self.verbose = verbose
        self.plot_every_s = plot_every_s
        self.rows: list[dict[str, float]] = []
        self.restored_seconds = 0.0  # training time of the epochs a resumed run starts with
        self._epoch_start = self._last_plot = time.perf_counter()
        self._epoch_lr = math.nan

    # -- checkpointed state --------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"rows": [dict(r) for r in self.rows]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = [dict(r) for r in state_dict.get("rows", [])]
        self.restored_seconds = float(sum(r.get("time", 0.0) for r in self.rows))

    # -- hooks ---------------------------------------------------------------------
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # Runs before ModelCheckpoint's setup (Lightning puts checkpoint callbacks last), in every
        # process - also those ddp_spawn starts, which do not inherit the caller's warning filters.
        quiet_worker(self.verbose)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start = time.perf_counter()
        # Lightning steps epoch-wise schedulers before validation, so the rate is read here:
        # the rate this epoch trained with (its first step's, for per-step schedules).
        self._epoch_lr = current_lr(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not getattr(pl_module, "epoch_metrics", None):
            return
        # Epochs are numbered from 1 everywhere (metrics.csv, History, results.json, console).
        row: dict[str, float] = {"epoch": trainer.current_epoch + 1, **pl_module.epoch_metrics}
        row["lr"] = self._epoch_lr
        row["time"] = time.perf_counter() - self._epoch_start
        self.rows = [r for r in self.rows if r["epoch"] != row["epoch"]] + [row]

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or not self.rows:
            return
        self.write_csv()
        if self.verbose >= 2:
            print(format_row(self.rows[-1], self.epochs), flush=True)
        if self.run_dir is not None and time.perf_counter() - self._last_plot > self.plot_every_s:
            self.write_plot()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self.write_csv()
            self.write_plot()

    # -- files -----------------------------------------------------------------------
    def write_csv(self) -> None:
        if self.run_dir is not None:
            write_text_atomic(self.run_dir / METRIC_FILE, rows_to_csv(self.rows))

    def write_plot(self) -> None:
        self._last_plot = time.perf_counter()
        if self.run_dir is not None and self.rows:
            from cnnkit.train.plots import plot_curves

            plot_curves(self.rows, self.run_dir / CURVES_FILE)


def rows_to_csv(rows: list[dict[str, float]]) -> str:
    """CSV text, one column per metric in first-seen order; floats in full precision
    (repeatable runs compare equal)."""
    columns = list(dict.fromkeys(key for row in rows for key in row)) or ["epoch"]
    lines = [",".join(columns)]
    for row in rows:
        cells = []
        for key in columns:
            value = row.get(key)
            cells.append("" if value is None else str(int(value)) if key == "epoch" else repr(float(value)))
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def format_row(row: dict[str, float], epochs: int) -> str:
    """'epoch 3/12  train_loss 0.1234  train_acc 96.52%  val_loss 0.0876  val_acc 97.20%  lr 1.0e-03  0.8s'."""
    parts = [f"epoch {int(row['epoch'])}/{epochs}"]
    for key, value in row.items():
        if key in ("epoch", "lr", "time"):
            continue
        parts.append(f"{key} {value:.4f}" if "loss" in key else f"{key} {value:.2%}")
    parts += [f"lr {row.get('lr', math.nan):.2e}", f"{row.get('time', 0.0):.1f}s"]
    return "  ".join(parts)


def is_interactive() -> bool:
    """Whether a progress bar makes sense (stderr is a terminal)."""
    return bool(getattr(sys.stderr, "isatty", lambda: False)())
