"""Which network makes the features, with which preprocessing, cut where.

:func:`load_backbone` turns what a user names - a zoo model with shipped weights
(``"efficientnet_lite0"``), a ``cnnkit train`` run directory, or an ``nn.Module`` - into a
:class:`Backbone`: the network in eval mode, its preprocessing record and an identity for
the cache. :func:`embedder` returns the function image batch -> (N, D) embedding: the
pooled pre-logits (``forward_head(forward_features(x), pre_logits=True)``) or, cut at a
stage, the global-average-pooled output of that stage (Yosinski et al. 2014, *How
transferable are features in deep neural networks?*: earlier stages transfer better to data
unlike the backbone's).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from cnnkit.errors import CnnkitError
from cnnkit.preprocess import IMAGENET_MEAN, IMAGENET_STD, TF_MEAN, TF_STD, Preprocess

# Until every weights record carries its preprocessing (cnnkit.models.get_weights).
_KNOWN_PREPROCESS = {
    "efficientnet_lite0": Preprocess(size=(224, 224), resample="bicubic", mean=TF_MEAN, std=TF_STD),
}


@dataclass
class Backbone:
    """A network ready to embed images: ``net`` (eval mode), ``name`` (architecture),
    ``preprocess``, ``weights`` (a human-readable tag: "imagenet", a checkpoint path,
    "module"), ``run_dir`` (for a run: where its feature cache lives by default)."""

    net: nn.Module
    name: str
    preprocess: Preprocess
    weights: str
    run_dir: Path | None = None


def weights_preprocess(name: str) -> Preprocess | None:
    """The preprocessing the shipped weights of ``name`` were trained with, if known."""
    try:
        from cnnkit.models import get_weights  # type: ignore[attr-defined]

        return get_weights(name).preprocess
    except (ImportError, CnnkitError, AttributeError):
        return _KNOWN_PREPROCESS.get(name)


def default_preprocess(net: nn.Module) -> Preprocess:
    """For a bare module: its weights record's preprocessing, else a stretch-resize to its
    ``default_input_size`` with ImageNet mean/std (their average for one channel)."""
    cfg = getattr(net, "pretrained_cfg", None)
    if cfg is not None and getattr(cfg, "preprocess", None) is not None:
        return cfg.preprocess
    channels, h, w = getattr(net, "default_input_size", (3, 224, 224))
    if channels == 1:
        return Preprocess(
            size=(h, w), channels=1, mean=(sum(IMAGENET_MEAN) / 3,), std=(sum(IMAGENET_STD) / 3,)
        )
    return Preprocess(size=(h, w), channels=channels)


def _run_backbone(path: Path) -> Backbone:
    """A ``cnnkit train`` run directory: its best checkpoint and its evaluation transform."""
    from cnnkit.runs import Run

    run = Run.load(path)
    net = run.load_model()
    return Backbone(net, str(run.config["model"]), run.preprocess, str(run.checkpoint), run.path)


def load_backbone(
    model: Any, preprocess: Preprocess | None = None, weights: str | Path | None = None
) -> Backbone:
    """A zoo name (with its pretrained weights), a run directory, an ``nn.Module`` or a
    :class:`Backbone` (returned as is).

    ``preprocess`` overrides the model's own (weights record, run directory, or
    :func:`default_preprocess` for a module). ``weights``: for a zoo name, a weights tag or
    a checkpoint file (``create_model(name, pretrained=weights)``; torchvision/timm names are
    converted) instead of the default shipped weights.
    """
    from cnnkit.models.registry import create_model, list_models, model_info

    if isinstance(model, Backbone):
        return dataclasses.replace(model, preprocess=preprocess) if preprocess is not None else model
    if isinstance(model, nn.Module):
        name = getattr(model, "model_name", type(model).__name__)
        return Backbone(model, name, preprocess or default_preprocess(model), "module")
    if not isinstance(model, (str, Path)):
        raise CnnkitError(
            f"cannot make features with a {type(model).__name__}; pass a model name, run or module."
        )
    text = str(model)
    if text not in list_models():
        path = Path(text).expanduser()
        if path.is_dir():
            backbone = _run_backbone(path)
            if preprocess is not None:
                backbone.preprocess = preprocess
            return backbone
        if path.exists() or "/" in text or text.startswith("."):
            raise CnnkitError(
                f"{text} is not a cnnkit run directory. Pass a folder written by 'cnnkit train' or a model name."
            )
    info = model_info(text)  # unknown names fail here with close matches
    if info.kind != "image":
        raise CnnkitError(f"{text} reads {info.kind}, not images; choose an image model.")
    shipped = getattr(info, "weights", None) or "pretrained" in inspect.signature(info.builder).parameters
    if weights is None and not shipped:
        raise CnnkitError(
            f"{text} has no pretrained weights to make features with; pass --weights FILE, a 'cnnkit train' "
            "run directory, or a model with weights (e.g. efficientnet_lite0)."
        )
    net = create_model(text, pretrained=True if weights is None else str(weights))
    cfg = getattr(net, "pretrained_cfg", None)
    found = preprocess or getattr(cfg, "preprocess", None)
    if found is None:
        found = (weights_preprocess(text) if weights is None else None) or default_preprocess(net)
    tag = str(getattr(cfg, "tag", None) or weights or "pretrained")
    return Backbone(net.eval(), text, found, tag)


# ----------------------------------------------------------------------------- cut points
def stage_names(net: nn.Module) -> list[str]:
    """Stage names from the model's ``feature_info`` (input to output), else []."""
    return [str(f["name"]) for f in getattr(net, "feature_info", None) or []]


