"""The LightningModule that trains any classifier, and the evaluation loop.

Loss: cross-entropy (with optional label smoothing) on the logits, plus, for networks
with auxiliary classifiers (GoogLeNet, Inception v3: attribute ``aux_weight``, forward
returns ``(logits, [aux_logits, ...])`` in train mode), ``aux_weight * sum(CE(aux))`` as
Szegedy et al. 2015 train them. Validation and test losses are plain cross-entropy
(no smoothing, no aux heads), so runs with different recipes compare directly.

Epoch metrics are torchmetrics (:class:`EpochMetrics`): a batch-size-weighted mean loss
and micro top-1 / top-5 accuracy, whose states are summed across processes when computed
- so the last, smaller batch is weighted correctly and DDP runs report exact numbers.
Whatever :class:`EpochMetrics` computes is what ``metrics.csv``, ``History`` and
``results.json`` carry.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from cnnkit.train.config import TrainConfig
from cnnkit.train.optim import build_optimizer, build_scheduler


def split_aux(output: Any) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``logits`` or ``(logits, [aux, ...])`` -> (logits, aux list)."""
    if isinstance(output, (tuple, list)):
        logits, aux = output[0], output[1] if len(output) > 1 else []
        if isinstance(aux, torch.Tensor):
            aux = [aux]
        return logits, [a for a in aux if a is not None]
    return output, []


