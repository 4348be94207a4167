"""Highway networks (Srivastava, Greff, Schmidhuber 2015, "Training Very Deep Networks",
NIPS; first as "Highway Networks", arXiv:1505.00387).

A highway layer lets information pass unchanged unless a learned gate says otherwise:

    y = H(x) * T(x) + x * (1 - T(x)),   T(x) = sigmoid(W_T x + b_T)

with the transform-gate bias b_T initialised negative (the paper uses -1 to -3; -2 here) so
that at the start every layer mostly carries its input through - which is what lets plain
SGD train 100-layer nets. Input and output must have the same size, so the nets below
change width only in a plain first layer, as the paper does.

* ``highway_mlp`` - the paper's MNIST experiments (its Figure 1): a plain 784 -> 50 layer,
  then 9 highway layers of 50 units (10 hidden layers), softmax; 85,660 parameters.
* ``highway_cnn`` - a small convolutional highway net of our own for CIFAR-10 (or MNIST with
  ``in_chans=1``), in the spirit of the paper's 10-layer convolutional nets of Table 1:
  3x3 conv stem to 32 maps, 9 highway 3x3 conv layers with 2x2 max-pooling after the 3rd
  and 6th, global average pooling, linear classifier; 167,690 parameters.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cnnkit.models.layers import ClassifierNet, SizedNet, make_act
from cnnkit.models.registry import register_model

_PAPER = "Srivastava, Greff, Schmidhuber, Training Very Deep Networks (Highway Networks)"


class HighwayLinear(nn.Module):
    """Dense highway layer of width ``features``: y = H(x) T(x) + x (1 - T(x))."""

    def __init__(self, features: int, act: str = "relu", gate_bias: float = -2.0) -> None:
        super().__init__()
        self.transform = nn.Linear(features, features)  # H's affine part
        self.act = make_act(act, features)
        self.gate = nn.Linear(features, features)  # T's affine part
        nn.init.constant_(self.gate.bias, gate_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = torch.sigmoid(self.gate(x))
        return self.act(self.transform(x)) * t + x * (1 - t)


class HighwayConv2d(nn.Module):
    """Convolutional highway layer: H and T are 'same' convolutions, gated per position and map."""

    def __init__(
        self, channels: int, kernel_size: int = 3, act: str = "relu", gate_bias: float = -2.0
    ) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.transform = nn.Conv2d(channels, channels, kernel_size, padding=pad)
        self.act = make_act(act, channels)
        self.gate = nn.Conv2d(channels, channels, kernel_size, padding=pad)
        nn.init.constant_(self.gate.bias, gate_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = torch.sigmoid(self.gate(x))
        return self.act(self.transform(x)) * t + x * (1 - t)


_COMMON = dict(num_classes=10, paper=_PAPER, year=2015)


@register_model(
    name="highway_mlp",
    input_size=(1, 28, 28),
    ref_params=85_660,
    ref_source="computed by hand (the paper reports no count for this net): stem 784*50 + 50 = 39,250, "
    "9 highway layers x 2*(50*50 + 50) = 45,900, classifier 510",
    **_COMMON,
)
class HighwayMLP(SizedNet):
    """Plain input layer to ``width`` units, ``depth - 1`` highway layers, linear classifier:
    by default the paper's 10-layer, 50-unit MNIST net of its depth experiments."""

    def build(self, width: int = 50, depth: int = 10, act: str = "relu", gate_bias: float = -2.0) -> None:
        self.num_features = width
        self.flatten = nn.Flatten()
        self.stem = nn.Linear(self.in_chans * self.input_size[0] * self.input_size[1], width)
        self.stem_act = make_act(act, width)
        self.layers = nn.Sequential(*(HighwayLinear(width, act, gate_bias) for _ in range(depth - 1)))
        self.fc = nn.Linear(width, self.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.stem_act(self.stem(self.flatten(x))))


@register_model(
    name="highway_cnn",
    input_size=(3, 32, 32),
    ref_params=167_690,
    ref_source="computed by hand for our own configuration: stem 3*32*9 + 32 = 896, 9 highway convs x "
    "2*(32*32*9 + 32) = 166,464, classifier 330",
    **_COMMON,
)
class HighwayCNN(ClassifierNet):
    """3x3 conv stem, highway conv layers with max-pools at ``pool_after``, global average
    pool; by default 9 highway 3x3 layers for 32x32 (or 28x28) images."""

    head_path = ("global_pool", "flatten")

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 3,
        width: int = 32,
        depth: int = 9,
        pool_after: tuple[int, ...] = (3, 6),
        act: str = "relu",
        gate_bias: float = -2.0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_features = width
        layers: list[nn.Module] = [nn.Conv2d(in_chans, width, 3, padding=1), make_act(act, width)]
        for i in range(1, depth + 1):
            layers.append(HighwayConv2d(width, 3, act, gate_bias))
            if i in pool_after:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(width, num_classes)