class _Stop(Exception):
    """Raised by the capture hook: nothing after the cut is computed."""


def _capture(net: nn.Module, module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    def run(x: torch.Tensor) -> torch.Tensor:
        out: list[torch.Tensor] = []

        def hook(_m: nn.Module, _i: Any, output: torch.Tensor) -> None:
            out.append(output)
            raise _Stop

        handle = module.register_forward_hook(hook)
        try:
            net(x)
        except _Stop:
            pass
        finally:
            handle.remove()
        if not out:
            raise CnnkitError(f"the cut module of {type(net).__name__} never ran on this input.")
        return out[0]

    return run


def pool(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) feature maps -> (N, C) by global average pooling; (N, D) unchanged."""
    if x.ndim == 4:
        return x.mean(dim=(2, 3))
    return x.flatten(1)


def embedder(net: nn.Module, cut: str | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The function (N, C, H, W) image batch -> (N, D) float embedding.

    ``cut=None``: pooled pre-logits. ``cut=STAGE`` (a name of ``net.feature_info``):
    ``forward_intermediate(x, STAGE)``, global-average-pooled. A dotted module name (as in
    ``net.named_modules()``) is accepted too, for models without stage metadata.
    """
    if cut is None:
        if hasattr(net, "forward_head") and hasattr(net, "forward_features"):
            return lambda x: pool(net.forward_head(net.forward_features(x), pre_logits=True))
        return lambda x: pool(net(x))
    stages = stage_names(net)
    if cut in stages:
        if hasattr(net, "forward_intermediate"):
            return lambda x: pool(net.forward_intermediate(x, cut))
        module_name = next(f["module"] for f in net.feature_info if f["name"] == cut)
        capture = _capture(net, net.get_submodule(module_name))
        return lambda x: pool(capture(x))
    modules = dict(net.named_modules())
    if cut and cut in modules:
        capture = _capture(net, modules[cut])
        return lambda x: pool(capture(x))
    name = getattr(net, "model_name", type(net).__name__)
    valid = stages or [n for n, _ in net.named_children()]
    raise CnnkitError(f"{name} has no stage {cut!r}; valid cut points: {', '.join(valid)}.")
