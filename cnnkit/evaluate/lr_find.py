"""The learning-rate range test (Smith, "Cyclical Learning Rates for Training Neural
Networks", WACV 2017; the fastai ``lr_find``): train for a few hundred steps while the
learning rate grows exponentially from ``start_lr`` to ``end_lr``, record the smoothed loss,
stop once it explodes, and suggest the rate where the loss falls fastest.

The model, data and optimizer are built exactly as ``cnnkit train`` would build them for
the same options (same registry, datamodule, optimizer factory); the weights are thrown
away afterwards - nothing is written but the plot and the numbers.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cnnkit.errors import CnnkitError

SMOOTH = 0.98  # exponential moving average of the loss, debiased (as in fastai)
EXPLODE = 4.0  # stop once the smoothed loss is this many times its minimum


def _model_and_data(config: Any) -> tuple[torch.nn.Module, Any]:
    """The net and datamodule, with cnnkit train's image-size rule (data size if the net takes it,
    else the model's default input size)."""
    from cnnkit.data import build_datamodule
    from cnnkit.models.registry import create_model, model_info

    def make(size: Any) -> Any:
        return build_datamodule(
            config.data, batch_size=config.batch_size or 64, image_size=size, in_chans=config.in_chans,
            augment=None if config.augment == "auto" else config.augment, val_fraction=config.val_fraction,
            test_fraction=config.test_fraction, seed=config.seed, resize=config.resize,
            normalize=config.normalize or "dataset",
        )  # fmt: skip

    sizes = (
        [config.image_size] if config.image_size else [None, tuple(model_info(config.model).input_size[1:])]
    )
    last: Exception | None = None
    for size in sizes:
        dm = make(size)
        c = dm.input_size
        try:
            net = create_model(config.model, num_classes=dm.num_classes, in_chans=c[0], input_size=tuple(c))
            with torch.no_grad():
                net.eval()(torch.zeros(1, *c))
            return net, dm
        except CnnkitError:
            raise
        except Exception as exc:  # too small for this net: try the model's own input size
            last = exc
    raise CnnkitError(f"{config.model} cannot run on this data ({last}); pass --image-size.")


def lr_find(
    model: str = "lenet5",
    data: Any = "digits",
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 100,
    out: str | Path | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Run the range test; returns ``{"lrs", "losses", "suggested_lr", "min_loss_lr", "png"}``.

    ``options`` are :class:`cnnkit.train.config.TrainConfig` fields (optimizer, batch_size,
    weight_decay, augment, image_size, ...). ``suggested_lr`` is the rate at the steepest
    descent of the smoothed loss; ``min_loss_lr / 10`` is the other usual rule of thumb.
    """
    from cnnkit.train.config import TrainConfig
    from cnnkit.train.optim import build_optimizer

    if not 0 < start_lr < end_lr:
        raise CnnkitError(f"need 0 < start_lr < end_lr; got {start_lr} and {end_lr}.")
    if steps < 10:
        raise CnnkitError(f"steps={steps} is too few for a range test; use 50 or more.")
    torch.manual_seed(int(options.get("seed", 0)))
    config = TrainConfig(model=model, data=data, **options).validate()
    config.lr = start_lr
    net, dm = _model_and_data(config)
    net.train()
    optimizer = build_optimizer(net.parameters(), config)
    gamma = (end_lr / start_lr) ** (1 / (steps - 1))
    lrs, losses, raw = [], [], []
    avg, best = 0.0, math.inf
    batches = iter(dm.train_dataloader())
    for step in range(steps):
        lr = start_lr * gamma**step
        for group in optimizer.param_groups:
            group["lr"] = lr
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(dm.train_dataloader())
            x, y = next(batches)
        out_ = net(x)
        logits = out_[0] if isinstance(out_, (tuple, list)) else out_
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        value = loss.item()
        avg = SMOOTH * avg + (1 - SMOOTH) * value
        smooth = avg / (1 - SMOOTH ** (step + 1))
        lrs.append(lr)
        raw.append(value)
        losses.append(smooth)
        if not math.isfinite(smooth) or (step > 10 and smooth > EXPLODE * best):
            break
        best = min(best, smooth)
    result = _suggest(lrs, losses)
    result.update(
        {"lrs": lrs, "losses": losses, "raw_losses": raw, "model": model, "optimizer": config.optimizer}
    )
    if out is not None:
        result["png"] = str(plot_lr_find(result, Path(out)))
    return result


def _suggest(lrs: list[float], losses: list[float]) -> dict[str, Any]:
    finite = [i for i, v in enumerate(losses) if math.isfinite(v)]
    if len(finite) < 5:
        raise CnnkitError("the loss diverged at once; lower --start-lr.")
    lr = np.log10(np.array(lrs)[finite])
    loss = np.array(losses)[finite]
    low = int(np.argmin(loss))
    # Steepest descent before the minimum (skip the first steps, where the average warms up).
    begin = min(len(loss) // 10, max(low - 1, 0))
    slope = np.gradient(loss[: low + 1], lr[: low + 1]) if low >= 2 else np.array([0.0])
    steep = begin + int(np.argmin(slope[begin:])) if len(slope) > begin else low
    if loss[low] > 0.95 * loss[0]:  # no clear descent (e.g. plain SGD in too few steps): stay well below it
        return {
            "suggested_lr": float(10 ** lr[low] / 10),
            "min_loss_lr": float(10 ** lr[low]),
            "min_loss": float(loss[low]),
            "note": "the loss never fell clearly; suggesting min-loss / 10 - try more --steps",
        }
    return {
        "suggested_lr": float(10 ** lr[steep]),
        "min_loss_lr": float(10 ** lr[low]),
        "min_loss": float(loss[low]),
    }


def plot_lr_find(result: dict[str, Any], path: Path) -> Path:
    from cnnkit.evaluate.plots import new_figure, save_figure

    fig = new_figure(7, 4.5)
    ax = fig.subplots()
    ax.plot(result["lrs"], result["raw_losses"], color="lightgray", linewidth=1, label="loss per step")
    ax.plot(result["lrs"], result["losses"], color="tab:blue", label="smoothed loss")
    ax.axvline(result["suggested_lr"], color="tab:red", linestyle="--",
               label=f"suggested {result['suggested_lr']:.2g} (steepest)")  # fmt: skip
    ax.axvline(result["min_loss_lr"] / 10, color="tab:green", linestyle=":",
               label=f"min-loss / 10 = {result['min_loss_lr'] / 10:.2g}")  # fmt: skip
    ax.set_xscale("log")
    finite = [v for v in result["losses"] if math.isfinite(v)]
    ax.set_ylim(min(finite) * 0.9, min(max(finite), finite[0] * 2.5))
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title(f"LR range test: {result['model']} with {result['optimizer']}")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)
