"""Keeping a cnnkit run's output to what the user needs: Lightning's start-up chatter
("GPU available: False ...") and warnings that do not apply to how cnnkit uses it are
silenced; everything else still shows.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric")
NOT_APPLICABLE = (
    ".*does not have many workers.*",  # in-memory data needs no worker processes
    ".*Checkpoint directory .* exists and is not empty.*",  # resuming into the run directory
    ".*smaller than the logging interval.*",
    ".*`srun` command is available.*",
    ".*It is recommended to use `self.log\\(.*sync_dist=True.*",  # our epoch metrics are reduced already
    ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*",  # Lightning vs newer torch, harmless
    ".*module\\(s\\) in eval mode at the start of training.*",  # frozen BatchNorm of a transfer regime
)
_active = False  # inside quiet_lightning() in this process


def _silence(verbose: int) -> None:
    if verbose < 3:
        for name in LIGHTNING_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in NOT_APPLICABLE:
        warnings.filterwarnings("ignore", message=pattern)


@contextlib.contextmanager
def quiet_lightning(verbose: int) -> Iterator[None]:
    """Silence for the duration of a run; the caller's logging and warning settings come back after."""
    global _active
    levels = {name: logging.getLogger(name).level for name in LIGHTNING_LOGGERS}
    with warnings.catch_warnings():
        _silence(verbose)
        _active = True
        try:
            yield
        finally:
            _active = False
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)


def quiet_worker(verbose: int = 2) -> None:
    """In a process Lightning spawned for a run (ddp_spawn), silence for the process' life."""
    if not _active:
        _silence(verbose)
