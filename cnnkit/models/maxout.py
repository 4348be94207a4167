"""Maxout networks (Goodfellow, Warde-Farley, Mirza, Courville, Bengio 2013, "Maxout
Networks", ICML).

A maxout unit computes k affine pieces and outputs their maximum, h(x) = max_j (w_j.x + b_j):
a learned convex piecewise-linear activation (ReLU and |x| are special cases with k = 2),
designed to work with dropout. :class:`MaxoutLinear` and :class:`MaxoutConv2d` are the
reusable units; the two registered nets are the configurations of the authors' pylearn2
files ``scripts/papers/maxout/mnist_pi.yaml`` and ``cifar10.yaml``:

* ``maxout_mnist`` - permutation-invariant MNIST: 784 -> maxout 240x5 -> maxout 240x5 ->
  softmax 10, dropout 0.2 on the input and 0.5 on the hidden layers; 1,233,610 parameters.
* ``maxout_cifar`` - CIFAR-10: three maxout conv layers with spatial max-pooling
  (96x2 pieces 8x8 pad 4, pool 4/2; 192x2 8x8 pad 3, pool 4/2; 192x2 5x5 pad 3, pool 2/2),
  maxout dense 500x5, softmax 10; 16,247,830 parameters at 32x32. Pools round up as
  cuda-convnet does (32 -> 33 -> 16 -> 15 -> 7 -> 9 -> 5).

Left out, as training-recipe details rather than architecture: the max-norm weight
constraints and per-layer learning-rate scales of the yaml files; and pylearn2 does not
rescale the dropped-out *input* (``input_scales: 1``) where ``nn.Dropout`` always does.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from cnnkit.errors import CnnkitError
from cnnkit.models.layers import SizedNet
from cnnkit.models.registry import register_model

_PAPER = "Goodfellow et al., Maxout Networks"


class MaxoutLinear(nn.Module):
    """Dense maxout: ``out_features`` units, each the max of ``pieces`` affine functions.

    Holds one ``nn.Linear(in, out * pieces)``; the pieces of unit i are outputs
    i*pieces ... i*pieces + pieces - 1 (contiguous, as in pylearn2).
    """

    def __init__(self, in_features: int, out_features: int, pieces: int = 2) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.pieces = pieces
        self.linear = nn.Linear(in_features, out_features * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.linear(x)
        return z.view(*z.shape[:-1], self.out_features, self.pieces).amax(-1)

    def macs(self, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
        return self.in_features * self.out_features * self.pieces

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, pieces={self.pieces}"


class MaxoutConv2d(nn.Module):
    """Convolutional maxout: ``out_channels`` maps, each the max over ``pieces`` conv maps
    at every position (max over channels, not space; spatial pooling is a separate layer).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        pieces: int = 2,
        stride: int = 1,
        padding: int = 0,
    ) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.pieces = pieces
        self.conv = nn.Conv2d(in_channels, out_channels * pieces, kernel_size, stride, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.conv(x)
        n, _, h, w = z.shape
        return z.view(n, self.out_channels, self.pieces, h, w).amax(2)

    def macs(self, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
        kernel = math.prod(self.conv.kernel_size) * self.conv.in_channels // self.conv.groups
        return output[0].numel() * self.pieces * kernel

    def extra_repr(self) -> str:
        return f"out_channels={self.out_channels}, pieces={self.pieces}"


_COMMON = dict(num_classes=10, paper=_PAPER, year=2013)


@register_model(
    name="maxout_mnist",
    input_size=(1, 28, 28),
    ref_params=1_233_610,
    ref_source="computed by hand from pylearn2 scripts/papers/maxout/mnist_pi.yaml: "
    "(784*240*5 + 1,200) + (240*240*5 + 1,200) + (240*10 + 10)",
    **_COMMON,
)
class MaxoutMLP(SizedNet):
    """The paper's permutation-invariant MNIST net: the image is flattened (pixel order is
    not used), two maxout layers of 240 units x 5 pieces, softmax."""

    def build(
        self,
        hidden: tuple[int, ...] = (240, 240),
        pieces: int = 5,
        input_drop_rate: float = 0.2,
        drop_rate: float = 0.5,
    ) -> None:
        layers: list[nn.Module] = [nn.Flatten(), nn.Dropout(input_drop_rate)]
        width = self.in_chans * self.input_size[0] * self.input_size[1]
        for units in hidden:
            layers += [MaxoutLinear(width, units, pieces), nn.Dropout(drop_rate)]
            width = units
        self.features = nn.Sequential(*layers)
        self.num_features = width
        self.fc = nn.Linear(width, self.num_classes)


def _pool_ceil(size: int, kernel: int, stride: int) -> int:
    return math.ceil((size - kernel) / stride) + 1


@register_model(
    name="maxout_cifar",
    input_size=(3, 32, 32),
    ref_params=16_247_830,
    ref_source="computed by hand from pylearn2 scripts/papers/maxout/cifar10.yaml: convs 37,056 "
    "+ 2,359,680 + 1,843,584 (tied biases, one per piece map), maxout dense 4,800*2,500 + 2,500, "
    "softmax 5,010",
    **_COMMON,
)
class MaxoutConvNet(SizedNet):
    """The paper's CIFAR-10 net: 3 x (maxout conv -> max-pool -> dropout), maxout dense
    500x5, softmax."""

    head_path = ("flatten", "hidden", "hidden_dropout")

    def build(self, input_drop_rate: float = 0.2, drop_rate: float = 0.5) -> None:
        # (maps, pieces, kernel, pad, pool, pool stride) of h0, h1, h2 in cifar10.yaml
        spec = [(96, 2, 8, 4, 4, 2), (192, 2, 8, 3, 4, 2), (192, 2, 5, 3, 2, 2)]
        layers: list[nn.Module] = [nn.Dropout(input_drop_rate)]
        chans, sides = self.in_chans, list(self.input_size)
        for maps, pieces, kernel, pad, pool, stride in spec:
            sides = [s + 2 * pad - kernel + 1 for s in sides]
            if min(sides) < pool:
                raise CnnkitError(
                    f"maxout_cifar needs a larger input than {self.input_size[0]}x{self.input_size[1]}; use 32x32."
                )
            sides = [_pool_ceil(s, pool, stride) for s in sides]
            layers += [
                MaxoutConv2d(chans, maps, kernel, pieces, padding=pad),
                nn.MaxPool2d(pool, stride, ceil_mode=True),
                nn.Dropout(drop_rate),
            ]
            chans = maps
        self.features = nn.Sequential(*layers)
        self.flatten = nn.Flatten()
        self.hidden = MaxoutLinear(chans * sides[0] * sides[1], 500, pieces=5)
        self.hidden_dropout = nn.Dropout(drop_rate)
        self.num_features = 500
        self.fc = nn.Linear(500, self.num_classes)
