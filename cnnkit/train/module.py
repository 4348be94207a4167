"""The LightningModule that trains any zoo classifier, and the evaluation loop.

Loss: cross-entropy (with optional label smoothing) on the logits, plus, for networks
with auxiliary classifiers (GoogLeNet, Inception v3: attribute ``aux_weight``, forward
returns ``(logits, [aux_logits, ...])`` in train mode), ``aux_weight * sum(CE(aux))`` as
Szegedy et al. 2015 train them. Validation and test losses are plain cross-entropy
(no smoothing, no aux heads), so runs with different recipes compare directly.

Epoch metrics are exact: each process sums (loss, correct top-1, correct top-5, count)
over its batches and the sums are all-reduced across processes, instead of averaging
per-batch means - so the last, smaller batch is weighted correctly.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

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


class Tally:
    """Running sums of one epoch: loss * n, top-1 hits, top-5 hits, n."""

    def __init__(self) -> None:
        self.sums: torch.Tensor | None = None

    def reset(self) -> None:
        self.sums = None

    def update(self, loss: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> None:
        n = target.shape[0]
        loss, logits = loss.detach(), logits.detach()
        k = min(5, logits.shape[1])
        topk = logits.topk(k, dim=1).indices
        hits = topk.eq(target[:, None])
        count = loss.new_tensor(float(n), dtype=torch.float32)
        row = torch.stack([loss.float() * n, hits[:, 0].sum().float(), hits.any(dim=1).sum().float(), count])
        self.sums = row if self.sums is None else self.sums + row

    def result(self, reduce: Any = None) -> dict[str, float]:
        sums = self.sums if self.sums is not None else torch.zeros(4)
        if reduce is not None:
            sums = reduce(sums)
        loss, top1, top5, n = (float(v) for v in sums.cpu())
        n = max(n, 1.0)
        return {"loss": loss / n, "acc": top1 / n, "top5": top5 / n}


class ClassifierModule(L.LightningModule):
    """Wraps a zoo model: optimisation by ``TrainConfig``, exact epoch metrics.

    After each validation epoch ``self.epoch_metrics`` holds train_loss, train_acc,
    val_loss, val_acc, val_top5 for the epoch (identical on every process); the
    history callback turns it into a row of ``metrics.csv``.
    """

    def __init__(self, model: nn.Module, config: TrainConfig, channels_last: bool = False) -> None:
        super().__init__()
        self.model = model
        self.config = config
        self.channels_last = channels_last
        self.train_tally, self.val_tally = Tally(), Tally()
        self.epoch_metrics: dict[str, float] = {}
        self.aux_weight = float(getattr(model, "aux_weight", 0.0) or 0.0)
        # Top-5 accuracy says something only when there are more than 5 classes.
        self.report_top5 = int(getattr(model, "num_classes", 0)) > 5

    def forward(self, x: torch.Tensor) -> Any:
        return self.model(x)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits, aux = split_aux(self.model(self._prepare(x)))
        smoothing = self.config.label_smoothing
        loss = F.cross_entropy(logits, y, label_smoothing=smoothing)
        if aux and self.aux_weight:
            loss = loss + self.aux_weight * sum(F.cross_entropy(a, y, label_smoothing=smoothing) for a in aux)
        self.train_tally.update(loss, logits, y)
        self.log("loss", loss.detach(), prog_bar=True, on_step=True, on_epoch=False, batch_size=y.shape[0])
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits, _ = split_aux(self.model(self._prepare(x)))
        self.val_tally.update(F.cross_entropy(logits, y), logits, y)

    def on_train_epoch_start(self) -> None:
        self.train_tally.reset()

    def on_validation_epoch_start(self) -> None:
        self.val_tally.reset()

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return

        def reduce(sums: torch.Tensor) -> torch.Tensor:
            return self.trainer.strategy.reduce(sums.to(self.device), reduce_op="sum")

        train, val = self.train_tally.result(reduce), self.val_tally.result(reduce)
        self.epoch_metrics = {
            "train_loss": train["loss"],
            "train_acc": train["acc"],
            "val_loss": val["loss"],
            "val_acc": val["acc"],
        }
        if self.report_top5:
            self.epoch_metrics["val_top5"] = val["top5"]
        # Already reduced, so every process logs the same value (what EarlyStopping,
        # ModelCheckpoint and ReduceLROnPlateau read from trainer.callback_metrics).
        for key in ("val_loss", "val_acc"):
            self.log(key, self.epoch_metrics[key], prog_bar=True, sync_dist=False)
        self.log("train_acc", train["acc"], prog_bar=True, sync_dist=False)

    def configure_optimizers(self) -> Any:
        optimizer = build_optimizer(self.model.parameters(), self.config)
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
    """Loss, top-1 and top-5 accuracy of ``model`` over ``batches`` (all of them, one process).

    ``transform(batch) -> batch`` runs after the move to ``device`` (the datamodule's
    GPU-side normalisation when its loaders yield uint8).
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    tally = Tally()
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
            tally.update(F.cross_entropy(logits, y), logits, y)
    finally:
        model.train(was_training)
    result = tally.result()
    result["n"] = int(tally.sums[3]) if tally.sums is not None else 0
    return result


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
