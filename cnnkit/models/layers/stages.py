"""Finding a network's stages from its own forward pass, on the meta device.

A *stage* is a run of the trunk's modules that work at one output stride; its output is
that of the run's last module, just before the next downsampling - timm's
``feature_info`` convention (ResNet: ``act1``/``relu``, ``layer1`` .. ``layer4``;
Inception v3: ``Conv2d_2b_3x3`` .. ``Mixed_7c``; VGG: the ReLU before each pool).

Nothing is declared per family: :func:`analyse` runs ``forward_features`` twice on a
weightless *meta* copy of the model (shapes only, no memory, no arithmetic) at the default
input size and 192 pixels more. A module's reduction (output stride) is ``192 / growth`` of
its output, which is exact whatever the padding. The trunk's units are the top-level
children in execution order, and an ``nn.Sequential`` whose children work at several
strides (VGG's ``features``, EfficientNet's ``stages``) is opened up.

A full forward pass then assigns every parameter to the stage that was running when its
module was called (modules never called, e.g. auxiliary heads in eval mode, and all those
after the last stage go to ``"head"``): the parameter groups for freezing and
discriminative learning rates, in order from input to head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from cnnkit.summary import meta_copy

__all__ = ["GROW", "StageLayout", "analyse", "meta_copy", "partition"]

GROW = 192  # extra pixels of the second pass: a multiple of every stride in the zoo (2^k, 3, 6, 12, 24)


@dataclass(frozen=True)
class StageLayout:
    """``feature_info`` rows and, per stage (then "head"), the module names it owns."""

    feature_info: tuple[dict[str, Any], ...]
    groups: tuple[tuple[str, tuple[str, ...]], ...]


class _Stop(Exception):
    """Raised by a hook to end a forward pass early, carrying the output it saw."""

    def __init__(self, output: Any) -> None:
        super().__init__()
        self.output = output


def _shapes(model: nn.Module, size: tuple[int, ...], stop_after: str | None = None) -> dict[str, tuple]:
    """Output shape of every module that runs in ``forward_features`` at ``size`` (C, H, W)."""
    names = {m: n for n, m in model.named_modules()}
    shapes: dict[str, tuple] = {}
    order: list[str] = []

    def hook(module: nn.Module, inputs: Any, output: Any) -> None:
        name = names[module]
        if name and name not in shapes and isinstance(output, torch.Tensor):
            shapes[name] = tuple(output.shape)
            order.append(name)
        if name == stop_after:
            raise _Stop(output)

    handles = [m.register_forward_hook(hook) for m in names]
    x = torch.zeros((1, *size), device="meta")
    try:
        with torch.no_grad():
            model.forward_features(x)
    except _Stop:
        pass
    finally:
        for h in handles:
            h.remove()
    return {n: shapes[n] for n in order}


def _units(model: nn.Module, shapes: dict[str, tuple], reduction: dict[str, int | None]) -> list[str]:
    """Top-level children in execution order; a multi-stride ``nn.Sequential`` is opened."""

    def expand(prefix: str, module: nn.Module) -> list[str]:
        children = [f"{prefix}{n}" for n, _ in module.named_children() if f"{prefix}{n}" in shapes]
        children.sort(key=list(shapes).index)
        out: list[str] = []
        for name in children:
            child = model.get_submodule(name)
            inner = [f"{name}.{n}" for n, _ in child.named_children() if f"{name}.{n}" in shapes]
            strides = {reduction.get(n) for n in inner}
            if isinstance(child, nn.Sequential) and len(strides) > 1:
                out += expand(f"{name}.", child)
            else:
                out.append(name)
        return out

    return expand("", model)


def analyse(model: nn.Module, size: tuple[int, ...]) -> StageLayout:
    """The stages of an image model whose default input is ``size`` (C, H, W)."""
    meta = meta_copy(model)
    first = _shapes(meta, size)
    maps = [n for n, s in first.items() if len(s) == 4]
    reduction: dict[str, int | None] = {}
    if maps:
        try:
            grown = _shapes(meta, (size[0], size[1] + GROW, size[2] + GROW), stop_after=maps[-1])
        except Exception:  # a trunk that takes one size only: fall back to the size ratio
            grown = {}
        for n in maps:
            h = first[n][2]
            if n in grown and grown[n][2] > h:
                reduction[n] = max(1, round(GROW / (grown[n][2] - h)))
            else:
                reduction[n] = max(1, 2 ** round(torch.log2(torch.tensor(size[1] / h)).item()))
    units = [u for u in _units(meta, first, reduction) if len(first[u]) == 4]
    aliases = getattr(model, "stage_aliases", {})  # e.g. EfficientNet's "head" conv -> "conv_head"
    info: list[dict[str, Any]] = []
    for i, unit in enumerate(units):
        nxt = units[i + 1] if i + 1 < len(units) else None
        if nxt is None or reduction[nxt] != reduction[unit]:
            name = aliases.get(unit, unit)
            info.append(
                {"name": name, "module": unit, "num_chs": first[unit][1], "reduction": reduction[unit]}
            )
    return StageLayout(tuple(info), _groups(meta, size, [r["module"] for r in info], aliases))


def _groups(meta: nn.Module, size: tuple[int, ...], ends: list[str], aliases: dict[str, str]) -> tuple:
    """Module names per stage: the stage running when each module was first called."""
    names = {m: n for n, m in meta.named_modules()}
    owner: dict[str, int] = {}
    done = [0]  # stages completed so far

    def pre(module: nn.Module, inputs: Any) -> None:
        owner.setdefault(names[module], done[0])

    def post(module: nn.Module, inputs: Any, output: Any) -> None:
        if done[0] < len(ends) and names[module] == ends[done[0]]:
            done[0] += 1

    handles = [m.register_forward_pre_hook(pre) for m in names]
    handles += [m.register_forward_hook(post) for m in names]
    try:
        with torch.no_grad():
            meta(torch.zeros((1, *size), device="meta"))
    finally:
        for h in handles:
            h.remove()
    buckets: list[list[str]] = [[] for _ in range(len(ends) + 1)]
    for name in names.values():  # definition order within each group
        buckets[owner.get(name, len(ends))].append(name)
    labels = [aliases.get(e, e) for e in ends] + ["head"]
    return tuple((label, tuple(b)) for label, b in zip(labels, buckets, strict=True))


def partition(model: nn.Module, groups: tuple) -> list[tuple[str, list[nn.Parameter]]]:
    """Each group's parameters, every parameter exactly once, in definition order.

    A parameter belongs to the group of its nearest enclosing module that the analysis
    saw, so a head replaced since (``model.fc = nn.Sequential(...)``) stays in "head".
    """
    owner = {name: i for i, (_, modules) in enumerate(groups) for name in modules if name}
    result: list[tuple[str, list[nn.Parameter]]] = [(label, []) for label, _ in groups]
    for pname, param in model.named_parameters():  # shared parameters are listed once
        module = pname.rpartition(".")[0]
        while module and module not in owner:
            module = module.rpartition(".")[0]
        result[owner.get(module, len(groups) - 1)][1].append(param)
    return result
