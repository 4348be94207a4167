"""Train a classifier head on cached features, in memory: the feature-extraction regime.

With the backbone frozen, the network after the cut is a function of the cached vector
alone, so training it needs no images and no backbone: an epoch over 50,000 CIFAR images is
a few matrix multiplies (see ``bench/bench_features.py``). Two heads, as in the seeds:

* ``"linear"``: one ``nn.Linear`` - the linear probe (logistic regression on CNN codes);
* ``"mlp"``: the seeds' GAP -> dense -> dropout -> dense (GAP is already in the features:
  pooled pre-logits or a pooled stage), ``Linear(D, hidden) -> ReLU -> Dropout -> Linear``.

With augmented views in the record (``extract_features(..., views=K)``) each epoch shows
every training image as one of its K + 1 versions (plain or a view), drawn at random.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnkit.errors import CnnkitError
from cnnkit.features.record import Features
from cnnkit.preprocess import one_thread

HEADS = ("linear", "mlp")


def make_head(
    kind: str, in_features: int, num_classes: int, hidden: int = 256, dropout: float = 0.5
) -> nn.Module:
    """A fresh head mapping (N, in_features) features to (N, num_classes) logits."""
    if kind == "linear":
        return nn.Linear(in_features, num_classes)
    if kind == "mlp":
        return nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
    raise CnnkitError(f"unknown head {kind!r}. Use one of: {', '.join(HEADS)}.")


class FeatureClassifier(nn.Module):
    """Backbone (frozen, eval mode) + trained head as one image classifier:
    ``forward(x) = head(embedding of x)``, the embedding being the one the head was trained
    on (pooled pre-logits, or the pooled ``cut`` stage). What a probe predicts with."""

    def __init__(self, backbone: nn.Module, head: nn.Module, cut: str | None = None) -> None:
        super().__init__()
        from cnnkit.features.backbone import embedder

        self.backbone, self.head, self.cut = backbone.eval().requires_grad_(False), head, cut
        self._embed = embedder(self.backbone, cut)

    def train(self, mode: bool = True) -> FeatureClassifier:
        super().train(mode)
        self.backbone.eval()  # frozen: BatchNorm statistics never move
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self._embed(x))


@dataclass
class HeadResult:
    """``head`` (trained, eval mode, on the CPU); ``history``: one dict per epoch (``epoch``,
    ``train_loss``, ``train_acc``, ``val_loss``, ``val_acc`` when there is a validation
    split, ``seconds``); ``test_acc`` (None without a test split); ``best_val_acc``."""

    head: nn.Module
    history: list[dict[str, float]] = field(default_factory=list)
    test_acc: float | None = None
    best_val_acc: float | None = None


def _tensors(f: Features, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(np.ascontiguousarray(f.embeddings)).to(device), torch.from_numpy(f.labels).to(
        device
    )


@torch.no_grad()
def _evaluate(head: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> tuple[float, float]:
    head.eval()
    loss, correct = 0.0, 0
    for start in range(0, len(y), batch_size):
        logits = head(x[start : start + batch_size])
        target = y[start : start + batch_size]
        loss += float(F.cross_entropy(logits, target, reduction="sum"))
        correct += int((logits.argmax(1) == target).sum())
    return loss / max(len(y), 1), correct / max(len(y), 1)


def fit_head(
    features: Features,
    *,
    head: str | nn.Module = "linear",
    epochs: int = 30,
    lr: float = 1e-3,
    batch_size: int = 256,
    weight_decay: float = 1e-4,
    hidden: int = 256,
    dropout: float = 0.5,
    label_smoothing: float = 0.0,
    seed: int = 0,
    device: str | torch.device = "cpu",
    keep_best: bool = True,
) -> HeadResult:
    """Train a head on ``features`` (a :class:`cnnkit.features.Features` record).

    Trains on the "train" split with AdamW (``lr``, ``weight_decay``) and a cosine schedule
    for ``epochs`` epochs of ``batch_size``; reports "val" each epoch and keeps the weights
    of the best validation epoch (``keep_best``); ``test_acc`` is measured on "test".
    ``head``: "linear", "mlp" (``hidden`` units, ``dropout``) or your own module taking
    (N, D) features. Deterministic for a given ``seed`` on the CPU.

        >>> feats = cnnkit.features.extract_features("efficientnet_lite0", "digits")  # doctest: +SKIP
        >>> result = cnnkit.features.fit_head(feats, head="mlp", epochs=20)            # doctest: +SKIP
        >>> result.test_acc, result.history[-1]["val_acc"]                              # doctest: +SKIP
    """
    if epochs < 1:
        raise CnnkitError(f"epochs={epochs} must be at least 1.")
    if batch_size < 1:
        raise CnnkitError(f"batch_size={batch_size} must be at least 1.")
    have = features.split_names
    if "train" not in have:
        raise CnnkitError(f"fit_head needs a 'train' split; these features have {have}.")
    device = torch.device(device)
    # The caller's global RNG is left as it was: seeding happens on a forked state.
    with (
        torch.random.fork_rng(devices=[device] if device.type == "cuda" else []),
        one_thread(device.type == "cpu"),
    ):
        torch.manual_seed(seed)
        return _fit(
            features,
            head,
            epochs,
            lr,
            batch_size,
            weight_decay,
            hidden,
            dropout,
            label_smoothing,
            seed,
            device,
            keep_best,
        )


def _fit(
    features: Features,
    head: str | nn.Module,
    epochs: int,
    lr: float,
    batch_size: int,
    weight_decay: float,
    hidden: int,
    dropout: float,
    label_smoothing: float,
    seed: int,
    device: torch.device,
    keep_best: bool,
) -> HeadResult:
    have = features.split_names
    train = features.split("train")
    x, y = _tensors(train, device)
    views = torch.from_numpy(train.views).to(device) if train.views is not None else None
    val = _tensors(features.split("val"), device) if "val" in have else None
    test = _tensors(features.split("test"), device) if "test" in have else None
    num_classes = max(len(features.classes), int(features.labels.max()) + 1)
    module = (
        make_head(head, features.num_features, num_classes, hidden, dropout)
        if isinstance(head, str)
        else head
    )
    module = module.to(device)
    optimizer = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * -(-len(y) // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, 1))
    g = torch.Generator(device="cpu").manual_seed(seed)
    history: list[dict[str, float]] = []
    best: tuple[float, dict[str, Any]] | None = None
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        module.train()
        order = torch.randperm(len(y), generator=g).to(device)
        inputs = x
        if views is not None:  # each image as its plain self or one of its K views
            pick = torch.randint(0, views.shape[0] + 1, (len(y),), generator=g).to(device)
            stacked = torch.cat([x[None], views])
            inputs = stacked[pick, torch.arange(len(y), device=device)]
        total, correct = 0.0, 0
        for b in range(0, len(y), batch_size):
            idx = order[b : b + batch_size]
            logits = module(inputs[idx])
            loss = F.cross_entropy(logits, y[idx], label_smoothing=label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y[idx]).sum())
        row = {"epoch": epoch, "train_loss": total / len(y), "train_acc": correct / len(y)}
        if val is not None:
            row["val_loss"], row["val_acc"] = _evaluate(module, *val, batch_size * 4)
            if keep_best and (best is None or row["val_acc"] > best[0]):
                best = (row["val_acc"], {k: v.detach().clone() for k, v in module.state_dict().items()})
        row["seconds"] = time.perf_counter() - start
        history.append(row)
    if best is not None:
        module.load_state_dict(best[1])
    test_acc = _evaluate(module, *test, batch_size * 4)[1] if test is not None else None
    return HeadResult(
        head=module.eval().cpu(),
        history=history,
        test_acc=test_acc,
        best_val_acc=best[0] if best is not None else None,
    )
