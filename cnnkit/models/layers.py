"""Building blocks shared by more than one model family.

Every zoo model subclasses :class:`ClassifierNet`, which fixes the interface the rest
of cnnkit relies on: ``forward_features`` (the convolutional trunk, unpooled),
``forward_head`` (pooling + classifier), and ``get_classifier`` / ``reset_classifier``
so transfer learning can cut a network and put a new head on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

ActLayer = Callable[[], nn.Module]

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
    from cnnkit.errors import CnnkitError

    if name not in _ACTIVATIONS:
        raise CnnkitError(f"unknown activation {name!r}; choose one of {', '.join(activation_names())}.")
    if name == "prelu":
        return nn.PReLU(channels)
    return _ACTIVATIONS[name]()


class ClassifierNet(nn.Module):
    """Base class of every zoo model: ``forward(x) = forward_head(forward_features(x))``.

    Subclasses implement ``forward_features`` and ``forward_head`` and set
    ``classifier_path`` to the dotted name of their last (classifying) layer, e.g.
    ``"fc"`` for ResNet or ``"classifier.6"`` for VGG, as torchvision names them.
    """

    classifier_path: str = "fc"
    num_classes: int
    num_features: int  # width of the representation that enters the classifier

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> Any:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        """The final classifying layer (a Linear, or a 1x1 Conv for all-conv nets)."""
        return self.get_submodule(self.classifier_path)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final layer with a freshly initialised one for ``num_classes``."""
        old = self.get_classifier()
        if isinstance(old, nn.Linear):
            new: nn.Module = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
        elif isinstance(old, nn.Conv2d):
            new = nn.Conv2d(
                old.in_channels,
                num_classes,
                old.kernel_size,
                old.stride,
                old.padding,
                bias=old.bias is not None,
            )
        else:
            raise TypeError(f"cannot reset a classifier of type {type(old).__name__}")
        parent_name, _, child = self.classifier_path.rpartition(".")
        parent = self.get_submodule(parent_name) if parent_name else self
        setattr(parent, child, new)
        self.num_classes = num_classes

    def summary(self, input_size: tuple[int, ...] | None = None, **kwargs: Any) -> Any:
        """Keras-style table of layers, output shapes, parameters and MACs (printable)."""
        from cnnkit.summary import summary

        return summary(self, input_size, **kwargs)


class ConvBNAct(nn.Sequential):
    """Conv2d -> BatchNorm2d -> activation, the unit of most post-2015 networks.

    ``padding=None`` means 'same' for odd kernels at stride 1 (``kernel_size // 2``).
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int | tuple[int, int] = 3,
        stride: int = 1,
        padding: int | tuple[int, int] | None = None,
        groups: int = 1,
        act: str | None = "relu",
        bn_eps: float = 1e-5,
    ) -> None:
        if padding is None:
            k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
            padding = (k[0] // 2, k[1] // 2)
        layers: list[nn.Module] = [
            nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(out_chs, eps=bn_eps),
        ]
        if act is not None:
            layers.append(make_act(act, out_chs))
        super().__init__(*layers)


class LocalResponseNorm(nn.LocalResponseNorm):
    """LRN as in AlexNet (Krizhevsky et al. 2012, section 3.3): k=2, n=5, alpha=1e-4, beta=0.75.

    PyTorch divides ``alpha`` by ``n``; the paper does not, so we pass ``alpha * n`` to
    reproduce the paper's formula exactly.
    """

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0) -> None:
        super().__init__(size=size, alpha=alpha * size, beta=beta, k=k)


def global_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C): average over all positions, whatever the input size."""
    return F.adaptive_avg_pool2d(x, 1).flatten(1)


class BasicConv2d(nn.Module):
    """Conv2d -> BatchNorm2d -> ReLU with torchvision's Inception names ``.conv`` / ``.bn``.

    Same unit as :class:`ConvBNAct`, but named like torchvision's GoogLeNet and
    Inception v3 (``inception3a.branch1.conv.weight``, ``...bn.running_mean``) so their
    state_dicts load as they are. ``**conv_kwargs`` go to ``nn.Conv2d`` (kernel_size,
    stride, padding). ``bias=False`` and ``bn_eps=1e-3`` are torchvision's choices; the
    Caffe-converted BN-Inception keeps a (redundant) conv bias and eps 1e-5.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        bias: bool = False,
        bn_eps: float = 1e-3,
        **conv_kwargs: Any,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=bias, **conv_kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=bn_eps)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))
