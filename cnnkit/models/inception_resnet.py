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

from cnnkit.models.layers import BasicConv2d, ClassifierNet
from cnnkit.models.layers.inception import Branches, PoolBranches, ReductionA, check_input_size, conv_chain
from cnnkit.models.registry import register_model

PAPER = "Szegedy et al., Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning"
DEFAULT_SCALES = (0.17, 0.10, 0.20)  # Inception-ResNet-A, -B, -C (TF-slim release)
_COMMON = dict(input_size=(3, 299, 299), paper=PAPER, year=2016)


class _ResidualInception(Branches):
    """An Inception-ResNet block: the branches, concatenated, are up-projected by a biased
    1x1 conv (``conv2d``) to the input's width, scaled (Sec. 3.3: 0.1-0.3 keeps very wide
    residual nets stable) and added to the input, then ReLU (``act``)."""

    def _add_projection(self, cat_chs: int, in_chs: int, scale: float, no_relu: bool = False) -> None:
        self.scale = scale
        self.conv2d = nn.Conv2d(cat_chs, in_chs, kernel_size=1)
        self.act = nn.Identity() if no_relu else nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2d(self.branch_outputs(x)) * self.scale + x)


class Block35(_ResidualInception):
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
        self.branch0 = BasicConv2d(in_chs, branch0, kernel_size=1)
        self.branch1 = conv_chain(in_chs, (branch1[0], 1), (branch1[1], 3))
        self.branch2 = conv_chain(in_chs, (branch2[0], 1), (branch2[1], 3), (branch2[2], 3))
        self._add_projection(branch0 + branch1[1] + branch2[2], in_chs, scale)


class FactorisedBlock(_ResidualInception):
    """1x1 | 1x1 - 1xk - kx1, up-projected and added: Inception-ResNet-B on the 17x17 grid
    (:class:`Block17`, k=7) and -C on the 8x8 grid (:class:`Block8`, k=3).

    ``no_relu=True`` for v2's last block, whose output feeds the 1x1 conv2d_7b directly.
    """

    kernel = 7

    def __init__(
        self, in_chs: int, branch1: tuple[int, int, int], branch0: int, scale: float, no_relu: bool = False
    ) -> None:
        super().__init__()
        k = self.kernel
        self.branch0 = BasicConv2d(in_chs, branch0, kernel_size=1)
        self.branch1 = conv_chain(in_chs, (branch1[0], 1), (branch1[1], (1, k)), (branch1[2], (k, 1)))
        self._add_projection(branch0 + branch1[2], in_chs, scale, no_relu)


class Block17(FactorisedBlock):
    """Inception-ResNet-B: v2 (timm) in_chs=1088, 192 | 128-160-192 (Fig. 17); v1 in_chs=896,
    128 | 128-128-128 (Fig. 11)."""

    kernel = 7


class Block8(FactorisedBlock):
    """Inception-ResNet-C: v2 (timm) in_chs=2080, 192 | 192-224-256 (Fig. 19); v1 in_chs=1792,
    192 | 192-192-192 (Fig. 13)."""

    kernel = 3


class Mixed5b(PoolBranches):
    """v2's last stem block (Inception-v3's Mixed_5b widened): 192 -> 96 + 64 + 96 + 64 = 320."""

    def __init__(self) -> None:
        super().__init__(192, 96, (48, 64), (64, 96, 96), 64, k=5)


class Mixed7a(Branches):
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
        self.branch0 = conv_chain(in_chs, (branch0[0], 1), (branch0[1], 3, 2))
        self.branch1 = conv_chain(in_chs, (branch1[0], 1), (branch1[1], 3, 2))
        self.branch2 = conv_chain(in_chs, (branch2[0], 1), (branch2[1], 3), (branch2[2], 3, 2))
        self.branch3 = nn.MaxPool2d(3, stride=2)
        self.out_chs = branch0[1] + branch1[1] + branch2[2] + in_chs