class EpochMetrics(nn.Module):
    """One epoch's loss (mean weighted by batch size), accuracy and - with more than five
    classes, where it says something - top-5 accuracy; ``compute()`` -> {"loss", "acc", "top5"},
    summed over every process when ``sync`` (training), over this process' only (``evaluate``)."""

    def __init__(self, num_classes: int, sync: bool = True) -> None:
        super().__init__()
        common = {"average": "micro", "validate_args": False, "sync_on_compute": sync}
        self.loss = MeanMetric(sync_on_compute=sync)
        metrics = {"acc": MulticlassAccuracy(num_classes, top_k=1, **common)}
        if num_classes > 5:
            metrics["top5"] = MulticlassAccuracy(num_classes, top_k=5, **common)
        self.scores = MetricCollection(metrics, compute_groups=False)
        self.count = 0

    @torch.no_grad()
    def update(self, loss: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> None:
        n = target.shape[0]
        self.loss.update(loss.detach().float(), weight=n)
        self.scores.update(logits.detach().float(), target)
        self.count += n

    def compute(self) -> dict[str, float]:
        out = {"loss": float(self.loss.compute())}
        out.update({k: float(v) for k, v in self.scores.compute().items()})
        return out

    def reset(self) -> None:
        self.loss.reset()
        self.scores.reset()
        self.count = 0


class ClassifierModule(L.LightningModule):
    """Wraps a classifier: optimisation by ``TrainConfig``, exact epoch metrics.

    After each validation epoch ``self.epoch_metrics`` holds train_loss, train_acc,
    val_loss, val_acc (and val_top5) for the epoch (identical on every process); the
    history callback turns it into a row of ``metrics.csv``. ``plan`` (a
    :class:`cnnkit.transfer.TransferPlan`) decides, per epoch, which parameter groups
    train and which BatchNorm layers stay in eval mode. ``head_only``: the batches are
    bottleneck features (:mod:`cnnkit.train.cached`) and only ``model.get_classifier()`` runs;
    the checkpoints still hold the whole network.
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        channels_last: bool = False,
        num_classes: int | None = None,
        plan: Any = None,
        head_only: bool = False,
    ) -> None:
        super().__init__()
        self.model = model
        self.head_only = head_only  # batches are cached feature vectors: only the head runs
        self.config = config
        self.channels_last = channels_last
        self.plan = plan
        classes = int(num_classes or getattr(model, "num_classes", 0) or 2)
        self.train_metrics, self.val_metrics = EpochMetrics(classes), EpochMetrics(classes)
        self.epoch_metrics: dict[str, float] = {}
        self.aux_weight = float(getattr(model, "aux_weight", 0.0) or 0.0)

    def forward(self, x: torch.Tensor) -> Any:
        return self.model.get_classifier()(x) if self.head_only else self.model(x)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        if self.plan is not None:
            self.plan.enforce_modes()  # frozen BatchNorm stays in eval mode whatever train() did
        logits, aux = split_aux(self(self._prepare(x)))
        smoothing = self.config.label_smoothing
        loss = F.cross_entropy(logits, y, label_smoothing=smoothing)
        if aux and self.aux_weight:
            loss = loss + self.aux_weight * sum(F.cross_entropy(a, y, label_smoothing=smoothing) for a in aux)
        self.train_metrics.update(loss, logits, y)
        if batch_idx % 10 == 0:  # the progress bar's loss; a log call per step costs ~1 ms on a CPU
            self.log(
                "loss", loss.detach(), prog_bar=True, on_step=True, on_epoch=False, batch_size=y.shape[0]
            )
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits, _ = split_aux(self(self._prepare(x)))
        self.val_metrics.update(F.cross_entropy(logits, y), logits, y)

    def on_train_epoch_start(self) -> None:
        self.train_metrics.reset()
        if self.plan is not None:
            self.plan.apply(self.current_epoch + 1)  # 1-based, as printed and as --unfreeze-at counts

    def on_validation_epoch_start(self) -> None:
        self.val_metrics.reset()

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        train, val = self.train_metrics.compute(), self.val_metrics.compute()  # synced across processes
        self.epoch_metrics = {
            **{f"train_{k}": v for k, v in train.items() if k != "top5"},
            **{f"val_{k}": v for k, v in val.items()},
        }
        # Already reduced, so every process logs the same value (what EarlyStopping,
        # ModelCheckpoint and ReduceLROnPlateau read from trainer.callback_metrics).
        for key, value in self.epoch_metrics.items():
            self.log(key, value, prog_bar=key in ("val_loss", "val_acc", "train_acc"), sync_dist=False)

    def configure_optimizers(self) -> Any:
        groups = self.plan.param_groups(self.config) if self.plan is not None else self.model.parameters()
        optimizer = build_optimizer(groups, self.config)
        scheduler = build_scheduler(optimizer, self.config, self.trainer.estimated_stepping_batches)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    transform: Any = None,
) -> dict[str, float]:
    """Loss, top-1 and top-5 accuracy and sample count ``n`` of ``model`` over ``batches``
    (all of them, one process).

    ``transform(batch) -> batch`` runs after the move to ``device`` (the datamodule's
    GPU-side normalisation when its loaders yield uint8).
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    metrics: EpochMetrics | None = None
    try:
        for batch in batches:
            x, y = (t.to(device, non_blocking=True) for t in batch)
            if transform is not None:
                x, y = transform((x, y))
            if channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                logits, _ = split_aux(model(x))
            logits = logits.float()
            if metrics is None:
                metrics = EpochMetrics(logits.shape[1], sync=False).to(device)  # this process' batches only
            metrics.update(F.cross_entropy(logits, y), logits, y)
    finally:
        model.train(was_training)
    if metrics is None:
        return {"loss": float("nan"), "acc": 0.0, "top5": 0.0, "n": 0}
    scores = {"top5": 1.0, **metrics.compute(), "n": metrics.count}  # top-5 of <= 5 classes: all hit
    return scores


def ten_crop_accuracy(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    crop_size: tuple[int, int],
    device: torch.device | str = "cpu",
) -> float:
    """Top-1 accuracy with 10-crop testing (seed 003's CropPreprocessor; AlexNet's recipe):
    the 4 corner and centre patches of each full image and their mirrors, probabilities
    averaged over the ten. ``batches`` are the uncropped evaluation images."""
    from cnnkit.data import ten_crop

    device = torch.device(device)
    was_training = model.training
    model.eval()
    correct = total = 0
    try:
        with torch.no_grad():
            for x, y in batches:
                x, y = x.to(device), y.to(device)
                logits, _ = split_aux(model(ten_crop(x, crop_size)))
                probs = logits.float().softmax(dim=1).view(x.shape[0], 10, -1).mean(dim=1)
                correct += int((probs.argmax(dim=1) == y).sum())
                total += int(y.numel())
    finally:
        model.train(was_training)
    return correct / max(total, 1)
