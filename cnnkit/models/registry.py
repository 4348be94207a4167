"""The model registry: ``create_model('resnet50', num_classes=10)``.

Each architecture is a plain function decorated with :func:`register_model`, which
records, as data, what a user needs to know before building it: the input size it was
designed for, the number of classes of its reference head, the paper, and the published
parameter count it is checked against (``tests/test_zoo.py``).
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch.nn as nn

from cnnkit.errors import CnnkitError


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one architecture.

    ``input_size`` is (channels, height, width) for images; for sequence models it is
    (sequence_length,). ``ref_params`` is the published parameter count for the default
    head (``num_classes``), or ``None`` when no outside source gives one; ``ref_source``
    says where the number comes from.
    """

    name: str
    family: str
    builder: Callable[..., nn.Module]
    input_size: tuple[int, ...]
    num_classes: int
    paper: str
    year: int
    ref_params: int | None = None
    ref_source: str = ""
    ref_macs: float | None = None
    kind: str = "image"  # "image" or "text"
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def reference(self) -> str:
        return f"{self.paper} ({self.year})"


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(
    *,
    family: str,
    input_size: tuple[int, ...],
    paper: str,
    year: int,
    num_classes: int = 1000,
    ref_params: int | None = None,
    ref_source: str = "",
    ref_macs: float | None = None,
    kind: str = "image",
    name: str | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a builder function ``fn(num_classes=..., in_chans=..., **kwargs)``."""

    def decorate(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or fn.__name__
        if key in _REGISTRY:
            raise ValueError(f"model {key!r} is registered twice")
        _REGISTRY[key] = ModelInfo(
            name=key,
            family=family,
            builder=fn,
            input_size=tuple(input_size),
            num_classes=num_classes,
            paper=paper,
            year=year,
            ref_params=ref_params,
            ref_source=ref_source,
            ref_macs=ref_macs,
            kind=kind,
        )
        return fn

    return decorate


def _ensure_loaded() -> None:
    # Importing the package registers every family (see cnnkit/models/__init__.py).
    import cnnkit.models  # noqa: F401


def list_models(pattern: str = "*") -> list[str]:
    """Names of registered models matching a shell-style ``pattern``, sorted."""
    _ensure_loaded()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def model_info(name: str) -> ModelInfo:
    """The registry entry for ``name``; a clear error (with close matches) if unknown."""
    _ensure_loaded()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise CnnkitError(
            f"unknown model {name!r}.{hint} Run 'cnnkit models' to list the {len(_REGISTRY)} architectures."
        )
    return _REGISTRY[name]


def create_model(
    name: str,
    num_classes: int | None = None,
    in_chans: int | None = None,
    pretrained: bool | str | Path = False,
    input_size: tuple[int, ...] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered architecture.

    ``num_classes`` and ``in_chans`` default to the reference configuration.
    ``pretrained=True`` loads the weights the architecture ships with (only those with
    offline weights, e.g. ``efficientnet_lite0``); ``pretrained=PATH`` loads a state_dict
    file (``.safetensors`` or a ``torch.save`` file, read with ``weights_only=True``).
    ``input_size`` is (C, H, W), or (H, W); architectures whose dense head depends on
    the input size (LeNet, AlexNet, VGG with a flatten head) are built for it, the
    others take any size at run time and just record it as their default.
    The returned module knows its ``model_name`` and ``default_input_size``.
    """
    info = model_info(name)
    if num_classes is not None and num_classes < 1:
        raise CnnkitError(f"num_classes must be at least 1, got {num_classes}.")
    build_kwargs = dict(kwargs)
    build_kwargs["num_classes"] = info.num_classes if num_classes is None else num_classes
    if info.kind == "image":
        build_kwargs["in_chans"] = info.input_size[0] if in_chans is None else in_chans
    if pretrained is True:
        build_kwargs["pretrained"] = True
    if input_size is not None:
        input_size = tuple(int(d) for d in input_size)
        if info.kind == "image" and len(input_size) == 3:
            if in_chans is not None and in_chans != input_size[0]:
                raise CnnkitError(f"in_chans={in_chans} disagrees with input_size {input_size}.")
            build_kwargs["in_chans"] = input_size[0]
        if "input_size" in inspect.signature(info.builder).parameters:
            build_kwargs["input_size"] = input_size[-2:] if info.kind == "image" else input_size
    try:
        model = info.builder(**build_kwargs)
    except TypeError as exc:
        raise CnnkitError(f"model {name!r} does not accept these options: {exc}") from exc
    model.model_name = name
    default = info.input_size
    if info.kind == "image":
        chans = build_kwargs["in_chans"]
        default = (chans, *(input_size[-2:] if input_size is not None else default[1:]))
    elif input_size is not None:
        default = input_size
    model.default_input_size = default
    if pretrained and pretrained is not True:
        from cnnkit.models.weights import load_weights

        load_weights(model, pretrained)
    return model


@contextlib.contextmanager
def skip_weight_init() -> Iterator[None]:
    """Skip random initialisation while building (as Hugging Face's ``no_init_weights``
    does): parameters keep whatever memory torch.empty gave them. Buffers that carry
    structure (index tables, running statistics) are still built as written. Shapes,
    parameter counts and MACs are exact; the weights are garbage, which a table of
    sizes never looks at - and VGG19's 144M parameters no longer cost seconds each."""
    import torch.nn.init as init

    names = [n for n in dir(init) if n.endswith("_") and not n.startswith("_")]
    saved = {n: getattr(init, n) for n in names}
    try:
        for n in names:
            setattr(init, n, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for n, fn in saved.items():
            setattr(init, n, fn)