class _InceptionResNet(ClassifierNet):
    """What v1 and v2 share: the arguments, the stem up to 71x71x192 (Fig. 14 and the
    released v2), and the head: global average pool -> dropout (keep 0.8) -> ``classif``.
    Each version adds its blocks in ``_build_blocks`` and runs them in ``forward_features``."""

    classifier_path = "classif"
    head_path = ("global_pool", "flatten", "dropout")

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.2,
        scales: tuple[float, float, float] = DEFAULT_SCALES,
    ) -> None:
        super().__init__()
        self.conv2d_1a = BasicConv2d(in_chans, 32, kernel_size=3, stride=2)  # 299 -> 149
        self.conv2d_2a = BasicConv2d(32, 32, kernel_size=3)  # -> 147
        self.conv2d_2b = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.maxpool_3a = nn.MaxPool2d(3, stride=2)  # -> 73
        self.conv2d_3b = BasicConv2d(64, 80, kernel_size=1)
        self.conv2d_4a = BasicConv2d(80, 192, kernel_size=3)  # -> 71
        self.num_classes = num_classes
        self.num_features = self._build_blocks(*scales)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(drop_rate)
        self.classif = nn.Linear(self.num_features, num_classes)

    def _build_blocks(self, scale_a: float, scale_b: float, scale_c: float) -> int:
        """Add the modules after the shared stem; returns the output channels."""
        raise NotImplementedError

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(x)
        x = self.conv2d_2b(self.conv2d_2a(self.conv2d_1a(x)))
        return self.conv2d_4a(self.conv2d_3b(self.maxpool_3a(x)))


@register_model(
    name="inception_resnet_v2",
    ref_params=55_843_464,
    ref_source="timm inception_resnet_v2 (Keras InceptionResNetV2: 55,873,736, counts BN moving stats)",
    ref_macs=13.18e9,
    **_COMMON,
)
class InceptionResNetV2(_InceptionResNet):
    """Inception-ResNet-v2 as released (TF-slim, Keras, timm; 10/20/10 blocks); see the
    module docstring."""

    def _build_blocks(self, scale_a: float, scale_b: float, scale_c: float) -> int:
        self.maxpool_5a = nn.MaxPool2d(3, stride=2)  # -> 35
        self.mixed_5b = Mixed5b()  # -> 35x35x320
        self.repeat = nn.Sequential(*(Block35(scale=scale_a) for _ in range(10)))
        self.mixed_6a = ReductionA(320, k=256, l=256, m=384, n=384)  # -> 17x17x1088
        self.repeat_1 = nn.Sequential(*(Block17(1088, (128, 160, 192), 192, scale_b) for _ in range(20)))
        self.mixed_7a = Mixed7a()  # -> 8x8x2080
        self.repeat_2 = nn.Sequential(*(Block8(2080, (192, 224, 256), 192, scale_c) for _ in range(9)))
        # The released model ends with an unscaled block without ReLU (TF-slim, Keras, timm).
        self.block8 = Block8(2080, (192, 224, 256), 192, scale=1.0, no_relu=True)
        self.conv2d_7b = BasicConv2d(2080, 1536, kernel_size=1)
        return 1536

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mixed_5b(self.maxpool_5a(self._stem(x)))
        x = self.repeat_1(self.mixed_6a(self.repeat(x)))
        x = self.block8(self.repeat_2(self.mixed_7a(x)))
        return self.conv2d_7b(x)


@register_model(
    name="inception_resnet_v1",
    ref_params=22_756_328,
    ref_source="computed by hand from the paper's Figs. 10-15 (module docstring); the paper gives no count",
    **_COMMON,
)
class InceptionResNetV1(_InceptionResNet):
    """Inception-ResNet-v1 as the paper draws it (Figs. 10-15; no published parameter
    count); see the module docstring."""

    def _build_blocks(self, scale_a: float, scale_b: float, scale_c: float) -> int:
        # Stem, Fig. 14: 299 -> 149 -> 147 -> 147 -> 73 -> 73 -> 71 -> 35x35x256
        self.conv2d_4b = BasicConv2d(192, 256, kernel_size=3, stride=2)
        self.repeat = nn.Sequential(
            *(Block35(256, branch1=(32, 32), branch2=(32, 32, 32), scale=scale_a) for _ in range(5))
        )
        self.mixed_6a = ReductionA(256, k=192, l=192, m=256, n=384)  # -> 17x17x896
        self.repeat_1 = nn.Sequential(*(Block17(896, (128, 128, 128), 128, scale_b) for _ in range(10)))
        self.mixed_7a = Mixed7a(896, branch1=(256, 256), branch2=(256, 256, 256))  # -> 8x8x1792
        self.repeat_2 = nn.Sequential(*(Block8(1792, (192, 192, 192), 192, scale_c) for _ in range(5)))
        return 1792

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.repeat(self.conv2d_4b(self._stem(x)))
        x = self.repeat_1(self.mixed_6a(x))
        return self.repeat_2(self.mixed_7a(x))
