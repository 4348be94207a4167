"""The four ways to reuse a pretrained CNN, as a network + a per-epoch freezing plan.

Yosinski et al. 2014 ("How transferable are features in deep neural networks?") and the
seeds' 2x2 matrix (dataset small/large x similar/different to the backbone's source):

==========  ======================================================================
features    frozen backbone (BatchNorm in eval mode), new head - a linear layer, or
            the seeds' GAP -> dense -> dropout -> dense (``head="mlp"``)
truncate    cut at an earlier stage (``cut``), new head on its global-average-pooled
            map; everything kept is frozen, the later stages are not run at all
finetune    pretrained init, new head; warm the head up for ``warmup_epochs`` with the
            backbone frozen, then unfreeze it at ``backbone_lr_mult`` x the head's LR
            (discriminative LR, Howard & Ruder 2018); ``freeze=K`` keeps the first K
            stages frozen; ``unfreeze_at=[e1, e2, ...]`` unfreezes one more stage group
            from the top at each of those epochs instead (gradual unfreezing)
full        pretrained init, everything trains
==========  ======================================================================

BatchNorm: in a frozen stage its affine parameters are frozen and it runs in eval mode, so
its running statistics keep the source's values; ``train_bn=True`` makes every BatchNorm
layer trainable and in train mode even in frozen stages (the seeds' "BN trainable, rest
frozen"; fastai's ``train_bn``). Epochs are numbered from 1, as printed.

The stage structure comes from the model (``feature_info``, ``param_groups()`` ordered
input -> head, ``forward_intermediate``), so every zoo model with stage metadata works.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from cnnkit.errors import CnnkitError

BN_TYPES = (nn.modules.batchnorm._BatchNorm,)


def stage_names(model: nn.Module) -> list[str]:
    return [str(info["name"]) for info in getattr(model, "feature_info", None) or []]


def check_cut(model: nn.Module, cut: str) -> dict[str, Any]:
    """The ``feature_info`` entry of stage ``cut``; a one-line error listing the valid names."""
    for info in getattr(model, "feature_info", None) or []:
        if info["name"] == cut:
            return info
    names = stage_names(model)
    name = getattr(model, "model_name", type(model).__name__)
    if not names:
        raise CnnkitError(
            f"{name} has no stage metadata (feature_info), so it cannot be cut; use --regime features."
        )
    raise CnnkitError(
        f"{name} has no stage {cut!r}; cut at one of {', '.join(names)} (see 'cnnkit stages {name}')."
    )


def make_head(
    in_features: int, num_classes: int, kind: str = "linear", hidden: int = 256, dropout: float = 0.5
) -> nn.Module:
    """``linear``: one dense layer. ``mlp``: dense(hidden) -> ReLU -> dropout -> dense, the
    seeds' head on top of global average pooling."""
    if kind == "linear":
        return nn.Linear(in_features, num_classes)
    return nn.Sequential(
        nn.Linear(in_features, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(hidden, num_classes),
    )


class TransferNet(nn.Module):
    """A pretrained backbone with a new head: on its pooled pre-logits, or (``cut``) on the
    global-average-pooled output of one stage.

    ``forward_features``/``forward_head`` follow the zoo's interface, so predicting,
    evaluating and extracting features work on it as on any zoo model.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, cut: str | None = None) -> None:
        super().__init__()
        self.backbone, self.head, self.cut = backbone, head, cut
        self.model_name = getattr(backbone, "model_name", type(backbone).__name__)
        self.default_input_size = getattr(backbone, "default_input_size", None)
        last = head if isinstance(head, nn.Linear) else head[-1]
        self.num_classes = last.out_features
        self.num_features = (head if isinstance(head, nn.Linear) else head[0]).in_features
        if cut is None:  # the backbone's own classifier is not used: keep it out of training
            for p in backbone.get_classifier().parameters():
                p.requires_grad_(False)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.cut is not None:
            return self.backbone.forward_intermediate(x, self.cut)
        return self.backbone.forward_features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.cut is not None:
            x = x.mean(dim=(2, 3))
        else:
            x = self.backbone.forward_head(x, pre_logits=True)
        return x if pre_logits else self.head(x)

    def get_classifier(self) -> nn.Module:
        return self.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def backbone_groups(model: nn.Module) -> list[tuple[str, list[nn.Parameter]]]:
    """(name, params) per stage group, input -> output, then ("head", the classifier's params).

    For a :class:`TransferNet` the groups after a cut are left out (they never run), and
    the head is the new head.
    """
    if isinstance(model, TransferNet):
        backbone = model.backbone
        used = list(_model_groups(backbone))
        classifier = {id(p) for p in backbone.get_classifier().parameters()}
        used = [(n, [p for p in ps if id(p) not in classifier]) for n, ps in used]
        if model.cut is not None:
            used = _up_to_stage(used, backbone, model.cut)
        return [(n, ps) for n, ps in used if ps] + [("head", list(model.head.parameters()))]
    return _model_groups(model)


def _model_groups(model: nn.Module) -> list[tuple[str, list[nn.Parameter]]]:
    groups = getattr(model, "param_groups", None)
    if not callable(groups):
        name = getattr(model, "model_name", type(model).__name__)
        raise CnnkitError(f"{name} has no stage metadata (param_groups), so it cannot be frozen by stages.")
    listed = [(str(n), list(ps)) for n, ps in groups()]
    classifier = {id(p) for p in model.get_classifier().parameters()}
    body = [(n, [p for p in ps if id(p) not in classifier]) for n, ps in listed]
    body = [(n, ps) for n, ps in body if ps]
    return body + [("head", list(model.get_classifier().parameters()))]


def _up_to_stage(
    groups: list[tuple[str, list[nn.Parameter]]], model: nn.Module, cut: str
) -> list[tuple[str, list[nn.Parameter]]]:
    names = [n for n, _ in groups]
    if cut in names:
        return groups[: names.index(cut) + 1]
    # Groups named otherwise than stages: keep those whose parameters the cut stage's prefix reaches.
    stages = stage_names(model)
    keep = len(groups) - (len(stages) - stages.index(cut) - 1)
    return groups[: max(1, keep - 1)]


class TransferPlan:
    """Which parameter groups train at each epoch, and the BatchNorm modes that go with it."""

    def __init__(
        self,
        model: nn.Module,
        regime: str,
        warmup_epochs: int = 1,
        freeze: int = 0,
        unfreeze_at: Iterable[int] | None = None,
        train_bn: bool = False,
        backbone_lr_mult: float | None = None,
    ) -> None:
        self.model, self.regime = model, regime
        self.groups = backbone_groups(model)
        self.names = [n for n, _ in self.groups]
        body = self.names[:-1]
        if freeze > len(body):
            raise CnnkitError(
                f"freeze={freeze} is more than the {len(body)} stage groups ({', '.join(body)})."
            )
        self.warmup_epochs, self.freeze, self.train_bn = warmup_epochs, freeze, train_bn
        self.unfreeze_at = sorted(unfreeze_at) if unfreeze_at else None
        default_mult = {"finetune": 0.1}.get(regime, 1.0)
        self.backbone_lr_mult = default_mult if backbone_lr_mult is None else backbone_lr_mult
        used = {id(p) for _, ps in self.groups for p in ps}
        self.unused = [p for p in model.parameters() if id(p) not in used]  # after a cut, old classifier
        owner = {id(p): n for n, ps in self.groups for p in ps}
        self.bn: dict[str, list[nn.Module]] = {n: [] for n in self.names}
        for module in model.modules():
            if isinstance(module, BN_TYPES) and module.weight is not None and id(module.weight) in owner:
                self.bn[owner[id(module.weight)]].append(module)
        self.trainable: set[str] = set()
        self.apply(1)

    def open_groups(self, epoch: int) -> set[str]:
        """The groups that train in (1-based) ``epoch``."""
        body = self.names[:-1]
        if self.regime in ("features", "truncate"):
            return {"head"}
        if self.regime == "full":
            return set(self.names)
        eligible = body[self.freeze :]
        if self.unfreeze_at:
            n = sum(e <= epoch for e in self.unfreeze_at)
            opened = eligible[len(eligible) - n :] if n else []
        else:
            opened = eligible if epoch > self.warmup_epochs else []
        return {"head", *opened}

    def apply(self, epoch: int) -> None:
        """Set ``requires_grad`` for ``epoch``: open groups train, the rest are frozen."""
        self.trainable = self.open_groups(epoch)
        for name, params in self.groups:
            for p in params:
                p.requires_grad_(name in self.trainable)
        for p in self.unused:
            p.requires_grad_(False)
        if self.train_bn:
            for modules in self.bn.values():
                for m in modules:
                    for p in m.parameters(recurse=False):
                        p.requires_grad_(True)
        self.enforce_modes()

    def enforce_modes(self) -> None:
        """BatchNorm of frozen groups in eval mode (its statistics do not move) while training."""
        if self.train_bn or not self.model.training:
            return
        for name, modules in self.bn.items():
            if name not in self.trainable:
                for m in modules:
                    m.eval()

    def param_groups(self, config: Any) -> list[dict[str, Any]]:
        """Optimizer groups: the backbone at ``backbone_lr_mult`` x the head's rate (frozen
        parameters included: they have no gradient until they unfreeze, so nothing moves)."""
        from cnnkit.train.optim import learning_rate

        lr = learning_rate(config)
        head = [p for n, ps in self.groups if n == "head" for p in ps]
        if self.regime in ("features", "truncate") and not self.train_bn:
            return [{"params": head, "lr": lr, "name": "head"}]
        body = [p for n, ps in self.groups if n != "head" for p in ps]
        groups = [{"params": body, "lr": lr * self.backbone_lr_mult, "name": "backbone"}] if body else []
        return [*groups, {"params": head, "lr": lr, "name": "head"}]

    def frozen_backbone(self) -> bool:
        """True when no backbone parameter ever trains (features can be computed once and cached)."""
        return self.regime in ("features", "truncate") and not self.train_bn

    def describe(self) -> list[dict[str, Any]]:
        """Per group: name, parameters, trainable parameters now, BatchNorm layers."""
        return [
            {
                "group": n,
                "params": sum(p.numel() for p in ps),
                "trainable": sum(p.numel() for p in ps if p.requires_grad),
                "batchnorm": len(self.bn[n]),
            }
            for n, ps in self.groups
        ]


def trainable_by_group(plan: TransferPlan) -> dict[str, int]:
    return {row["group"]: row["trainable"] for row in plan.describe()}
