"""The run directory: its layout, where a new one goes, and typed readers (:class:`Run`).

Layout (every file written through :mod:`cnnkit.fileio`: a temp file in the same folder,
fsync, ``os.replace`` - a killed run leaves the previous complete version, never half)::

    runs/<model>-<data>-<YYYYmmdd-HHMMSS>/
        config.json         every option of the run (``--resume`` rebuilds from it)
        classes.json        class names, index order
        normalization.json  {"preprocess": Preprocess.to_dict(), mean, std, input_size, resize}:
                            exactly the evaluation transform, which prediction applies
        split.json          train/val/test membership (written by the data package)
        skipped_files.txt   image files the data package skipped, with the reason
        summary.txt         cnnkit.summary of the model at the training input size
        best.ckpt last.ckpt Lightning checkpoints (best by the monitored metric; every epoch)
        metrics.csv         one row per epoch
        curves.png          loss and accuracy, train vs validation
        results.json        test accuracy and the other final numbers
        vocab.json          text runs only: the vocabulary (normalization.json: {"kind": "text"})

    >>> run = Run.load("runs/lenet5-digits-20260101-120000")        # doctest: +SKIP
    >>> run.preprocess(["seven.png"]).shape, run.classes[:3]       # doctest: +SKIP
    (torch.Size([1, 1, 28, 28]), ['0', '1', '2'])
"""

from __future__ import annotations

import csv
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnkit.errors import CnnkitError
from cnnkit.fileio import read_json
from cnnkit.preprocess import Preprocess

if TYPE_CHECKING:
    import torch.nn as nn

CONFIG_FILE = "config.json"
CLASSES_FILE = "classes.json"
NORMALIZATION_FILE = "normalization.json"
SPLIT_FILE = "split.json"
SKIPPED_FILE = "skipped_files.txt"
SUMMARY_FILE = "summary.txt"
BEST_CKPT = "best.ckpt"
LAST_CKPT = "last.ckpt"
METRICS_FILE = "metrics.csv"
CURVES_FILE = "curves.png"
RESULTS_FILE = "results.json"
VOCAB_FILE = "vocab.json"  # text runs: seq_len, tokenizer, words (written by cnnkit.data.text)
PREPROCESS_KEY = "preprocess"  # the Preprocess record inside normalization.json
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
    if not (run_dir / CONFIG_FILE).is_file():
        raise CnnkitError(f"cannot resume {run_dir}: it is not a cnnkit run directory (no config.json).")
    if not (run_dir / LAST_CKPT).is_file():
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


def normalization_record(preprocess: Preprocess) -> dict[str, Any]:
    """The content of ``normalization.json`` for a run evaluated with ``preprocess``: the
    record itself plus the flat keys older readers (and people) look at."""
    return {
        PREPROCESS_KEY: preprocess.to_dict(),
        "mean": list(preprocess.mean),
        "std": list(preprocess.std),
        "input_size": list(preprocess.input_size),
        "resize": preprocess.resize,
    }


def read_preprocess(norm: dict[str, Any], config: dict[str, Any] | None = None) -> Preprocess:
    """The :class:`Preprocess` of a ``normalization.json`` (and ``config.json``).

    Files from before the record existed hold only mean, std, input_size and resize; for a
    run trained with ``random_crop`` the resize-then-centre-crop is rebuilt from the config's
    ``image_size`` (when the run did not give one, the data's own size was used and is not
    recorded: the whole image is resized to the crop, as older cnnkit did).
    """
    if PREPROCESS_KEY in norm:
        return Preprocess.from_dict(norm[PREPROCESS_KEY])
    channels, h, w = (int(v) for v in norm["input_size"])
    resize_size = None
    config = config or {}
    crop = _random_crop(config.get("augment"))
    if crop is not None and config.get("image_size"):
        image_size = tuple(int(v) for v in config["image_size"])
        resize_size = image_size if image_size != (h, w) else None
    return Preprocess(
        size=(h, w),
        resize=norm.get("resize", "stretch"),
        mean=norm["mean"],
        std=norm["std"],
        channels=channels,
        resize_size=resize_size,
    )


def _random_crop(augment: Any) -> Any:
    if isinstance(augment, dict):
        return augment.get("random_crop")
    if isinstance(augment, str) and "random_crop" in augment:
        from cnnkit.data.augment import AugmentConfig  # no Lightning: cnnkit.data loads lazily

        try:
            return AugmentConfig.parse(augment).random_crop
        except CnnkitError:
            return None
    return None


