"""Checkpoints from other libraries: detect a file's origin from its key names, convert it.

Users often already have torchvision, timm or EfficientNet-PyTorch (lukemelas) ``.pth``
files. The zoo keeps those libraries' module names where it implements the same
network (torchvision's ResNet, VGG, AlexNet, GoogLeNet, Inception v3, MobileNetV2; timm's /
Cadene's Inception v4 and Inception-ResNet v2), so most conversions are the explicit rules
below and not a renaming of every key:

* ``module.`` prefixes of ``nn.DataParallel`` files are stripped;
* auxiliary heads the model was built without are dropped (torchvision's GoogLeNet
  ``aux1``/``aux2`` and Inception v3 ``AuxLogits`` files always carry them);
* BatchNorm ``num_batches_tracked`` counters missing from older files are filled with 0;
* TensorFlow ports with 1001 outputs (timm's ``label_offset=1``: class 0 is "background")
  lose that row, so their classes are ImageNet's 1000;
* lukemelas EfficientNet keys (``_blocks.N._depthwise_conv``) are renamed to ours.

Then every key and shape is checked; the error names the first mismatch and, when the
file's keys are those of another registered model, says which.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import torch
import torch.nn as nn

from cnnkit.errors import CnnkitError

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Converter:
    """How one library's files of one family become ours."""

    source: str  # the library and network, for messages
    drop_unless_built: tuple[str, ...] = ()  # key prefixes of optional heads
    background_class: bool = False  # a 1001-way TF head: drop row 0
    rename: Callable[[StateDict, nn.Module], StateDict] | None = None


def _lukemelas(state: StateDict, model: nn.Module) -> StateDict:
    from cnnkit.models.efficientnet_lite import convert_lukemelas

    return convert_lukemelas(state, model)


# Our family -> the converter of the files users bring for it.
CONVERTERS: dict[str, Converter] = {
    "resnet": Converter("torchvision / timm ResNet"),  # conv1, bn1, layerN.M.convK, downsample, fc
    "vgg": Converter("torchvision VGG"),  # features.N, classifier.{0,3,6}
    "alexnet": Converter("torchvision AlexNet"),  # features.N, classifier.{1,4,6}
    "inception": Converter("torchvision GoogLeNet", drop_unless_built=("aux1.", "aux2.")),
    "inception_v3": Converter("torchvision / timm Inception v3", drop_unless_built=("AuxLogits.",)),
    "mobilenet": Converter("torchvision MobileNetV2"),  # features.N.conv.K, classifier.1
    "inception_v4": Converter("timm Inception v4", background_class=True),  # features.N, last_linear
    "inception_resnet": Converter("timm Inception-ResNet v2", background_class=True),  # conv2d_1a .. classif
}
LUKEMELAS = Converter("EfficientNet-PyTorch (lukemelas)", rename=_lukemelas)
CNNKIT = Converter("cnnkit")


def detect_origin(state: StateDict, family: str) -> Converter:
    """The converter for a file meant for ``family``, chosen from its key names."""
    keys = list(state)
    if any(k.startswith(("_blocks.", "_conv_stem.")) for k in keys):
        return LUKEMELAS
    return CONVERTERS.get(family, CNNKIT)


def convert_checkpoint(state: StateDict, model: nn.Module, name: str) -> StateDict:
    """``state`` in ``model``'s key names, checked key by key and shape by shape."""
    from cnnkit.models.registry import model_info

    family = model_info(name).family
    converter = detect_origin(state, family)
    state = apply(converter, state, model)
    problem = first_mismatch(state, model)
    if problem:
        hint = looks_like(state, name)
        raise CnnkitError(
            f"weights do not fit {name} (read as a {converter.source} file): first mismatch: {problem}; "
            f"{mismatch_lists(state, model)}.{hint} Check the architecture name and num_classes."
        )
    return state


def apply(converter: Converter, state: StateDict, model: nn.Module) -> StateDict:
    """The generic rules, then the family's renaming."""
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    if converter.rename is not None:
        state = converter.rename(state, model)
    own = model.state_dict()
    for prefix in converter.drop_unless_built:
        if not any(k.startswith(prefix) for k in own):
            state = {k: v for k, v in state.items() if not k.startswith(prefix)}
    state = dict(state)
    for key in own:  # BatchNorm counters that older files do not save
        if key.endswith(".num_batches_tracked") and key not in state:
            if key.replace(".num_batches_tracked", ".running_mean") in state:
                state[key] = torch.zeros((), dtype=torch.long)
    classifier = getattr(model, "classifier_path", None)
    if converter.background_class and classifier:
        for leaf in ("weight", "bias"):
            key = f"{classifier}.{leaf}"
            if key in state and key in own and state[key].shape[0] == own[key].shape[0] + 1 == 1001:
                state[key] = state[key][1:]  # class 0 of the TF release is "background"
    return state


def _tolerated(key: str, theirs: torch.Tensor, ours: torch.Tensor, model: nn.Module) -> bool:
    """Shape differences that loading resolves: another class count, another in_chans."""
    from cnnkit.models.pretrained import first_conv_name

    classifier = getattr(model, "classifier_path", None)
    if classifier and key.startswith(classifier + "."):
        return True
    same_kernels = (
        theirs.dim() == 4 and theirs.shape[0] == ours.shape[0] and theirs.shape[2:] == ours.shape[2:]
    )
    return same_kernels and key == f"{first_conv_name(model)}.weight"


def first_mismatch(state: StateDict, model: nn.Module) -> str | None:
    """The first key (in the model's order) that is missing, unexpected or of another shape."""
    own = model.state_dict()
    for key, ours in own.items():
        if key not in state:
            return f"missing key {key!r}"
        if state[key].shape != ours.shape and not _tolerated(key, state[key], ours, model):
            return f"{key!r} is {tuple(state[key].shape)} in the file, {tuple(ours.shape)} in the model"
    extra = next((k for k in state if k not in own), None)
    return f"unexpected key {extra!r}" if extra else None


def mismatch_lists(state: StateDict, model: nn.Module) -> str:
    own = model.state_dict()

    def show(items: list[str]) -> str:
        return ", ".join(items[:5]) + (f" (+{len(items) - 5} more)" if len(items) > 5 else "")

    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    parts = []
    if missing:
        parts.append(f"missing keys: {show(missing)}")
    if unexpected:
        parts.append(f"unexpected keys: {show(unexpected)}")
    return "; ".join(parts) or "shapes differ"


@cache
def _key_set(name: str) -> frozenset[str]:
    from cnnkit.models.registry import create_model

    with torch.device("meta"):
        model = create_model(name)
    return frozenset(k for k in model.state_dict() if not k.endswith("num_batches_tracked"))


def looks_like(state: StateDict, target: str, budget_s: float = 5.0) -> str:
    """ " This looks like a <model> checkpoint." when the keys are another model's, else ""."""
    from cnnkit.models.registry import list_models, model_info

    keys = frozenset(k for k in state if not k.endswith("num_batches_tracked"))
    buffers = (".running_mean", ".running_var", ".num_batches_tracked")
    params = sum(v.numel() for k, v in state.items() if not k.endswith(buffers))
    names = [n for n in list_models() if n != target and model_info(n).kind == "image"]
    # the registered parameter counts closest to the file's first: no model is built for that
    names.sort(key=lambda n: abs((model_info(n).ref_params or 0) - params))
    start = time.monotonic()
    for other in names:
        if time.monotonic() - start > budget_s:
            break
        if _key_set(other) == keys:
            return f" This looks like a {other} checkpoint: create_model({other!r}, pretrained=PATH)."
    return ""
