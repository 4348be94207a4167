"""Inception-ResNet v1 and v2 (Szegedy, Ioffe, Vanhoucke, Alemi 2016, "Inception-v4,
Inception-ResNet and the Impact of Residual Connections on Learning", AAAI 2017).

Each Inception-ResNet block is a cheap Inception module whose concatenated branches are
projected back to the input width by a 1x1 "linear" conv (bias, no BN, no ReLU), scaled,
and added to the input; ReLU follows the sum (paper Figs. 10-13 and 16-19)::

    out = relu(x + scale * up_conv(concat(branches(x))))

The scaling (paper section 3.3) keeps the residual branch small: with more than ~1000
filters the authors saw networks "die" early in training unless the residual was scaled by
0.1-0.3 before the addition. It is the ``scales`` constructor argument, (A, B, C) =
(0.17, 0.10, 0.20) as in the released TF-slim code; a scale of 0 makes a block ``relu(x)``.
BatchNorm sits on the ordinary convs only, not after the sums (section 3.2), which kept the
models within one GPU's memory.

``inception_resnet_v2`` is timm's (and Keras-Applications') network, module names included:
conv2d_1a .. maxpool_5a, mixed_5b, repeat (10x Block35), mixed_6a, repeat_1 (20x Block17),
mixed_7a, repeat_2 (9x Block8), block8 (no ReLU, scale 1), conv2d_7b (1x1, 1536), classif.
That is the released model, not the paper's Figure 15 as drawn: the released stem is
Inception-v3's plus ``mixed_5b`` (35x35x320, not Figure 3's 35x35x384), there are 10/20/10
blocks instead of 5/10/5, and the residual widths are 320/1088/2080 (the figures say
384/1154/2048). Its 55,843,464 parameters match timm exactly (13.16 G MACs at 299x299;
timm lists 13.18 G). Both timm and Keras put a bias on the block up-projections and none on
the BN convs; they differ in the BN itself. Here, as in timm, BN learns a scale and a shift
(2 parameters per channel); Keras' InceptionResNetV2 uses ``scale=False`` (shift only) but
its summary counts the moving mean and variance as weights (3 per channel), so it reports
55,873,736 = 55,843,464 + 30,272, the number of BN channels in the network.

``inception_resnet_v1`` follows the paper's figures, for which no library publishes a count:
stem Fig. 14 (35x35x256), 5x Inception-ResNet-A (Fig. 10), Reduction-A with (k, l, m, n) =
(192, 192, 256, 384) (17x17x896), 10x Inception-ResNet-B (Fig. 11), Reduction-B (Fig. 12,
8x8x1792), 5x Inception-ResNet-C (Fig. 13), avg pool, dropout keep 0.8, fc; it uses the
same conventions as v2 (BN eps 0.001 with scale on every ordinary conv, biased linear
up-projections, the same residual scales). The paper gives no parameter count; by hand,
with a BN conv costing in*out*kh*kw + 2*out and an up-projection in*out + out:

    stem        928 + 9,280 + 18,560 + 5,280 + 138,624 + 442,880      =    615,552
    5x A        (3*8,256 + 3*9,280 + 24,832) = 77,440 each            =    387,200
    Reduction-A 885,504 + 49,536 + 332,160 + 442,880                  =  1,710,080
    10x B       (4*114,944 + 230,272) = 690,048 each                   =  6,900,480
    Reduction-B 3*229,888 + 885,504 + 3*590,336                       =  3,346,176
    5x C        (2*344,448 + 2*110,976 + 689,920) = 1,600,768 each    =  8,003,840
    fc          1792*1000 + 1000                                      =  1,793,000
    total                                                             = 22,756,328

It costs 6.21 G MACs at 299x299 against Inception-v3's 5.71 G, in line with the paper's
"roughly the computational cost of Inception-v3". Both networks need inputs of at least 75x75.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cnnkit.models.layers import BasicConv2d, PooledClassifierNet
from cnnkit.models.layers.inception import ReductionA, check_input_size
from cnnkit.models.registry import register_model

DEFAULT_SCALES = (0.17, 0.10, 0.20)  # Inception-ResNet-A, -B, -C (TF-slim release)


class Block35(nn.Module):
    """Inception-ResNet-A on the 35x35 grid: 1x1 | 1x1-3x3 | 1x1-3x3-3x3, up-projected and added.

    v2 (timm): in_chs=320, widths 32 | 32-32 | 32-48-64 (Fig. 16); v1: in_chs=256, all 32 (Fig. 10).
    """

    def __init__(
        self,
        in_chs: int = 320,
        branch1: tuple[int, int] = (32, 32),
        branch2: tuple[int, int, int] = (32, 48, 64),
        branch0: int = 32,
        scale: float = 0.17,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.branch0 = BasicConv2d(in_chs, branch0, kernel_size=1)
        self.branch1 = nn.Sequential(
            BasicConv2d(in_chs, branch1[0], kernel_size=1),
            BasicConv2d(branch1[0], branch1[1], kernel_size=3, padding=1),
        )
        self.branch2 = nn.Sequential(
            BasicConv2d(in_chs, branch2[0], kernel_size=1),
            BasicConv2d(branch2[0], branch2[1], kernel_size=3, padding=1),
            BasicConv2d(branch2[1], branch2[2], kernel_size=3, padding=1),
        )
        self.conv2d = nn.Conv2d(branch0 + branch1[1] + branch2[2], in_chs, kernel_size=1)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.cat([self.branch0(x), self.branch1(x), self.branch2(x)], 1)
        return self.act(self.conv2d(out) * self.scale + x)


class Block17(nn.Module):
    """Inception-ResNet-B on the 17x17 grid: 1x1 | 1x1-1x7-7x1, up-projected and added.

    v2 (timm): in_chs=1088, 192 | 128-160-192 (Fig. 17); v1: in_chs=896, 128 | 128-128-128 (Fig. 11).
    """

    def __init__(
        self,
        in_chs: int = 1088,
        branch1: tuple[int, int, int] = (128, 160, 192),
        branch0: int = 192,
        scale: float = 0.10,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.branch0 = BasicConv2d(in_chs, branch0, kernel_size=1)
        self.branch1 = nn.Sequential(
            BasicConv2d(in_chs, branch1[0], kernel_size=1),
            BasicConv2d(branch1[0], branch1[1], kernel_size=(1, 7), padding=(0, 3)),
            BasicConv2d(branch1[1], branch1[2], kernel_size=(7, 1), padding=(3, 0)),
        )
        self.conv2d = nn.Conv2d(branch0 + branch1[2], in_chs, kernel_size=1)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.cat([self.branch0(x), self.branch1(x)], 1)
        return self.act(self.conv2d(out) * self.scale + x)


class Block8(nn.Module):
    """Inception-ResNet-C on the 8x8 grid: 1x1 | 1x1-1x3-3x1, up-projected and added.

    v2 (timm): in_chs=2080, 192 | 192-224-256 (Fig. 19); v1: in_chs=1792, 192 | 192-192-192 (Fig. 13).
    ``no_relu=True`` for v2's last block, whose output feeds the 1x1 conv2d_7b directly.
    """

    def __init__(
        self,
        in_chs: int = 2080,
        branch1: tuple[int, int, int] = (192, 224, 256),
        branch0: int = 192,
        scale: float = 0.20,
        no_relu: bool = False,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.branch0 = BasicConv2d(in_chs, branch0, kernel_size=1)
        self.branch1 = nn.Sequential(
            BasicConv2d(in_chs, branch1[0], kernel_size=1),
            BasicConv2d(branch1[0], branch1[1], kernel_size=(1, 3), padding=(0, 1)),
            BasicConv2d(branch1[1], branch1[2], kernel_size=(3, 1), padding=(1, 0)),
        )
        self.conv2d = nn.Conv2d(branch0 + branch1[2], in_chs, kernel_size=1)
        self.act = nn.Identity() if no_relu else nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.cat([self.branch0(x), self.branch1(x)], 1)
        return self.act(self.conv2d(out) * self.scale + x)


class Mixed5b(nn.Module):
    """v2's last stem block (Inception-v3's Mixed_5b widened): 192 -> 96 + 64 + 96 + 64 = 320."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = BasicConv2d(192, 96, kernel_size=1)
        self.branch1 = nn.Sequential(
            BasicConv2d(192, 48, kernel_size=1),
            BasicConv2d(48, 64, kernel_size=5, padding=2),
        )
        self.branch2 = nn.Sequential(
            BasicConv2d(192, 64, kernel_size=1),
            BasicConv2d(64, 96, kernel_size=3, padding=1),
            BasicConv2d(96, 96, kernel_size=3, padding=1),
        )
        self.branch3 = nn.Sequential(
            nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
            BasicConv2d(192, 64, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class Mixed7a(nn.Module):
    """Reduction-B of the Inception-ResNets, 17x17 -> 8x8: 1x1-3x3/2 | 1x1-3x3/2 |
    1x1-3x3-3x3/2 | 3x3/2 max-pool. Widths: v2 (256-384, 256-288, 256-288-320; Fig. 18),
    v1 (256-384, 256-256, 256-256-256; Fig. 12)."""

    def __init__(
        self,
        in_chs: int = 1088,
        branch0: tuple[int, int] = (256, 384),
        branch1: tuple[int, int] = (256, 288),
        branch2: tuple[int, int, int] = (256, 288, 320),
    ) -> None:
        super().__init__()
        self.branch0 = nn.Sequential(
            BasicConv2d(in_chs, branch0[0], kernel_size=1),
            BasicConv2d(branch0[0], branch0[1], kernel_size=3, stride=2),
        )
        self.branch1 = nn.Sequential(
            BasicConv2d(in_chs, branch1[0], kernel_size=1),
            BasicConv2d(branch1[0], branch1[1], kernel_size=3, stride=2),
        )
        self.branch2 = nn.Sequential(
            BasicConv2d(in_chs, branch2[0], kernel_size=1),
            BasicConv2d(branch2[0], branch2[1], kernel_size=3, padding=1),
            BasicConv2d(branch2[1], branch2[2], kernel_size=3, stride=2),
        )
        self.branch3 = nn.MaxPool2d(3, stride=2)
        self.out_chs = branch0[1] + branch1[1] + branch2[2] + in_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class _InceptionResNet(PooledClassifierNet):
    """Shared head of v1 and v2: global average pool -> dropout (keep 0.8) -> ``classif``."""

    classifier_path = "classif"
    pool_path = "global_pool"

    def _build_stem(self, in_chans: int) -> None:
        """The stem both versions share up to 71x71x192 (Fig. 14 and the released v2)."""
        self.conv2d_1a = BasicConv2d(in_chans, 32, kernel_size=3, stride=2)  # 299 -> 149
        self.conv2d_2a = BasicConv2d(32, 32, kernel_size=3)  # -> 147
        self.conv2d_2b = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.maxpool_3a = nn.MaxPool2d(3, stride=2)  # -> 73
        self.conv2d_3b = BasicConv2d(64, 80, kernel_size=1)
        self.conv2d_4a = BasicConv2d(80, 192, kernel_size=3)  # -> 71

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(x)
        x = self.conv2d_2b(self.conv2d_2a(self.conv2d_1a(x)))
        return self.conv2d_4a(self.conv2d_3b(self.maxpool_3a(x)))

    def _build_head(self, num_features: int, num_classes: int, drop_rate: float) -> None:
        self.num_classes = num_classes
        self.num_features = num_features
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(drop_rate)
        self.classif = nn.Linear(num_features, num_classes)


class InceptionResNetV2(_InceptionResNet):
    """Inception-ResNet-v2 as released (TF-slim, Keras, timm); see the module docstring."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.2,
        scales: tuple[float, float, float] = DEFAULT_SCALES,
    ) -> None:
        super().__init__()
        scale_a, scale_b, scale_c = scales
        self._build_stem(in_chans)
        self.maxpool_5a = nn.MaxPool2d(3, stride=2)  # -> 35
        self.mixed_5b = Mixed5b()  # -> 35x35x320
        self.repeat = nn.Sequential(*(Block35(scale=scale_a) for _ in range(10)))
        self.mixed_6a = ReductionA(320, k=256, l=256, m=384, n=384)  # -> 17x17x1088
        self.repeat_1 = nn.Sequential(*(Block17(scale=scale_b) for _ in range(20)))
        self.mixed_7a = Mixed7a()  # -> 8x8x2080
        self.repeat_2 = nn.Sequential(*(Block8(scale=scale_c) for _ in range(9)))
        # The released model ends with an unscaled block without ReLU (TF-slim, Keras, timm).
        self.block8 = Block8(scale=1.0, no_relu=True)
        self.conv2d_7b = BasicConv2d(2080, 1536, kernel_size=1)
        self._build_head(1536, num_classes, drop_rate)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mixed_5b(self.maxpool_5a(self._stem(x)))
        x = self.repeat_1(self.mixed_6a(self.repeat(x)))
        x = self.block8(self.repeat_2(self.mixed_7a(x)))
        return self.conv2d_7b(x)


class InceptionResNetV1(_InceptionResNet):
    """Inception-ResNet-v1 as the paper draws it (Figs. 10-15); see the module docstring."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.2,
        scales: tuple[float, float, float] = DEFAULT_SCALES,
    ) -> None:
        super().__init__()
        scale_a, scale_b, scale_c = scales
        # Stem, Fig. 14: 299 -> 149 -> 147 -> 147 -> 73 -> 73 -> 71 -> 35x35x256
        self._build_stem(in_chans)
        self.conv2d_4b = BasicConv2d(192, 256, kernel_size=3, stride=2)
        self.repeat = nn.Sequential(
            *(Block35(256, branch1=(32, 32), branch2=(32, 32, 32), scale=scale_a) for _ in range(5))
        )
        self.mixed_6a = ReductionA(256, k=192, l=192, m=256, n=384)  # -> 17x17x896
        self.repeat_1 = nn.Sequential(
            *(Block17(896, branch1=(128, 128, 128), branch0=128, scale=scale_b) for _ in range(10))
        )
        self.mixed_7a = Mixed7a(896, branch1=(256, 256), branch2=(256, 256, 256))  # -> 8x8x1792
        self.repeat_2 = nn.Sequential(
            *(Block8(1792, branch1=(192, 192, 192), scale=scale_c) for _ in range(5))
        )
        self._build_head(1792, num_classes, drop_rate)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.repeat(self.conv2d_4b(self._stem(x)))
        x = self.repeat_1(self.mixed_6a(x))
        return self.repeat_2(self.mixed_7a(x))


@register_model(
    family="inception_resnet",
    input_size=(3, 299, 299),
    num_classes=1000,
    paper="Szegedy et al., Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning",
    year=2016,
    ref_params=55_843_464,
    ref_source="timm inception_resnet_v2 (Keras InceptionResNetV2: 55,873,736, counts BN moving stats)",
    ref_macs=13.18e9,
)
def inception_resnet_v2(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> InceptionResNetV2:
    """Inception-ResNet-v2 at 299x299 (the released 10/20/10-block model)."""
    return InceptionResNetV2(num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(
    family="inception_resnet",
    input_size=(3, 299, 299),
    num_classes=1000,
    paper="Szegedy et al., Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning",
    year=2016,
    ref_params=22_756_328,
    ref_source="computed by hand from the paper's Figs. 10-15 (module docstring); the paper gives no count",
)
def inception_resnet_v1(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> InceptionResNetV1:
    """Inception-ResNet-v1 at 299x299 (paper Figs. 10-15; no published parameter count)."""
    return InceptionResNetV1(num_classes=num_classes, in_chans=in_chans, **kwargs)