@dataclass(frozen=True)
class Run:
    """A finished (or running) ``cnnkit train`` run directory, read and checked.

    ``path``; ``config`` (config.json as a dict); ``classes``; ``preprocess`` (exactly the
    evaluation transform; None for a text run, ``kind == "text"``); ``checkpoint``
    (best.ckpt, else last.ckpt); ``metrics`` (rows of metrics.csv); ``results``
    (results.json, {} while training); :meth:`load_model`.
    """

    path: Path
    config: dict[str, Any]
    classes: list[str]
    preprocess: Preprocess | None
    kind: str = "image"

    @classmethod
    def load(cls, path: str | Path) -> Run:
        """Read a run directory; one clear line for a folder that is not a run or a damaged file."""
        path = Path(path).expanduser()
        needed = (CONFIG_FILE, CLASSES_FILE, NORMALIZATION_FILE)
        if not path.is_dir():
            raise CnnkitError(
                f"run directory {path} does not exist; pass a folder written by 'cnnkit train'."
            )
        missing = [name for name in needed if not (path / name).is_file()]
        if missing:
            raise CnnkitError(
                f"{path} is not a cnnkit run directory (missing {', '.join(missing)}); "
                "pass a folder written by 'cnnkit train'."
            )
        config, classes, norm = (read_json(path / name) for name in needed)
        if not isinstance(config, dict) or "model" not in config:
            raise CnnkitError(f"{path / CONFIG_FILE} has no 'model' entry; the file is damaged.")
        if not isinstance(classes, list) or not classes:
            raise CnnkitError(f"{path / CLASSES_FILE} is not a list of class names; the file is damaged.")
        if isinstance(norm, dict) and norm.get("kind") == "text":
            return cls(path, config, [str(c) for c in classes], None, "text")
        try:
            preprocess = read_preprocess(norm, config)
        except (KeyError, TypeError, ValueError) as exc:
            raise CnnkitError(
                f"{path / NORMALIZATION_FILE} is damaged ({type(exc).__name__}: {exc}); train the run again."
            ) from None
        return cls(path, config, [str(c) for c in classes], preprocess)

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def checkpoint(self) -> Path:
        """best.ckpt, else last.ckpt; an error when the run saved neither yet."""
        for name in (BEST_CKPT, LAST_CKPT):
            if (self.path / name).is_file():
                return self.path / name
        raise CnnkitError(
            f"{self.path} has no {BEST_CKPT} or {LAST_CKPT} (the run stopped before its first epoch ended)."
        )

    @property
    def metrics(self) -> list[dict[str, float]]:
        """metrics.csv as one dict of floats per epoch ([] before the first epoch)."""
        path = self.path / METRICS_FILE
        if not path.is_file():
            return []
        try:
            with open(path, newline="") as fh:
                return [
                    {k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(fh)
                ]
        except (ValueError, csv.Error) as exc:
            raise CnnkitError(
                f"{path} is damaged ({exc}); it should hold one row of numbers per epoch."
            ) from None

    @property
    def results(self) -> dict[str, Any]:
        """results.json ({} while the run is still training)."""
        path = self.path / RESULTS_FILE
        return read_json(path) if path.is_file() else {}

    @property
    def input_size(self) -> tuple[int, ...]:
        """(C, H, W) of an image run; (seq_len,) of a text run."""
        if self.preprocess is None:
            return (int(read_json(self.path / VOCAB_FILE)["seq_len"]),)
        return self.preprocess.input_size

    def load_model(self, device: Any = "cpu") -> nn.Module:
        """The trained network with the checkpoint's weights, in eval mode (``weights_only`` load)."""
        from cnnkit.models.registry import create_model
        from cnnkit.models.weights import load_weights, read_state_dict

        model, options = self.config["model"], dict(self.config.get("model_options") or {})
        if not isinstance(model, str) or model.startswith(("custom:", "<")):
            raise CnnkitError(
                f"{self.path} was trained with a custom nn.Module; build it yourself and load {self.checkpoint}."
            )
        if self.kind == "text":
            vocab = read_json(self.path / VOCAB_FILE)
            options.update(vocab_size=len(vocab["words"]), input_size=(int(vocab["seq_len"]),))
        if self.config.get("regime"):  # a transfer network: new head, maybe cut at a stage
            from cnnkit.transfer import network_for_run

            net = network_for_run(self.config, len(self.classes), tuple(self.input_size))
        else:
            if self.kind != "text":
                options.update(in_chans=self.input_size[0], input_size=self.input_size)
            net = create_model(model, num_classes=len(self.classes), **options)
        load_weights(net, read_state_dict(self.checkpoint))
        return net.to(device).eval()
