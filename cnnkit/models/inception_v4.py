"""Inception-v4 (Szegedy, Ioffe, Vanhoucke, Alemi 2016, "Inception-v4, Inception-ResNet and
the Impact of Residual Connections on Learning", AAAI 2017).

A pure Inception network (no residual connections) with a uniform design, paper Figure 9:

    stem (Fig. 3) -> 4x Inception-A (Fig. 4) -> Reduction-A (Fig. 7) -> 7x Inception-B (Fig. 5)
    -> Reduction-B (Fig. 8) -> 3x Inception-C (Fig. 6) -> avg pool -> dropout (keep 0.8) -> fc

Grids at 299x299: the stem ends at 35x35x384, the A blocks stay there, Reduction-A (k=192,
l=224, m=256, n=384, Table 1) gives 17x17x1024, Reduction-B 8x8x1536.

Module names are timm's (``features.0`` .. ``features.21``, ``last_linear``) and every conv is
followed by BatchNorm (eps 0.001, affine) and ReLU; 42,679,816 parameters with 1000 classes
(timm ``inception_v4``), 12.25 G MACs at 299x299 (timm lists 12.28 G). Where the paper's figures and the released
TF-slim code differ (the order of the 1x7 / 7x1 convs in Inception-B's double branch) timm,
and so this file, follow the code. Inputs must be at least 75x75.

:class:`ReductionA` is shared with Inception-ResNet v1/v2 (``inception_resnet.py``): the
paper uses one Reduction-A for all three networks, with the widths of its Table 1.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cnnkit.models.layers import BasicConv2d, ClassifierNet
from cnnkit.models.layers.inception import Branches, PoolBranches, ReductionA, check_input_size, conv_chain
from cnnkit.models.registry import register_model

PAPER = "Szegedy et al., Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning"


class Mixed3a(nn.Module):
    """Stem split 1: 3x3/2 max-pool | 3x3/2 conv 96, concatenated (147x147x64 -> 73x73x160)."""

    def __init__(self) -> None:
        super().__init__()
        self.maxpool = nn.MaxPool2d(3, stride=2)
        self.conv = BasicConv2d(64, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.maxpool(x), self.conv(x)], 1)


class Mixed4a(Branches):
    """Stem split 2: 1x1-3x3 | 1x1-7x1-1x7-3x3, both 'valid' (73x73x160 -> 71x71x192)."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = nn.Sequential(
            BasicConv2d(160, 64, kernel_size=1),
            BasicConv2d(64, 96, kernel_size=3),
        )
        self.branch1 = nn.Sequential(
            BasicConv2d(160, 64, kernel_size=1),
            BasicConv2d(64, 64, kernel_size=(1, 7), padding=(0, 3)),
            BasicConv2d(64, 64, kernel_size=(7, 1), padding=(3, 0)),
            BasicConv2d(64, 96, kernel_size=3),
        )


class Mixed5a(nn.Module):
    """Stem split 3: 3x3/2 conv 192 | 3x3/2 max-pool (71x71x192 -> 35x35x384)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = BasicConv2d(192, 192, kernel_size=3, stride=2)
        self.maxpool = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.conv(x), self.maxpool(x)], 1)


class InceptionA(PoolBranches):
    """35x35x384 block (Fig. 4): 1x1 96 | 1x1 64-3x3 96 | 1x1 64-3x3 96-3x3 96 | avgpool-1x1 96."""

    def __init__(self) -> None:
        super().__init__(384, 96, (64, 96), (64, 96, 96), 96, k=3)


class InceptionB(Branches):
    """17x17x1024 block (Fig. 5) with 7x7 convolutions factorised into 1x7 and 7x1."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = BasicConv2d(1024, 384, kernel_size=1)
        self.branch1 = conv_chain(1024, (192, 1), (224, (1, 7)), (256, (7, 1)))
        self.branch2 = conv_chain(1024, (192, 1), (192, (7, 1)), (224, (1, 7)), (224, (7, 1)), (256, (1, 7)))
        self.branch3 = nn.Sequential(
            nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
            BasicConv2d(1024, 128, kernel_size=1),
        )


class ReductionB(Branches):
    """17x17x1024 -> 8x8x1536 (Fig. 8): 1x1 192-3x3/2 192 | 1x1 256-1x7 256-7x1 320-3x3/2 320 | max-pool."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = conv_chain(1024, (192, 1), (192, 3, 2))
        self.branch1 = conv_chain(1024, (256, 1), (256, (1, 7)), (320, (7, 1)), (320, 3, 2))
        self.branch2 = nn.MaxPool2d(3, stride=2)


class InceptionC(nn.Module):
    """8x8x1536 block (Fig. 6): 3x3s split into parallel 1x3 and 3x1 (expanded filter bank)."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = BasicConv2d(1536, 256, kernel_size=1)
        self.branch1_0 = BasicConv2d(1536, 384, kernel_size=1)
        self.branch1_1a = BasicConv2d(384, 256, kernel_size=(1, 3), padding=(0, 1))
        self.branch1_1b = BasicConv2d(384, 256, kernel_size=(3, 1), padding=(1, 0))
        self.branch2_0 = BasicConv2d(1536, 384, kernel_size=1)
        self.branch2_1 = BasicConv2d(384, 448, kernel_size=(3, 1), padding=(1, 0))
        self.branch2_2 = BasicConv2d(448, 512, kernel_size=(1, 3), padding=(0, 1))
        self.branch2_3a = BasicConv2d(512, 256, kernel_size=(1, 3), padding=(0, 1))
        self.branch2_3b = BasicConv2d(512, 256, kernel_size=(3, 1), padding=(1, 0))
        self.branch3 = nn.Sequential(
            nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
            BasicConv2d(1536, 256, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.branch1_0(x)
        x2 = self.branch2_2(self.branch2_1(self.branch2_0(x)))
        return torch.cat(
            [
                self.branch0(x),
                self.branch1_1a(x1),
                self.branch1_1b(x1),
                self.branch2_3a(x2),
                self.branch2_3b(x2),
                self.branch3(x),
            ],
            1,
        )


@register_model(
    name="inception_v4",
    input_size=(3, 299, 299),
    paper=PAPER,
    year=2016,
    ref_params=42_679_816,
    ref_source="timm inception_v4 (1000 classes)",
    ref_macs=12.28e9,
)
class InceptionV4(ClassifierNet):
    """Inception-v4 (paper Fig. 9) with timm's layout: ``features`` (stem + 14 blocks) and
    ``last_linear``. ``drop_rate=0.2`` is the paper's dropout keep probability of 0.8."""

    classifier_path = "last_linear"
    head_path = ("global_pool", "flatten", "dropout")

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.2) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_features = 1536
        stem = [
            BasicConv2d(in_chans, 32, kernel_size=3, stride=2),  # 299 -> 149
            BasicConv2d(32, 32, kernel_size=3),  # -> 147
            BasicConv2d(32, 64, kernel_size=3, padding=1),
            Mixed3a(),  # -> 73x73x160
            Mixed4a(),  # -> 71x71x192
            Mixed5a(),  # -> 35x35x384
        ]
        self.features = nn.Sequential(
            *stem,
            *(InceptionA() for _ in range(4)),
            ReductionA(384, k=192, l=224, m=256, n=384),  # -> 17x17x1024
            *(InceptionB() for _ in range(7)),
            ReductionB(),  # -> 8x8x1536
            *(InceptionC() for _ in range(3)),
        )
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(drop_rate)
        self.last_linear = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(x)
        return self.features(x)
