"""LeNet-5 (LeCun, Bottou, Bengio, Haffner 1998, "Gradient-Based Learning Applied to
Document Recognition", Proc. IEEE 86(11)).

``lenet5`` is the modern form most courses teach (ReLU, max-pooling, dense 120-84-10,
'valid' convolutions as in the seed's Keras code): 44,426 parameters at 28x28x1 and
61,706 at 32x32x1 - the difference is the first dense layer, whose input is
16*4*4 = 256 at 28x28 and 16*5*5 = 400 at 32x32.

``lenet5_paper`` is the network of the paper itself (section II-B): trainable
subsampling, the partial C3 connection table (Table I), scaled-tanh squashing and a
Euclidean RBF output layer, 60,840 parameters at 32x32x1.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnkit.models.layers import SizedNet, check_min_size, make_act
from cnnkit.models.registry import register_model

_PAPER = "LeCun et al., Gradient-Based Learning Applied to Document Recognition"
_LECUN = dict(num_classes=10, paper=_PAPER, year=1998)


@register_model(
    name="lenet5",
    input_size=(1, 28, 28),
    ref_params=44_426,
    ref_source="seed Keras code, by hand: 156 + 2,416 + 30,840 + 10,164 + 850",
    **_LECUN,
)
class LeNet5(SizedNet):
    """Modern LeNet-5: conv(6,5x5) -> pool -> conv(16,5x5) -> pool -> 120 -> 84 -> classes.

    The first dense layer's width is inferred from ``input_size`` so any input of at
    least 12x12 works ('valid' 5x5 convolutions and two 2x2 pools); pass
    ``input_size=(32, 32)`` for the paper's input size.
    """

    classifier_path = "fc3"
    head_path = ("flatten", "fc1", "act3", "fc2", "act4")

    def build(self, act: str = "relu") -> None:
        self.conv1 = nn.Conv2d(self.in_chans, 6, 5)
        self.act1 = make_act(act, 6)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.act2 = make_act(act, 16)
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        # two 'valid' 5x5 convs (-4 each) and two 2x2 pools (//2 each)
        h, w = (((s - 4) // 2 - 4) // 2 for s in self.input_size)
        self.fc1 = nn.Linear(16 * h * w, 120)
        self.act3 = make_act(act, 120)
        self.fc2 = nn.Linear(120, 84)
        self.act4 = make_act(act, 84)
        self.num_features = 84
        self.fc3 = nn.Linear(84, self.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.act1(self.conv1(x)))
        return self.pool2(self.act2(self.conv2(x)))


# --- LeNet-5 exactly as in the paper -------------------------------------------------------------
#
# Section II-B and Appendix A of LeCun et al. 1998: 32x32 input, trainable-coefficient
# subsampling, a partially connected C3, scaled-tanh squashing and a Euclidean RBF output.

# Table I: the S2 maps (rows of the paper's table) each C3 map (column) is connected to.
# Six maps see 3 contiguous maps, six see 4 contiguous, three see 4 non-contiguous, one sees all
# 6: 60 connections, which breaks symmetry and keeps C3 at 1,516 parameters instead of 2,416.
C3_TABLE: tuple[tuple[int, ...], ...] = (
    *(tuple((first + i) % 6 for i in range(3)) for first in range(6)),  # 3 contiguous: (0, 1, 2) ..
    *(tuple((first + i) % 6 for i in range(4)) for first in range(6)),  # 4 contiguous: (0, 1, 2, 3) ..
    (0, 1, 3, 4),  # 4 non-contiguous
    (1, 2, 4, 5),
    (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),  # all 6
)


def _paper_uniform_(tensor: torch.Tensor, fan_in: int) -> None:
    # Appendix A: weights drawn uniformly in [-2.4/F, 2.4/F], F = fan-in of the unit.
    nn.init.uniform_(tensor, -2.4 / fan_in, 2.4 / fan_in)


class ScaledTanh(nn.Module):
    """The paper's squashing function f(a) = A tanh(S a), A = 1.7159, S = 2/3 (Appendix A).

    Chosen so that f(1) = 1 and f(-1) = -1, with maximal second derivative at +-1.
    """

    def __init__(self, amplitude: float = 1.7159, slope: float = 2.0 / 3.0) -> None:
        super().__init__()
        self.amplitude = amplitude
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.amplitude * torch.tanh(self.slope * x)

    def extra_repr(self) -> str:
        return f"amplitude={self.amplitude}, slope={self.slope:.4f}"


class TrainableSubsampling(nn.Module):
    """S2/S4: sum of each 2x2 block x one trainable coefficient + one trainable bias, per map.

    2 parameters per feature map (12 for S2, 32 for S4). The squashing that follows in the
    paper is a separate :class:`ScaledTanh` module so it shows as its own summary row.
    """

    def __init__(self, channels: int, kernel_size: int = 2) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(torch.empty(channels))
        self.bias = nn.Parameter(torch.empty(channels))
        _paper_uniform_(self.weight, kernel_size * kernel_size)
        _paper_uniform_(self.bias, kernel_size * kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        block_sum = F.avg_pool2d(x, self.kernel_size) * (self.kernel_size * self.kernel_size)
        return block_sum * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)

    def macs(self, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
        # one multiplication by the coefficient per output (the 4-input sum is additions only)
        return output[0].numel()


class PartialConv2d(nn.Module):
    """C3: a convolution whose output map j sees only the input maps ``table[j]``.

    Only the connected kernels are parameters (``weight`` has one 5x5 kernel per connection),
    so the count is exact: 60 x 25 + 16 = 1,516. At run time the kernels are scattered into a
    dense (out, in, k, k) weight with zeros elsewhere, which is one ordinary conv2d.
    """

    def __init__(self, in_channels: int, table: tuple[tuple[int, ...], ...], kernel_size: int = 5) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = len(table)
        self.kernel_size = kernel_size
        self.table = table
        outs = [o for o, ins in enumerate(table) for _ in ins]
        ins = [i for row in table for i in row]
        if not all(0 <= i < in_channels for i in ins):
            raise ValueError(f"connection table refers to input maps outside 0..{in_channels - 1}")
        self.register_buffer("out_index", torch.tensor(outs), persistent=False)
        self.register_buffer("in_index", torch.tensor(ins), persistent=False)
        self.weight = nn.Parameter(torch.empty(len(ins), kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(self.out_channels))
        area = kernel_size * kernel_size
        with torch.no_grad():
            for n, o in enumerate(outs):
                _paper_uniform_(self.weight[n], len(table[o]) * area)
            for o, row in enumerate(table):
                _paper_uniform_(self.bias[o : o + 1], len(row) * area)

    @property
    def num_connections(self) -> int:
        return self.weight.shape[0]

    def dense_weight(self) -> torch.Tensor:
        """The (out, in, k, k) kernel with zeros for the pairs Table I leaves unconnected."""
        k = self.kernel_size
        dense = self.weight.new_zeros(self.out_channels, self.in_channels, k, k)
        return dense.index_put((self.out_index, self.in_index), self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.dense_weight(), self.bias)

    def macs(self, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
        # only the connected kernels do work: positions x connections x k x k
        return output.shape[-2] * output.shape[-1] * self.num_connections * self.kernel_size**2

    def extra_repr(self) -> str:
        k, n = self.kernel_size, self.num_connections
        return f"{self.in_channels}, {self.out_channels}, kernel_size={k}, connections={n}"


class EuclideanRBF(nn.Module):
    """The output layer: y_i = sum_j (x_j - w_ij)^2, one parameter vector w_i per class.

    Returns **-y** (negative squared distances) so that the closest class has the largest
    value and ``argmax`` / ``cross_entropy`` work as with ordinary logits; the paper's own
    loss (its MAP criterion, eq. 9) is a different objective. The paper sets the vectors to
    +-1 codes (7x12 bitmaps of ASCII characters) and keeps them fixed; we draw random +-1
    codes, fixed by default (``trainable=True`` lets them learn).
    """

    def __init__(self, in_features: int, num_classes: int, trainable: bool = False) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = num_classes
        codes = torch.randint(0, 2, (num_classes, in_features)).float() * 2 - 1
        self.weight = nn.Parameter(codes, requires_grad=trainable)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -(x.unsqueeze(1) - self.weight.unsqueeze(0)).pow(2).sum(-1)

    def macs(self, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
        return self.in_features * self.out_features  # a subtraction and a squared accumulate each

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


@register_model(
    name="lenet5_paper",
    input_size=(1, 32, 32),
    ref_params=60_840,
    ref_source="LeCun et al. 1998 sec. II-B, per layer: C1 156 + S2 12 + C3 1,516 + S4 32 + C5 48,120 "
    "+ F6 10,164 + RBF 840",
    **_LECUN,
)
class LeNet5Paper(SizedNet):
    """LeNet-5 as published: C1-S2-C3-S4-C5-F6-RBF, 60,840 parameters at 32x32x1.

    Every layer up to F6 is squashed by ``act`` (the paper's scaled tanh by default).
    C5 is a 5x5 convolution, 1x1 at 32x32; larger inputs give larger C5 maps and a wider F6
    (input, not padding, must be at least 32x32; pad 28x28 MNIST by 2 as the paper does).
    ``forward`` returns negative squared RBF distances (see :class:`EuclideanRBF`).
    """

    classifier_path = "rbf"
    head_path = ("flatten", "f6", "act6")

    def build(self, act: str = "scaled_tanh", rbf_trainable: bool = False) -> None:
        check_min_size(
            "lenet5_paper",
            self.input_size,
            32,
            "; pad 28x28 digits by 2 pixels on each side as the paper does",
        )
        self.c1 = nn.Conv2d(self.in_chans, 6, 5)
        self.act1 = self._act(act, 6)
        self.s2 = TrainableSubsampling(6)
        self.act2 = self._act(act, 6)
        self.c3 = PartialConv2d(6, C3_TABLE, 5)
        self.act3 = self._act(act, 16)
        self.s4 = TrainableSubsampling(16)
        self.act4 = self._act(act, 16)
        self.c5 = nn.Conv2d(16, 120, 5)
        self.act5 = self._act(act, 120)
        self.flatten = nn.Flatten()
        h, w = ((((s - 4) // 2 - 4) // 2) - 4 for s in self.input_size)
        self.f6 = nn.Linear(120 * h * w, 84)
        self.act6 = self._act(act, 84)
        self.num_features = 84
        self.rbf = EuclideanRBF(84, self.num_classes, trainable=rbf_trainable)
        for layer in (self.c1, self.c5, self.f6):
            fan_in = layer.weight[0].numel()
            _paper_uniform_(layer.weight, fan_in)
            _paper_uniform_(layer.bias, fan_in)

    @staticmethod
    def _act(name: str, channels: int) -> nn.Module:
        return ScaledTanh() if name == "scaled_tanh" else make_act(name, channels)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act2(self.s2(self.act1(self.c1(x))))
        x = self.act4(self.s4(self.act3(self.c3(x))))
        return self.act5(self.c5(x))

    def reset_classifier(self, num_classes: int) -> None:
        """A new RBF layer with fresh +-1 codes for ``num_classes`` classes."""
        self.rbf = EuclideanRBF(self.num_features, num_classes, trainable=self.rbf.weight.requires_grad)
        self.num_classes = num_classes
