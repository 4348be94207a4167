"""Everything a training run depends on, as one plain dataclass: :class:`TrainConfig`.

The same object backs ``cnnkit train`` (one option per field) and :func:`cnnkit.fit`
(one keyword per field), is validated before anything heavy is imported (so a typo
fails in a fraction of a second), and is written to the run directory as
``config.json`` - which is all ``--resume`` needs to rebuild the run.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from cnnkit.errors import CnnkitError

OPTIMIZERS = (
    "sgd",
    "momentum",
    "nesterov",
    "adam",
    "adamw",
    "rmsprop",
    "adagrad",
    "adadelta",
    "adamax",
    "nadam",
)
SCHEDULES = ("none", "step", "multistep", "exponential", "cosine", "onecycle", "plateau")
MONITORS = ("val_acc", "val_loss")
PRECISIONS = ("32-true", "32", "16-mixed", "bf16-mixed", "bf16-true", "16-true", "64-true", "64")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")


@dataclass
class TrainConfig:
    """Options of one training run; defaults train LeNet-5 on the embedded digits in seconds.

    ``lr=None`` picks the optimizer's usual rate (see :data:`cnnkit.train.optim.DEFAULT_LR`),
    and for ``onecycle`` a peak ten times that rate. ``augment="default"`` is the data
    package's preset for the channel count (small shifts, rotations, zooms for digits;
    flips and shifts for photos); ``augment=None`` or ``"none"`` turns it off.
    ``image_size=None`` applies the image-size rule of :func:`cnnkit.fit`. ``precision``,
    ``channels_last`` and ``deterministic`` left at ``None`` are decided by the hardware:
    on a GPU bf16 autocast + channels_last + cuDNN autotuning, on a CPU float32 and
    deterministic algorithms (so a seeded CPU run repeats exactly).
    """

    model: str = "lenet5"
    data: Any = "digits"
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "onecycle"
    schedule_options: dict[str, Any] = field(default_factory=dict)
    augment: Any = "default"
    label_smoothing: float = 0.0
    seed: int = 0
    out: str | None = None
    image_size: tuple[int, int] | None = None
    in_chans: int | None = None
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    resize: str = "stretch"
    normalize: Any = "dataset"
    monitor: str = "val_acc"
    patience: int | None = None
    min_delta: float = 0.0
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    accelerator: str = "auto"
    precision: str | None = None
    compile: bool = False
    channels_last: bool | None = None
    deterministic: bool | None = None
    workers: int | None = None
    cache: bool = False
    max_time: str | None = None
    model_options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> TrainConfig:
        """Raise a one-line :class:`CnnkitError` for any impossible value; returns self."""
        checks = [
            (isinstance(self.epochs, int) and self.epochs >= 1, f"epochs={self.epochs} must be at least 1."),
            (
                isinstance(self.batch_size, int) and self.batch_size >= 1,
                f"batch size {self.batch_size} must be at least 1, e.g. --batch-size 64.",
            ),
            (self.lr is None or self.lr > 0, f"learning rate {self.lr} must be positive, e.g. --lr 0.001."),
            (self.weight_decay >= 0, f"weight decay {self.weight_decay} must be >= 0."),
            (0 <= self.momentum < 1, f"momentum {self.momentum} must be in [0, 1)."),
            (
                0 <= self.label_smoothing < 1,
                f"label smoothing {self.label_smoothing} must be in [0, 1), e.g. 0.1.",
            ),
            (self.patience is None or self.patience >= 0, f"patience {self.patience} must be >= 0."),
            (self.min_delta >= 0, f"min_delta {self.min_delta} must be >= 0."),
            (
                0 < self.val_fraction < 1,
                f"val_fraction={self.val_fraction} must be in (0, 1): the best checkpoint is chosen on it.",
            ),
            (self.num_nodes >= 1, f"num_nodes={self.num_nodes} must be at least 1."),
            (self.workers is None or self.workers >= 0, f"workers={self.workers} must be >= 0."),
        ]
        for ok, message in checks:
            if not ok:
                raise CnnkitError(message)
        for name, value, choices in (
            ("optimizer", self.optimizer, OPTIMIZERS),
            ("schedule", self.schedule, SCHEDULES),
            ("monitor", self.monitor, MONITORS),
            ("accelerator", self.accelerator, ACCELERATORS),
        ):
            if value not in choices:
                raise CnnkitError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}.")
        if self.precision is not None and str(self.precision) not in PRECISIONS:
            raise CnnkitError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}.")
        if isinstance(self.devices, str) and self.devices != "auto" and not self.devices.isdigit():
            raise CnnkitError(f"devices={self.devices!r} must be a number or 'auto'.")
        if isinstance(self.devices, int) and self.devices < 1:
            raise CnnkitError(f"devices={self.devices} must be at least 1.")
        if self.image_size is not None:
            self.image_size = parse_image_size(self.image_size)
        if self.max_time is not None:
            parse_max_time(self.max_time)
        return self

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly dict (arrays passed as ``data`` are recorded as a description)."""
        out = dataclasses.asdict(self)
        if not isinstance(self.data, (str, type(None))):
            out["data"] = "<arrays passed from Python>"
        if self.augment is not None and not isinstance(self.augment, (str, dict, bool)):
            to_dict = getattr(self.augment, "to_dict", None)
            out["augment"] = to_dict() if callable(to_dict) else str(self.augment)
        if self.image_size is not None:
            out["image_size"] = list(self.image_size)
        return out

    @classmethod
    def from_json(cls, saved: dict[str, Any]) -> TrainConfig:
        """Rebuild from ``config.json`` (unknown keys from other versions are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        config = cls(**{k: v for k, v in saved.items() if k in names})
        if config.image_size is not None:
            config.image_size = tuple(config.image_size)  # type: ignore[assignment]
        return config


def parse_image_size(value: Any) -> tuple[int, int]:
    """'28', '32x32', '224,224', 28 or (28, 28) -> (H, W)."""
    if isinstance(value, str):
        parts = [p for p in value.lower().replace(",", "x").split("x") if p]
        try:
            dims = tuple(int(p) for p in parts)
        except ValueError:
            raise CnnkitError(f"cannot read image size {value!r}; write HxW, e.g. 32x32.") from None
    elif isinstance(value, int):
        dims = (value,)
    else:
        dims = tuple(int(v) for v in value)
    if len(dims) == 3:  # CxHxW: the channels come from the data
        dims = dims[1:]
    if len(dims) == 1:
        dims = dims * 2
    if len(dims) != 2 or min(dims) < 1:
        raise CnnkitError(f"image size {value!r} must be two positive numbers HxW, e.g. 32x32.")
    return dims  # type: ignore[return-value]


def parse_max_time(text: str | int | float) -> timedelta:
    """'90s', '10m', '1.5h', '2d', a number of minutes, or 'DD:HH:MM:SS' -> timedelta."""
    if isinstance(text, (int, float)):
        return timedelta(minutes=float(text))
    value = text.strip().lower()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd]?)", value)
    if match:
        amount, unit = float(match.group(1)), match.group(2) or "m"
        return timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: amount})
    parts = value.split(":")
    if 2 <= len(parts) <= 4 and all(p.isdigit() for p in parts):
        days, hours, minutes, seconds = [0] * (4 - len(parts)) + [int(p) for p in parts]
        return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    raise CnnkitError(f"cannot read max time {text!r}; write e.g. 90s, 10m, 2h or DD:HH:MM:SS.")


def parse_options(text: str) -> dict[str, Any]:
    """'step_size=5,gamma=0.5' -> {'step_size': 5, 'gamma': 0.5} (numbers, lists and words)."""
    import ast

    options: dict[str, Any] = {}
    depth, current, parts = 0, [], []
    for char in text:  # split on top-level commas so "milestones=[5,8]" survives
        depth += char in "(["
        depth -= char in ")]"
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    for part in (p.strip() for p in parts):
        if not part:
            continue
        if "=" not in part:
            raise CnnkitError(f"option {part!r} is not key=value; write e.g. step_size=5,gamma=0.5.")
        key, raw = (s.strip() for s in part.split("=", 1))
        try:
            options[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            options[key] = raw
    return options
