"""ResNets for CIFAR-10 (3x32x32, 10 classes).

* ``cifar_resnet20`` .. ``cifar_resnet110``: He, Zhang, Ren, Sun 2015, "Deep Residual
  Learning for Image Recognition", section 4.2: a 3x3 conv with 16 filters, then three
  stages of n basic blocks with 16, 32 and 64 filters on 32x32, 16x16 and 8x8 maps,
  global average pooling and a 10-way fc; 6n+2 weighted layers. Shortcuts are identities;
  where the shape changes, option A subsamples and zero-pads (no parameters), as in the
  paper's CIFAR experiments. ``shortcut="B"`` uses 1x1-conv + BN projections instead.
* ``cifar_preact_resnet110/164/1001``: He, Zhang, Ren, Sun 2016, "Identity Mappings in
  Deep Residual Networks", section 4 and Table 2: pre-activation (BN-ReLU-conv) blocks,
  ResNet-164 and ResNet-1001 with bottlenecks of 16/32/64 planes and 64/128/256 outputs
  (9n+2 layers), as in the authors' code (KaimingHe/resnet-1k-layers): a bare first conv,
  bias-free projection shortcuts on the normalised input, the stride on the first 1x1
  conv, and a final BN-ReLU before the pooling.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnkit.errors import CnnkitError
from cnnkit.models.layers import make_act
from cnnkit.models.layers.residual import (
    PREACT_PAPER,
    RESNET_PAPER,
    BasicBlock,
    PreActBasicBlock,
    PreActBottleneck,
    ResNetBase,
    ShortcutFactory,
    block_options,
    conv1x1,
    conv3x3,
    init_resnet_weights,
    projection_bn,
)
from cnnkit.models.registry import Variant, register_model, register_variants

CIFAR_STRIDES = (1, 2, 2)


class ZeroPadShortcut(nn.Module):
    """Shortcut option A of the ResNet paper: keep every ``stride``-th pixel and append
    zero channels, so the shortcut stays an identity on the existing channels and adds
    no parameters. The new channels are split evenly before and after the old ones, as in
    the standard PyTorch re-implementation (akamaster/pytorch_resnet_cifar10)."""

    def __init__(self, in_chs: int, out_chs: int, stride: int) -> None:
        super().__init__()
        if out_chs < in_chs:
            raise ValueError(f"option A shortcut cannot reduce channels ({in_chs} -> {out_chs})")
        self.in_chs, self.out_chs, self.stride = in_chs, out_chs, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        extra = self.out_chs - self.in_chs
        return F.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2))

    def extra_repr(self) -> str:
        return f"{self.in_chs}, {self.out_chs}, stride={self.stride}"


def shortcut_factory(option: str, preact: bool) -> ShortcutFactory:
    """Option "A" (zero-pad) or "B" (projection; a bare conv in pre-activation nets)."""
    option = option.upper()
    if option == "A":
        return ZeroPadShortcut
    if option == "B":
        return conv1x1 if preact else projection_bn
    raise CnnkitError(f'unknown shortcut option {option!r}. Use shortcut="A" (zero-pad) or "B" (projection).')


def blocks_per_stage(depth: int, layers_per_block: int) -> int:
    """n of a depth = layers_per_block * 3n + 2 network (6n+2 basic, 9n+2 bottleneck)."""
    n, rest = divmod(depth - 2, 3 * layers_per_block)
    if rest or n < 1:
        raise CnnkitError(
            f"depth {depth} is not {3 * layers_per_block}n+2. Use e.g. {3 * layers_per_block + 2}."
        )
    return n


class CifarResNet(ResNetBase):
    """ResNet v1 for CIFAR (paper section 4.2), ``depth`` = 6n+2.

    Named like torchvision's ResNet: conv1, bn1, relu, layer1..layer3, avgpool, fc.
    """

    def __init__(
        self,
        depth: int = 20,
        num_classes: int = 10,
        in_chans: int = 3,
        shortcut: str = "A",
        act: str = "relu",
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        n = blocks_per_stage(depth, 2)
        self.conv1 = conv3x3(in_chans, 16)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = make_act(act, 16)
        chs = self.add_stages(
            BasicBlock, 16, (16, 32, 64), (n,) * 3, CIFAR_STRIDES, shortcut_factory(shortcut, False), act=act
        )
        self.add_head(chs, num_classes)
        init_resnet_weights(self, zero_init_residual)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        return self.layer3(self.layer2(self.layer1(x)))


class CifarPreActResNet(ResNetBase):
    """Pre-activation ResNet v2 for CIFAR: a bare 3x3 conv (16), three stages, final
    BN-ReLU (inside ``forward_features``), pooling, fc.

    ``bottleneck=True``: depth 9n+2, planes 16/32/64 expanded x4 (ResNet-164/1001);
    ``bottleneck=False``: depth 6n+2, basic blocks of 16/32/64 (ResNet-110).
    """

    def __init__(
        self,
        depth: int = 164,
        bottleneck: bool = True,
        num_classes: int = 10,
        in_chans: int = 3,
        shortcut: str | None = None,
        act: str = "relu",
        zero_init_residual: bool = False,
        stride_in_1x1: bool | None = None,
    ) -> None:
        super().__init__()
        block = PreActBottleneck if bottleneck else PreActBasicBlock
        n = blocks_per_stage(depth, 3 if bottleneck else 2)
        # defaults of the authors' code for bottlenecks, of the ResNet paper's CIFAR nets otherwise
        shortcut = shortcut or ("B" if bottleneck else "A")
        stride_in_1x1 = bottleneck if stride_in_1x1 is None else stride_in_1x1
        opts = block_options(block, act, stride_in_1x1)
        self.conv1 = conv3x3(in_chans, 16)
        chs = self.add_stages(
            block, 16, (16, 32, 64), (n,) * 3, CIFAR_STRIDES, shortcut_factory(shortcut, True), **opts
        )
        self.final_bn = nn.BatchNorm2d(chs)
        self.final_act = make_act(act, chs)
        self.add_head(chs, num_classes)
        init_resnet_weights(self, zero_init_residual)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        return self.final_act(self.final_bn(x))


AKAMASTER = (
    "He et al. 2015 Table 6 ({paper}); exact count of the standard PyTorch re-implementation "
    "(akamaster/pytorch_resnet_cifar10), option A shortcuts"
)
CIFAR_V1: dict[str, Any] = dict(
    family="resnet", input_size=(3, 32, 32), num_classes=10, paper=RESNET_PAPER, year=2015
)
CIFAR_V2: dict[str, Any] = dict(
    family="resnet", input_size=(3, 32, 32), num_classes=10, paper=PREACT_PAPER, year=2016
)


globals().update(
    register_variants(
        CifarResNet,
        {
            f"cifar_resnet{depth}": Variant(
                (depth,),
                params,
                f"CIFAR ResNet-{depth} (n={(depth - 2) // 6}).",
                ref_source=AKAMASTER.format(paper=paper),
            )
            for depth, params, paper in (
                (20, 269_722, "0.27M"),
                (32, 464_154, "0.46M"),
                (44, 658_586, "0.66M"),
                (56, 853_018, "0.85M"),
                (110, 1_727_962, "1.7M"),
            )
        },
        **CIFAR_V1,
    )
)


@register_model(
    **CIFAR_V2,
    ref_params=1_727_962,
    ref_source=(
        "computed: cifar_resnet110's convs and fc (1,727,962, option A); BN moved before the convs: "
        "no stem BN (-16 ch), narrower first-block BNs of stages 2-3 (-16, -32 ch), final BN (+64 ch): "
        "the same count; paper Table 2: 1.7M"
    ),
)
def cifar_preact_resnet110(num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> CifarPreActResNet:
    """Pre-activation CIFAR ResNet-110: basic blocks, n=18, option A shortcuts."""
    return CifarPreActResNet(110, bottleneck=False, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(
    **CIFAR_V2,
    ref_params=1_703_258,
    ref_source=(
        "computed: bias-free convs of KaimingHe/resnet-1k-layers, 18 bottlenecks per stage, "
        "projections 16->64, 64->128, 128->256, fc 256->10; paper Table 2: 1.7M"
    ),
)
def cifar_preact_resnet164(num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> CifarPreActResNet:
    """Pre-activation CIFAR ResNet-164: bottlenecks, n=18."""
    return CifarPreActResNet(164, bottleneck=True, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(
    **CIFAR_V2,
    ref_params=10_327_706,
    ref_source=(
        "computed: bias-free convs of KaimingHe/resnet-1k-layers, 111 bottlenecks per stage, "
        "projections 16->64, 64->128, 128->256, fc 256->10; paper Table 2: 10.2M"
    ),
)
def cifar_preact_resnet1001(num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> CifarPreActResNet:
    """Pre-activation CIFAR ResNet-1001: bottlenecks, n=111.

    Each residual branch starts at zero (``zero_init_residual=True`` by default, Goyal et
    al. 2017): with He init every block roughly doubles the variance, which BN absorbs in
    training but not in eval mode before any statistics are learnt, and 333 doublings
    overflow float32. Pass ``zero_init_residual=False`` for the authors' plain He init.
    """
    kwargs.setdefault("zero_init_residual", True)
    return CifarPreActResNet(1001, bottleneck=True, num_classes=num_classes, in_chans=in_chans, **kwargs)
