"""Conv -> BatchNorm -> activation units, and TensorFlow's 'same' padding.

:class:`ConvBNAct` is the unit of most post-2015 networks (children ``0``/``1``/``2``, as
torchvision's ``Conv2dNormActivation``); :class:`BasicConv2d` is the same unit with the
``.conv`` / ``.bn`` names of torchvision's Inception models, so their files load as they
are; :class:`Conv2dSame` pads like TensorFlow for weights trained there.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnkit.models.layers.activations import make_act


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


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow's 'same' padding, computed from the input size at run time.

    TF pads ``max((ceil(n / s) - 1) * s + k - n, 0)`` in total and puts the odd pixel at
    the bottom/right; PyTorch's ``padding=k // 2`` is symmetric. At stride 1 both agree,
    at stride 2 they sample the image half a pixel apart - weights trained in TF expect
    TF's grid.
    """

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, **kwargs: Any) -> None:
        super().__init__(in_chs, out_chs, kernel_size, stride, padding=0, **kwargs)

    @staticmethod
    def same_pad(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
        """(before, after) padding of one spatial dimension, as TensorFlow computes it."""
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
        return total // 2, total - total // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = self.same_pad(x.shape[-2], self.kernel_size[0], self.stride[0], self.dilation[0])
        left, right = self.same_pad(x.shape[-1], self.kernel_size[1], self.stride[1], self.dilation[1])
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)
