"""The model registry: ``create_model('resnet50', num_classes=10)``.

Each architecture is a plain function decorated with :func:`register_model`, which
records, as data, what a user needs to know before building it: the input size it was
designed for, the number of classes of its reference head, the paper, the published
parameter count it is checked against (``tests/test_zoo.py``) and its pretrained weights
(:class:`cnnkit.models.pretrained.Weights` records, by tag).
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch.nn as nn

from cnnkit.errors import CnnkitError
from cnnkit.models.pretrained import Weights, load_pretrained, resolve_source


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
    weights: dict[str, Weights] = field(default_factory=dict)  # tag -> record; first is the default

    @property
    def reference(self) -> str:
        return f"{self.paper} ({self.year})"


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(
    *,
    input_size: tuple[int, ...],
    paper: str,
    year: int,
    num_classes: int = 1000,
    ref_params: int | None = None,
    ref_source: str = "",
    ref_macs: float | None = None,
    kind: str = "image",
    name: str | None = None,
    family: str | None = None,
    weights: Sequence[Weights] = (),
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a builder ``fn(num_classes=..., in_chans=..., **kwargs)``: a function, or
    the network class itself. ``name`` defaults to the function's name, ``family`` to its
    module's (``cnnkit.models.vgg`` -> ``vgg``); ``weights`` are its pretrained files, the
    first being what ``pretrained=True`` loads.
    """

    def decorate(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or fn.__name__
        if key in _REGISTRY:
            raise ValueError(f"model {key!r} is registered twice")
        _REGISTRY[key] = ModelInfo(
            name=key,
            family=family or fn.__module__.rpartition(".")[2],
            builder=fn,
            input_size=tuple(input_size),
            num_classes=num_classes,
            paper=paper,
            year=year,
            ref_params=ref_params,
            ref_source=ref_source,
            ref_macs=ref_macs,
            kind=kind,
            weights={w.tag: w for w in weights},
        )
        return fn

    return decorate


@dataclass(frozen=True)
class Variant:
    """One registered configuration of a network class (see :func:`register_variants`).

    ``args`` go first to the class (e.g. ``(BasicBlock, (2, 2, 2, 2))``), ``options`` are
    keyword defaults the caller may override; ``ref_source`` replaces the family's own;
    ``build`` replaces the family's class for this variant; ``weights`` are its pretrained
    files (see :func:`register_model`).
    """

    args: tuple[Any, ...]
    ref_params: int | None
    doc: str
    ref_macs: float | None = None
    ref_source: str = ""
    options: tuple[tuple[str, Any], ...] = ()
    build: Callable[..., nn.Module] | None = None
    weights: tuple[Weights, ...] = ()


def register_variants(
    build: Callable[..., nn.Module] | None, variants: dict[str, Variant], sized: bool = False, **common: Any
) -> dict[str, Callable[..., nn.Module]]:
    """Register ``name -> build(*variant.args, num_classes=, in_chans=, **options)`` for each
    variant (ResNet-18 .. 152, VGG A .. E): one table instead of one decorated function each.
    ``sized``: the class takes ``input_size`` (H, W) (a dense head sized by the input).
    Returns the builder functions by name, for the family module's namespace."""
    builders = {}
    default_hw = tuple(common["input_size"][1:])
    for name, variant in variants.items():
        make = variant.build or build
        assert make is not None, name

        def builder(
            num_classes: int = common.get("num_classes", 1000),
            in_chans: int = common["input_size"][0],
            _v: Variant = variant,
            _make: Callable[..., nn.Module] = make,
            **kwargs: Any,
        ) -> nn.Module:
            if sized:
                kwargs.setdefault("input_size", default_hw)
            return _make(
                *_v.args, num_classes=num_classes, in_chans=in_chans, **{**dict(_v.options), **kwargs}
            )

        if sized:  # create_model passes input_size to builders that name it
            builder.__signature__ = inspect.signature(
                builder
            ).replace(  # type: ignore[attr-defined]
                parameters=[
                    *list(inspect.signature(builder).parameters.values())[:2],
                    inspect.Parameter("input_size", inspect.Parameter.KEYWORD_ONLY, default=default_hw),
                    inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD),
                ]
            )
        builder.__name__ = builder.__qualname__ = name
        builder.__doc__ = variant.doc
        builder.__module__ = make.__module__
        options = dict(common, ref_source=variant.ref_source or common.get("ref_source", ""))
        register_model(
            name=name,
            ref_params=variant.ref_params,
            ref_macs=variant.ref_macs,
            weights=variant.weights,
            **options,
        )(builder)
        builders[name] = builder
    return builders


