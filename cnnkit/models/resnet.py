"""ResNet v1 (He, Zhang, Ren, Sun 2015, "Deep Residual Learning for Image Recognition",
arXiv:1512.03385) and the pre-activation ResNet v2 (He, Zhang, Ren, Sun 2016, "Identity
Mappings in Deep Residual Networks", arXiv:1603.05027), for ImageNet at 3x224x224.

ResNet v1 follows torchvision's models/resnet.py module for module, so a torchvision
state_dict loads into it unchanged (conv1, bn1, relu, maxpool, layer1..layer4, avgpool,
fc; blocks conv1/bn1/conv2/bn2(/conv3/bn3) and downsample.0/.1).

Pre-activation ResNet v2 moves BN and ReLU *before* each convolution (BN-ReLU-conv), so
the shortcut carries x_l -> x_L with nothing but additions; a last BN-ReLU runs before
the pooling, else the classifier would see the sum of un-normalised residuals.

The blocks live in ``cnnkit/models/layers/residual.py``, shared with the CIFAR networks.
"""

from __future__ import annotations

from cnnkit.models.layers.residual import (
    PREACT_PAPER,
    RESNET_PAPER,
    TORCHVISION,
    BasicBlock,
    Bottleneck,
    PreActBasicBlock,
    PreActBottleneck,
    ResNetBase,
)
from cnnkit.models.registry import Variant, register_variants


class ResNet(ResNetBase):
    """ResNet v1 for ImageNet (paper Table 1): 7x7/2 conv, 3x3/2 max-pool, four stages
    of 64-128-256-512 planes (the last three stride 2), global average pool, fc."""


class PreActResNet(ResNetBase):
    """Pre-activation ResNet v2 for ImageNet: the v1 layout with BN-ReLU-conv blocks.

    The stem is a bare 7x7/2 conv and the max-pool (the first block's BN-ReLU normalises
    it), the stages end with ``final_bn`` + ``final_act``, which ``forward_features``
    includes, and projection shortcuts are bare 1x1 convs. Same layout as timm's
    ``resnetv2_50``.
    """


_V1 = dict(input_size=(3, 224, 224), paper=RESNET_PAPER, year=2015, ref_source=TORCHVISION)
globals().update(
    register_variants(
        ResNet,
        {
            "resnet18": Variant(
                (BasicBlock, (2, 2, 2, 2)), 11_689_512, "ResNet-18: basic blocks [2, 2, 2, 2].", 1.81e9
            ),
            "resnet34": Variant(
                (BasicBlock, (3, 4, 6, 3)), 21_797_672, "ResNet-34: basic blocks [3, 4, 6, 3].", 3.66e9
            ),
            "resnet50": Variant(
                (Bottleneck, (3, 4, 6, 3)),
                25_557_032,
                "ResNet-50 (v1.5 stride placement; ``stride_in_1x1=True`` for the paper's): bottlenecks [3, 4, 6, 3].",
                4.09e9,
            ),
            "resnet101": Variant(
                (Bottleneck, (3, 4, 23, 3)), 44_549_160, "ResNet-101: bottlenecks [3, 4, 23, 3].", 7.80e9
            ),
            "resnet152": Variant(
                (Bottleneck, (3, 8, 36, 3)), 60_192_808, "ResNet-152: bottlenecks [3, 8, 36, 3].", 11.51e9
            ),
        },
        **_V1,
    )
)


# The v2 counts follow from torchvision's v1 counts: the bias-free convs and the fc are the
# same, only BatchNorm (2 parameters per channel) moves. v2 has no stem BN and no BN in the
# shortcuts, each block's first BN sees the block's input (narrower in the first block of a
# stage), and one BN follows the last stage. Extra blocks inside a stage have as many BN
# channels in both versions (2w for basic, 6w for bottleneck), so 50/101/152 differ alike.
_V2_SOURCE = "computed: same convs and fc as torchvision's {v1} ({v1p:,}); BN moved before each conv, {how}"
_BASIC_DIFF = (
    "no stem BN (-64 ch), BN-free shortcuts (-896 ch), block BNs (-448 ch), final BN (+512 ch): -1,792"
)
_BOTTLENECK_DIFF = (
    "no stem BN (-64 ch), BN-free shortcuts (-3,840 ch), block BNs (-1,984 ch), final BN (+2,048 ch): -7,680"
)


def _v2(layers: tuple[int, ...], ref_params: int, v1: str, v1_params: int, extra: str = "") -> Variant:
    block, diff, kind = (
        (PreActBasicBlock, _BASIC_DIFF, "basic blocks")
        if v1 in ("resnet18", "resnet34")
        else (PreActBottleneck, _BOTTLENECK_DIFF, "bottlenecks")
    )
    source = _V2_SOURCE.format(v1=v1, v1p=v1_params, how=diff) + extra
    doc = f"Pre-activation ResNet-{v1[6:]}: {kind} {list(layers)}."
    return Variant((block, layers), ref_params, doc, ref_source=source)


globals().update(
    register_variants(
        PreActResNet,
        {
            "preact_resnet18": _v2((2, 2, 2, 2), 11_687_720, "resnet18", 11_689_512),
            "preact_resnet34": _v2((3, 4, 6, 3), 21_795_880, "resnet34", 21_797_672),
            "preact_resnet50": _v2(
                (3, 4, 6, 3), 25_549_352, "resnet50", 25_557_032, "; timm's resnetv2_50 model card: 25.5 M"
            ),
            "preact_resnet101": _v2((3, 4, 23, 3), 44_541_480, "resnet101", 44_549_160),
            "preact_resnet152": _v2((3, 8, 36, 3), 60_185_128, "resnet152", 60_192_808),
        },
        input_size=(3, 224, 224),
        paper=PREACT_PAPER,
        year=2016,
    )
)
