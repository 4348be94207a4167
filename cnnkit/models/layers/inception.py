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


class ReductionA(nn.Module):
    """35x35 -> 17x17 (Fig. 7): 3x3/2 conv n | 1x1 k - 3x3 l - 3x3/2 m | 3x3/2 max-pool.

    The paper's Table 1 gives (k, l, m, n) per network: Inception-v4 (192, 224, 256, 384),
    Inception-ResNet-v1 (192, 192, 256, 384), Inception-ResNet-v2 (256, 256, 384, 384).
    Output channels: n + m + in_chs.
    """

    def __init__(self, in_chs: int, k: int, l: int, m: int, n: int) -> None:
        super().__init__()
        self.branch0 = BasicConv2d(in_chs, n, kernel_size=3, stride=2)
        self.branch1 = nn.Sequential(
            BasicConv2d(in_chs, k, kernel_size=1),
            BasicConv2d(k, l, kernel_size=3, padding=1),
            BasicConv2d(l, m, kernel_size=3, stride=2),
        )
        self.branch2 = nn.MaxPool2d(3, stride=2)
        self.out_chs = n + m + in_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x)], 1)