def _ensure_loaded() -> None:
    # Importing the package registers every family (see cnnkit/models/__init__.py).
    import cnnkit.models  # noqa: F401


def list_models(pattern: str = "*") -> list[str]:
    """Names of registered models matching a shell-style ``pattern``, sorted."""
    _ensure_loaded()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def models_with_weights() -> list[str]:
    """Names of the models that ship pretrained weights (``pretrained=True`` works)."""
    _ensure_loaded()
    return sorted(n for n, info in _REGISTRY.items() if info.weights)


def get_weights(name: str, tag: str | None = None) -> Weights:
    """The weights record of ``name`` (its default one when ``tag`` is None)."""
    info = model_info(name)
    if not info.weights:
        raise CnnkitError(
            f"{name} has no pretrained weights; models with weights: {', '.join(models_with_weights())}."
        )
    if tag is None:
        return next(iter(info.weights.values()))
    if tag not in info.weights:
        raise CnnkitError(f"{name} has no {tag!r} weights; its tags: {', '.join(info.weights)}.")
    return info.weights[tag]


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
    """Build a registered architecture, optionally with pretrained weights.

    ``num_classes`` and ``in_chans`` default to the reference configuration (with
    ``pretrained``: the weights' class count). ``pretrained=True`` loads the default
    weights record (``ModelInfo.weights``, files shipped by pip packages), ``pretrained=TAG``
    a named one, ``pretrained=PATH`` a state_dict file (``.safetensors`` or ``torch.save``,
    read with ``weights_only=True``; torchvision / timm / lukemelas key names are detected
    and converted). With another ``num_classes`` than the file's, the classifier is
    re-initialised (the trunk loads); with another ``in_chans`` the first conv is adapted.
    ``input_size`` is (C, H, W), or (H, W); architectures whose dense head depends on
    the input size (LeNet, AlexNet, VGG with a flatten head) are built for it, the
    others take any size at run time and just record it as their default.
    The returned module knows its ``model_name``, ``default_input_size`` and, when loaded
    from a record, ``pretrained_cfg``.
    """
    info = model_info(name)
    source = resolve_source(name, info.weights, pretrained) if pretrained not in (False, None, "") else None
    if num_classes is not None and num_classes < 1:
        raise CnnkitError(f"num_classes must be at least 1, got {num_classes}.")
    if num_classes is None:
        num_classes = source.num_classes if isinstance(source, Weights) else info.num_classes
    build_kwargs = dict(kwargs, num_classes=num_classes)
    if info.kind == "image":
        build_kwargs["in_chans"] = info.input_size[0] if in_chans is None else in_chans
    if input_size is not None:
        input_size = tuple(int(d) for d in input_size)
        if info.kind == "image" and len(input_size) == 3:
            if in_chans is not None and in_chans != input_size[0]:
                raise CnnkitError(f"in_chans={in_chans} disagrees with input_size {input_size}.")
            build_kwargs["in_chans"] = input_size[0]
    if "input_size" in inspect.signature(info.builder).parameters:  # a head sized by the input
        size = info.input_size if input_size is None else input_size
        build_kwargs["input_size"] = size[-2:] if info.kind == "image" else size
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
    if isinstance(source, Weights):
        load_pretrained(model, source.state_dict(model), source.classifier, source.first_conv)
        model.pretrained_cfg = source
    elif source is not None:
        from cnnkit.models.convert import convert_checkpoint
        from cnnkit.models.weights import read_state_dict

        load_pretrained(model, convert_checkpoint(read_state_dict(source), model, name))
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
