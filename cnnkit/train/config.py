"""Everything a training run depends on, as one plain dataclass: :class:`TrainConfig`.

It is the one source of truth for the options: ``cnnkit train`` generates one flag per
field from the field's metadata (help text, choices, parser - see
:mod:`cnnkit.cli.train`), :func:`cnnkit.fit` takes one keyword per field, the values are
validated before anything heavy is imported (a typo fails in a fraction of a second), and
the whole record is written to the run directory as ``config.json`` - all ``--resume``
needs to rebuild the run. A new option is one line here.
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
MONITORS = ("val_acc", "val_loss", "val_top5", "train_acc", "train_loss")
PRECISIONS = ("32-true", "32", "16-mixed", "bf16-mixed", "bf16-true", "16-true", "64-true", "64")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")
RESIZE_MODES = ("stretch", "aspect")
REGIMES = ("features", "truncate", "finetune", "full", "auto")
HEADS = ("linear", "mlp")


def monitor_mode(metric: str) -> str:
    """'min' for losses, 'max' for everything else (accuracies): the one place this is decided."""
    return "min" if "loss" in metric else "max"


def parse_options(text: str) -> dict[str, Any]:
    """'step_size=5,gamma=0.5' -> {'step_size': 5, 'gamma': 0.5} (numbers, lists and words)."""
    import ast

    from cnnkit.data.augment import split_top_level  # the one key=value,... splitter

    options: dict[str, Any] = {}
    for part in (p.strip() for p in split_top_level(text)):
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


def parse_epochs(text: str | list[int]) -> list[int]:
    """'3,5' -> [3, 5] (1-based epoch numbers, as printed)."""
    if isinstance(text, (list, tuple)):
        return [int(v) for v in text]
    try:
        return [int(p) for p in str(text).split(",") if p.strip()]
    except ValueError:
        raise CnnkitError(f"cannot read epochs {text!r}; write e.g. 3,5.") from None


def parse_normalize(text: str) -> Any:
    """'dataset' | 'imagenet' | 'tf' | 'none', or 'MEAN/STD' such as '0.5/0.25' or '0.4,0.4,0.4/0.2,0.2,0.2'."""
    if "/" not in text:
        return text
    try:
        mean, std = ([float(v) for v in part.split(",")] for part in text.split("/"))
    except ValueError:
        raise CnnkitError(
            f"cannot read normalize {text!r}; write a name or MEAN/STD, e.g. 0.5/0.25."
        ) from None
    return [mean, std]


def parse_pretrained(text: str) -> bool | str:
    return True if text.lower() in ("true", "1", "yes") else text


def option(default: Any = None, help: str = "", factory: Any = None, **cli: Any) -> Any:
    """A config field: ``help`` and the ``cli`` keys (type, choices, metavar, nargs, const,
    flag=False to keep it Python-only) are what ``cnnkit train`` builds its flag from."""
    metadata = {"help": help, **cli}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """Options of one training run; defaults train LeNet-5 on the embedded digits in seconds.

    ``lr=None`` picks the optimizer's usual rate (see :data:`cnnkit.train.optim.DEFAULT_LR`),
    and for ``onecycle`` a peak ten times that rate. ``precision``, ``channels_last`` and
    ``deterministic`` left at ``None`` are decided by the hardware: on a GPU bf16 autocast +
    channels_last + cuDNN autotuning, on a CPU float32 and deterministic algorithms (so a
    seeded CPU run repeats exactly). The transfer fields (``pretrained`` .. ``train_bn``) are
    explained in :mod:`cnnkit.transfer`.
    """

    model: Any = option("lenet5", "architecture name (default lenet5; see 'cnnkit models')")
    data: Any = option("digits", "'digits' (default), an image folder, an MNIST/CIFAR folder, a text TSV")
    epochs: int = option(10, "epochs to train (default 10)", type=int)
    batch_size: int | None = option(
        None, "images per step and process (default 64; 256 for 20,000+ training images)", type=int
    )
    optimizer: str = option("adam", "optimizer (default adam)", choices=OPTIMIZERS)
    lr: float | None = option(
        None, "learning rate (default: the optimizer's; x10 peak for onecycle)", type=float
    )
    momentum: float = option(0.9, "momentum of the momentum/nesterov optimizers (0.9)", type=float)
    weight_decay: float = option(0.0, "L2 weight decay (default 0)", type=float)
    schedule: str = option("onecycle", "learning-rate schedule (default onecycle)", choices=SCHEDULES)
    schedule_options: dict[str, Any] = option(
        help="schedule knobs, e.g. step_size=5,gamma=0.5", factory=dict, type=parse_options, metavar="K=V,..."
    )
    augment: Any = option(
        "auto",
        "auto (default: the 'default' preset under 20,000 training images, none above and for a frozen "
        "backbone), 'default', 'light', 'strong', 'none', or knobs: rotation_range=10,...",
        metavar="SPEC",
    )
    label_smoothing: float = option(0.0, "label smoothing of the training loss (default 0)", type=float)
    seed: int = option(0, "random seed: same seed, same run on CPU (default 0)", type=int)
    out: str | None = option(None, "run directory (default runs/<model>-<data>-<timestamp>)", metavar="DIR")
    image_size: tuple[int, int] | None = option(
        None,
        "train at this size (default: the data's if the model takes it, else the model's)",
        metavar="HxW",
    )
    in_chans: int | None = option(None, "1 (grayscale) or 3 (RGB); default: the data's", type=int)
    val_fraction: float = option(0.1, "share of the training pool for validation (0.1)", type=float)
    test_fraction: float = option(
        0.1, "share held out for testing when there is no test split (0.1)", type=float
    )
    resize: str = option("stretch", "how images reach the input size", choices=RESIZE_MODES)
    normalize: Any = option(
        None,
        "dataset (default; the weights' own with --pretrained), imagenet, tf, none, or MEAN/STD",
        type=parse_normalize,
    )
    monitor: str = option("val_acc", "metric for best.ckpt and early stopping", choices=MONITORS)
    plateau_monitor: str | None = option(
        None, "metric of --schedule plateau (default: --monitor)", choices=MONITORS
    )
    patience: int | None = option(None, "stop after N epochs without improvement (default: never)", type=int)
    min_delta: float = option(0.0, "smallest change that counts as an improvement", type=float)
    devices: int | str = option(1, "processes/GPUs to train on (default 1), or 'auto'")
    num_nodes: int = option(1, "machines, for multi-node DDP (torchrun or SLURM)", type=int)
    strategy: str = option("auto", "Lightning strategy, e.g. ddp (default auto)")
    accelerator: str = option("auto", "auto (default), cpu or gpu", choices=ACCELERATORS)
    precision: str | None = option(None, "default: bf16-mixed on GPU, 32-true on CPU", choices=PRECISIONS)
    compile: bool = option(False, "torch.compile the model")
    channels_last: bool | None = option(None, "channels-last memory format (default: on GPU)")
    deterministic: bool | None = option(None, "deterministic algorithms (default: on CPU)")
    workers: int | None = option(None, "data-loading processes (default: 0 in memory, else cores)", type=int)
    cache: bool = option(False, "decode an image folder once into a uint8 cache")
    max_time: str | None = option(None, "stop after this long: 90s, 10m, 2h or DD:HH:MM:SS", metavar="T")
    model_options: dict[str, Any] = option(
        help="builder options, e.g. aux_logits=true or shortcut=B",
        factory=dict,
        type=parse_options,
        metavar="K=V,...",
    )
    seq_len: int | None = option(
        None, "text data: tokens per sentence (default: the longest in train)", type=int
    )
    pretrained: bool | str | None = option(
        None, "start from weights: the model's own (no value), a TAG or a PATH", type=parse_pretrained,
        nargs="?", const=True, metavar="TAG|PATH",
    )  # fmt: skip
    regime: str | None = option(
        None, "transfer regime (needs --pretrained; see cnnkit.transfer)", choices=REGIMES
    )
    head: str = option("linear", "new head: linear, or GAP -> dense -> dropout -> dense (mlp)", choices=HEADS)
    head_hidden: int = option(256, "width of the mlp head's hidden layer (256)", type=int)
    head_dropout: float = option(0.5, "dropout of the mlp head (0.5)", type=float)
    cut: str | None = option(
        None, "truncate: the stage to cut at (see 'cnnkit stages MODEL')", metavar="STAGE"
    )
    warmup_epochs: int = option(1, "finetune: epochs of head-only training first (1)", type=int)
    backbone_lr_mult: float | None = option(
        None, "backbone LR = lr x this (finetune default 0.1, full 1)", type=float
    )
    freeze: int = option(0, "finetune: keep the first K stages frozen (0)", type=int, metavar="K")
    unfreeze_at: list[int] | None = option(
        None, "finetune: unfreeze one more stage group from the top at each epoch", type=parse_epochs,
        metavar="EPOCH,...",
    )  # fmt: skip
    train_bn: bool = option(False, "BatchNorm trainable (params + statistics) even in frozen stages")

    def validate(self) -> TrainConfig:
        """Raise a one-line :class:`CnnkitError` for any impossible value; returns self."""
        checks = [
            (isinstance(self.epochs, int) and self.epochs >= 1, f"epochs={self.epochs} must be at least 1."),
            (
                self.batch_size is None or (isinstance(self.batch_size, int) and self.batch_size >= 1),
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
            (self.warmup_epochs >= 0, f"warmup_epochs={self.warmup_epochs} must be >= 0."),
            (self.freeze >= 0, f"freeze={self.freeze} must be >= 0 (stages kept frozen)."),
            (
                self.backbone_lr_mult is None or self.backbone_lr_mult >= 0,
                f"backbone_lr_mult={self.backbone_lr_mult} must be >= 0.",
            ),
            (0 <= self.head_dropout < 1, f"head_dropout={self.head_dropout} must be in [0, 1)."),
            (self.seq_len is None or self.seq_len >= 1, f"seq_len={self.seq_len} must be at least 1."),
        ]
        for ok, message in checks:
            if not ok:
                raise CnnkitError(message)
        for f in dataclasses.fields(self):
            choices, value = f.metadata.get("choices"), getattr(self, f.name)
            if choices and value is not None and str(value) not in choices:
                raise CnnkitError(
                    f"unknown {f.name.replace('_', ' ')} {value!r}; choose one of {', '.join(choices)}."
                )
        if isinstance(self.devices, str) and self.devices != "auto" and not self.devices.isdigit():
            raise CnnkitError(f"devices={self.devices!r} must be a number or 'auto'.")
        if isinstance(self.devices, int) and self.devices < 1:
            raise CnnkitError(f"devices={self.devices} must be at least 1.")
        if self.image_size is not None:
            self.image_size = parse_image_size(self.image_size)
        if self.max_time is not None:
            parse_max_time(self.max_time)
        if self.unfreeze_at is not None:
            self.unfreeze_at = parse_epochs(self.unfreeze_at)
        transfer_only = [
            name
            for name, value in (("cut", self.cut), ("unfreeze_at", self.unfreeze_at))
            if value is not None and self.regime is None
        ]
        if transfer_only:
            raise CnnkitError(f"{', '.join(transfer_only)} needs a transfer regime; add --regime.")
        return self

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly dict (arrays passed as ``data``, modules as ``model`` are described)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if not isinstance(self.model, str):
            values["model"] = None
        out = dataclasses.asdict(TrainConfig(**values))
        if not isinstance(self.model, str):
            out["model"] = f"custom:{type(self.model).__name__}"
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
        if saved.get("batch_size") is None and "resolved" in saved:  # the batch size the run used
            config.batch_size = saved["resolved"].get("batch_size")
        return config


def is_custom_model(name: Any) -> bool:
    """A module instance passed to ``fit(model=...)``, or its record ``custom:ClassName``."""
    return not isinstance(name, str) or name.startswith("custom:")


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
