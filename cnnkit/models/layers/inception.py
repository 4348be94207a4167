"""Pieces shared by Inception v3, Inception v4 and Inception-ResNet v1/v2 (Szegedy et al.
2016, "Rethinking the Inception Architecture", and 2017, "Inception-v4, Inception-ResNet
and the Impact of Residual Connections on Learning").
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cnnkit.models.layers.conv import BasicConv2d

# The stems of v3, v4 and Inception-ResNet v1/v2 all shrink 75x75 to 1x1 by the last reduction.
MIN_INPUT_SIZE = 75


def check_input_size(x: torch.Tensor, minimum: int = MIN_INPUT_SIZE) -> None:
    """Fail early with a readable message instead of PyTorch's 'kernel size can't be greater'."""
    height, width = x.shape[-2:]
    if height < minimum or width < minimum:
        raise ValueError(
            f"input is {height}x{width} pixels but the stem and grid reductions need at least "
            f"{minimum}x{minimum}"
        )


def conv_chain(in_chs: int, *convs: tuple) -> nn.Sequential:
    """A branch of :class:`BasicConv2d` units in a row, each ``(out_chs, kernel_size[, stride])``.

    Stride-1 convs pad to keep the grid ('same'), strided ones do not ('valid'), as in the
    TF-slim releases of Inception v3 / v4 / Inception-ResNet; children are ``0``, ``1``, ..
    """
    layers = []
    for out_chs, kernel, *rest in convs:
        stride = rest[0] if rest else 1
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        padding = (kh // 2, kw // 2) if stride == 1 else 0
        layers.append(BasicConv2d(in_chs, out_chs, kernel_size=kernel, stride=stride, padding=padding))
        in_chs = out_chs
    return nn.Sequential(*layers)


class Branches(nn.Module):
    """Parallel branches (children ``branch0``, ``branch1``, .. in order) whose outputs are
    concatenated along the channels: the Inception module since GoogLeNet (Fig. 2b)."""

    def branch_outputs(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([m(x) for name, m in self.named_children() if name.startswith("branch")], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.branch_outputs(x)


class PoolBranches(Branches):
    """1x1 | 1x1 - kxk | 1x1 - 3x3 - 3x3 | 3x3 avg-pool - 1x1, concatenated: Inception-v4's
    Inception-A (Fig. 4: 384 -> 96 | 64-96 | 64-96-96 | 96, k=3) and Inception-ResNet-v2's
    stem block ``mixed_5b`` (v3's Mixed_5b widened: 192 -> 96 | 48-64 | 64-96-96 | 64, k=5).
    ``b0``, ``b1``, ``b2``: the widths of branches 0-2; ``proj``: the pool projection's."""

    def __init__(
        self, in_chs: int, b0: int, b1: tuple[int, int], b2: tuple[int, int, int], proj: int, k: int
    ) -> None:
        super().__init__()
        self.branch0 = BasicConv2d(in_chs, b0, kernel_size=1)
        self.branch1 = conv_chain(in_chs, (b1[0], 1), (b1[1], k))
        self.branch2 = conv_chain(in_chs, (b2[0], 1), (b2[1], 3), (b2[2], 3))
        self.branch3 = nn.Sequential(
            nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
            BasicConv2d(in_chs, proj, kernel_size=1),
        )


class ReductionA(Branches):
    """35x35 -> 17x17 (Fig. 7): 3x3/2 conv n | 1x1 k - 3x3 l - 3x3/2 m | 3x3/2 max-pool.

    The paper's Table 1 gives (k, l, m, n) per network: Inception-v4 (192, 224, 256, 384),
    Inception-ResNet-v1 (192, 192, 256, 384), Inception-ResNet-v2 (256, 256, 384, 384).
    Output channels: n + m + in_chs.
    """

    def __init__(self, in_chs: int, k: int, l: int, m: int, n: int) -> None:
        super().__init__()
        self.branch0 = BasicConv2d(in_chs, n, kernel_size=3, stride=2)
        self.branch1 = conv_chain(in_chs, (k, 1), (l, 3), (m, 3, 2))
        self.branch2 = nn.MaxPool2d(3, stride=2)
        self.out_chs = n + m + in_chs
