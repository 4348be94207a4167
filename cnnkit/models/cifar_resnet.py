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
from cnnkit.models.layers.residual import (
    PREACT_PAPER,
    RESNET_PAPER,
    BasicBlock,
    PreActBasicBlock,
    PreActBottleneck,
    ResNetBase,
    ShortcutFactory,
    conv1x1,
    projection_bn,
)
from cnnkit.models.registry import Variant, register_variants


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
    """ResNet v1 for CIFAR (paper section 4.2), ``depth`` = 6n+2: a 3x3 conv (16), three
    stages of 16-32-64 planes on 32x32, 16x16 and 8x8 maps, pooling, fc.

    Named like torchvision's ResNet: conv1, bn1, relu, layer1..layer3, avgpool, fc.
    """

    widths = (16, 32, 64)
    strides = (1, 2, 2)
    imagenet_stem = False

    def __init__(self, depth: int = 20, shortcut: str = "A", **kwargs: Any) -> None:
        """``kwargs``: ``num_classes``, ``in_chans``, ``act``, ``zero_init_residual``."""
        n = blocks_per_stage(depth, 2)
        super().__init__(BasicBlock, (n,) * 3, shortcut=shortcut_factory(shortcut, False), **kwargs)


class CifarPreActResNet(CifarResNet):
    """Pre-activation ResNet v2 for CIFAR: a bare 3x3 conv (16), three stages, final
    BN-ReLU (inside ``forward_features``), pooling, fc.

    ``bottleneck=True``: depth 9n+2, planes 16/32/64 expanded x4 (ResNet-164/1001);
    ``bottleneck=False``: depth 6n+2, basic blocks of 16/32/64 (ResNet-110). Shortcut
    and stride placement default to the authors' code for bottlenecks (projections "B",
    stride on the first 1x1 conv), to the ResNet paper's CIFAR nets otherwise ("A").
    """

    def __init__(
        self,
        depth: int = 164,
        bottleneck: bool = True,
        shortcut: str | None = None,
        stride_in_1x1: bool | None = None,
        **kwargs: Any,
    ) -> None:
        """``kwargs``: ``num_classes``, ``in_chans``, ``act``, ``zero_init_residual``."""
        block = PreActBottleneck if bottleneck else PreActBasicBlock
        n = blocks_per_stage(depth, 3 if bottleneck else 2)
        ResNetBase.__init__(
            self,
            block,
            (n,) * 3,
            shortcut=shortcut_factory(shortcut or ("B" if bottleneck else "A"), True),
            stride_in_1x1=bottleneck if stride_in_1x1 is None else stride_in_1x1,
            **kwargs,
        )


AKAMASTER = (
    "He et al. 2015 Table 6 ({paper}); exact count of the standard PyTorch re-implementation "
    "(akamaster/pytorch_resnet_cifar10), option A shortcuts"
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
        family="resnet",
        input_size=(3, 32, 32),
        num_classes=10,
        paper=RESNET_PAPER,
        year=2015,
    )
)


_KAIMING = (
    "computed: bias-free convs of KaimingHe/resnet-1k-layers, {n} bottlenecks per stage, "
    "projections 16->64, 64->128, 128->256, fc 256->10; paper Table 2: {paper}"
)
globals().update(
    register_variants(
        CifarPreActResNet,
        {
            "cifar_preact_resnet110": Variant(
                (110, False),
                1_727_962,
                "Pre-activation CIFAR ResNet-110: basic blocks, n=18, option A shortcuts.",
                ref_source="computed: cifar_resnet110's convs and fc (1,727,962, option A); BN moved before "
                "the convs: no stem BN (-16 ch), narrower first-block BNs of stages 2-3 (-16, -32 ch), final "
                "BN (+64 ch): the same count; paper Table 2: 1.7M",
            ),
            "cifar_preact_resnet164": Variant(
                (164,),
                1_703_258,
                "Pre-activation CIFAR ResNet-164: bottlenecks, n=18.",
                ref_source=_KAIMING.format(n=18, paper="1.7M"),
            ),
            # Each residual branch starts at zero (Goyal et al. 2017): with He init every block
            # roughly doubles the variance, which BN absorbs in training but not in eval mode
            # before any statistics are learnt, and 333 doublings overflow float32. Pass
            # zero_init_residual=False for the authors' plain He init.
            "cifar_preact_resnet1001": Variant(
                (1001,),
                10_327_706,
                "Pre-activation CIFAR ResNet-1001: bottlenecks, n=111, residual branches zero-initialised.",
                ref_source=_KAIMING.format(n=111, paper="10.2M"),
                options=(("zero_init_residual", True),),
            ),
        },
        family="resnet",
        input_size=(3, 32, 32),
        num_classes=10,
        paper=PREACT_PAPER,
        year=2016,
    )
)
