"""Activations by name: the ``act=`` option shared across the zoo."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn as nn

from cnnkit.errors import CnnkitError

_ACTIVATIONS: dict[str, Callable[..., nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "relu6": lambda: nn.ReLU6(inplace=True),
    "prelu": lambda channels=1: nn.PReLU(channels),
    "leaky_relu": lambda: nn.LeakyReLU(0.01, inplace=True),
    "elu": lambda: nn.ELU(inplace=True),
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "silu": lambda: nn.SiLU(inplace=True),
}


def activation_names() -> list[str]:
    """Names accepted by ``act=`` options across the zoo."""
    return sorted(_ACTIVATIONS)


def make_act(name: str = "relu", channels: int = 1) -> nn.Module:
    """An activation module by name.

    ``channels`` matters only for PReLU: He et al. 2015 ("Delving Deep into Rectifiers")
    learn one slope per channel (``channels=C``) or one per layer (``channels=1``).
    """
    if name not in _ACTIVATIONS:
        raise CnnkitError(f"unknown activation {name!r}; choose one of {', '.join(activation_names())}.")
    if name == "prelu":
        return nn.PReLU(channels)
    return _ACTIVATIONS[name]()
