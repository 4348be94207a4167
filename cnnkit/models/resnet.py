"""ResNet v1 (He, Zhang, Ren, Sun 2015, "Deep Residual Learning for Image Recognition",
arXiv:1512.03385) and the pre-activation ResNet v2 (He, Zhang, Ren, Sun 2016, "Identity
Mappings in Deep Residual Networks", arXiv:1603.05027), for ImageNet at 3x224x224.

ResNet v1 follows torchvision's models/resnet.py module for module, so a torchvision
state_dict loads into it unchanged (conv1, bn1, relu, maxpool, layer1..layer4, avgpool,
fc; blocks conv1/bn1/conv2/bn2(/conv3/bn3) and downsample.0/.1).

Pre-activation ResNet v2 moves BN and ReLU *before* each convolution (BN-ReLU-conv), so
the shortcut carries x_l -> x_L with nothing but additions; a last BN-ReLU runs before
the pooling, else the classifier would see the sum of un-normalised residuals.

The blocks are shared with the CIFAR networks in ``cnnkit/models/cifar_resnet.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn

from cnnkit.errors import CnnkitError
from cnnkit.models.layers import ClassifierNet, make_act
from cnnkit.models.registry import register_model

RESNET_PAPER = "He, Zhang, Ren, Sun, Deep Residual Learning for Image Recognition"
PREACT_PAPER = "He, Zhang, Ren, Sun, Identity Mappings in Deep Residual Networks"
TORCHVISION = "torchvision models/resnet.py weights meta (num_params, GFLOPS)"

# (in_chs, out_chs, stride) -> the module on the shortcut path when the shape changes
ShortcutFactory = Callable[[int, int, int], nn.Module]


def conv3x3(in_chs: int, out_chs: int, stride: int = 1) -> nn.Conv2d:
    """3x3 'same' convolution without bias (the BN that follows has its own shift)."""
    return nn.Conv2d(in_chs, out_chs, 3, stride, padding=1, bias=False)


def conv1x1(in_chs: int, out_chs: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_chs, out_chs, 1, stride, bias=False)


def projection_bn(in_chs: int, out_chs: int, stride: int) -> nn.Sequential:
    """Shortcut option B of the ResNet paper: 1x1 conv + BN (torchvision's ``downsample``)."""
    return nn.Sequential(conv1x1(in_chs, out_chs, stride), nn.BatchNorm2d(out_chs))


class BasicBlock(nn.Module):
    """Two 3x3 convs with a shortcut: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).

    torchvision reuses one ``relu`` module three times; here each activation is its own
    module (``act1``, ``act2``) so ``act="prelu"`` learns separate per-channel slopes.
    ReLU holds no weights, so state_dicts still match torchvision's.
    """

    expansion = 1

    def __init__(
        self,
        in_chs: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        act: str = "relu",
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_chs, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = make_act(act, planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.act2 = make_act(act, planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + shortcut)

    def zero_init_last(self) -> None:
        # the residual branch starts at 0, so the block starts as an identity (Goyal et al. 2017)
        nn.init.zeros_(self.bn2.weight)


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 -> 1x1 expand (x4), with a shortcut.

    The stride sits on the 3x3 conv ("ResNet v1.5", as torchvision and most reference
    implementations do; slightly more accurate, ~5% more MACs). ``stride_in_1x1=True``
    puts it on the first 1x1 conv as in the paper (and its Caffe release), which gives
    the paper's 3.8 GFLOPs for ResNet-50.
    """

    expansion = 4

    def __init__(
        self,
        in_chs: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        act: str = "relu",
        stride_in_1x1: bool = False,
    ) -> None:
        super().__init__()
        out_chs = planes * self.expansion
        self.conv1 = conv1x1(in_chs, planes, stride if stride_in_1x1 else 1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = make_act(act, planes)
        self.conv2 = conv3x3(planes, planes, 1 if stride_in_1x1 else stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = make_act(act, planes)
        self.conv3 = conv1x1(planes, out_chs)
        self.bn3 = nn.BatchNorm2d(out_chs)
        self.downsample = downsample
        self.act3 = make_act(act, out_chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.act2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.act3(out + shortcut)

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn3.weight)


class PreActBasicBlock(nn.Module):
    """Pre-activation basic block: conv2(relu(bn2(conv1(relu(bn1(x)))))) + shortcut.

    Nothing follows the addition. When the shape changes, the shortcut takes the
    normalised input (as in the authors' code), so the projection sees BN-ReLU output.
    """

    expansion = 1

    def __init__(
        self,
        in_chs: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        act: str = "relu",
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_chs)
        self.act1 = make_act(act, in_chs)
        self.conv1 = conv3x3(in_chs, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = make_act(act, planes)
        self.conv2 = conv3x3(planes, planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        preact = self.act1(self.bn1(x))
        shortcut = x if self.downsample is None else self.downsample(preact)
        out = self.conv2(self.act2(self.bn2(self.conv1(preact))))
        return out + shortcut

    def zero_init_last(self) -> None:
        # no BN after the last conv in a pre-activation block: zero the conv itself
        nn.init.zeros_(self.conv2.weight)


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck: BN-ReLU-conv1x1, BN-ReLU-conv3x3, BN-ReLU-conv1x1 (x4).

    ``stride_in_1x1`` as in :class:`Bottleneck`; the authors' CIFAR code
    (KaimingHe/resnet-1k-layers) strides the first 1x1 conv.
    """

    expansion = 4

    def __init__(
        self,
        in_chs: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        act: str = "relu",
        stride_in_1x1: bool = False,
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_chs)
        self.act1 = make_act(act, in_chs)
        self.conv1 = conv1x1(in_chs, planes, stride if stride_in_1x1 else 1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = make_act(act, planes)
        self.conv2 = conv3x3(planes, planes, 1 if stride_in_1x1 else stride)
        self.bn3 = nn.BatchNorm2d(planes)
        self.act3 = make_act(act, planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        preact = self.act1(self.bn1(x))
        shortcut = x if self.downsample is None else self.downsample(preact)
        out = self.conv1(preact)
        out = self.conv2(self.act2(self.bn2(out)))
        out = self.conv3(self.act3(self.bn3(out)))
        return out + shortcut

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv3.weight)


BOTTLENECKS = (Bottleneck, PreActBottleneck)


def make_stage(
    block: type[nn.Module],
    in_chs: int,
    planes: int,
    num_blocks: int,
    stride: int,
    shortcut: ShortcutFactory,
    **block_kwargs: Any,
) -> nn.Sequential:
    """One stage (torchvision's ``layerN``): the first block may stride and widen, and only
    it gets a shortcut module; the others keep the shape and use the identity."""
    out_chs = planes * block.expansion
    downsample = shortcut(in_chs, out_chs, stride) if stride != 1 or in_chs != out_chs else None
    blocks = [block(in_chs, planes, stride, downsample, **block_kwargs)]
    blocks += [block(out_chs, planes, 1, None, **block_kwargs) for _ in range(num_blocks - 1)]
    return nn.Sequential(*blocks)


def block_options(block: type[nn.Module], act: str, stride_in_1x1: bool) -> dict[str, Any]:
    """Keyword arguments for ``block``; ``stride_in_1x1`` only means something for bottlenecks."""
    if block not in BOTTLENECKS:
        if stride_in_1x1:
            raise CnnkitError(
                "stride_in_1x1 applies to bottleneck ResNets only. Drop it, or use a 50/101/152-layer model."
            )
        return {"act": act}
    return {"act": act, "stride_in_1x1": stride_in_1x1}


def init_resnet_weights(model: nn.Module, zero_init_residual: bool) -> None:
    """He-normal convs (fan_out, as torchvision), BN as identity; optionally each block's
    residual branch starts at zero, so the whole net starts as a shallow one."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if zero_init_residual:
        for m in model.modules():
            if hasattr(m, "zero_init_last"):
                m.zero_init_last()


class ResNetBase(ClassifierNet):
    """What every ResNet of the zoo shares: stages named ``layer1``.. and an
    ``avgpool`` + ``flatten`` + ``fc`` head (adaptive pooling: any input size works)."""

    classifier_path = "fc"

    def add_stages(
        self,
        block: type[nn.Module],
        in_chs: int,
        widths: tuple[int, ...],
        layers: tuple[int, ...],
        strides: tuple[int, ...],
        shortcut: ShortcutFactory,
        **block_kwargs: Any,
    ) -> int:
        """Append one stage per entry of ``widths``; returns the output channels."""
        for i, (planes, n, stride) in enumerate(zip(widths, layers, strides, strict=True)):
            self.add_module(
                f"layer{i + 1}", make_stage(block, in_chs, planes, n, stride, shortcut, **block_kwargs)
            )
            in_chs = planes * block.expansion
        return in_chs

    def add_head(self, num_features: int, num_classes: int) -> None:
        self.num_features = num_features
        self.num_classes = num_classes
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(num_features, num_classes)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.flatten(self.avgpool(x))
        return x if pre_logits else self.fc(x)


IMAGENET_WIDTHS = (64, 128, 256, 512)
IMAGENET_STRIDES = (1, 2, 2, 2)


class ResNet(ResNetBase):
    """ResNet v1 for ImageNet (paper Table 1): 7x7/2 conv, 3x3/2 max-pool, four stages
    of 64-128-256-512 planes (the last three stride 2), global average pool, fc."""

    def __init__(
        self,
        block: type[nn.Module],
        layers: tuple[int, int, int, int],
        num_classes: int = 1000,
        in_chans: int = 3,
        act: str = "relu",
        zero_init_residual: bool = False,
        stride_in_1x1: bool = False,
    ) -> None:
        super().__init__()
        opts = block_options(block, act, stride_in_1x1)
        self.conv1 = nn.Conv2d(in_chans, 64, 7, 2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = make_act(act, 64)
        self.maxpool = nn.MaxPool2d(3, 2, padding=1)
        chs = self.add_stages(block, 64, IMAGENET_WIDTHS, layers, IMAGENET_STRIDES, projection_bn, **opts)
        self.add_head(chs, num_classes)
        init_resnet_weights(self, zero_init_residual)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class PreActResNet(ResNetBase):
    """Pre-activation ResNet v2 for ImageNet: the v1 layout with BN-ReLU-conv blocks.

    The stem is a bare 7x7/2 conv and the max-pool (the first block's BN-ReLU normalises
    it), the stages end with ``final_bn`` + ``final_act``, which ``forward_features``
    includes, and projection shortcuts are bare 1x1 convs. Same layout as timm's
    ``resnetv2_50``.
    """

    def __init__(
        self,
        block: type[nn.Module],
        layers: tuple[int, int, int, int],
        num_classes: int = 1000,
        in_chans: int = 3,
        act: str = "relu",
        zero_init_residual: bool = False,
        stride_in_1x1: bool = False,
    ) -> None:
        super().__init__()
        opts = block_options(block, act, stride_in_1x1)
        self.conv1 = nn.Conv2d(in_chans, 64, 7, 2, padding=3, bias=False)
        self.maxpool = nn.MaxPool2d(3, 2, padding=1)
        # pre-activation projection shortcut: a bare 1x1 conv on the already normalised input
        chs = self.add_stages(block, 64, IMAGENET_WIDTHS, layers, IMAGENET_STRIDES, conv1x1, **opts)
        self.final_bn = nn.BatchNorm2d(chs)
        self.final_act = make_act(act, chs)
        self.add_head(chs, num_classes)
        init_resnet_weights(self, zero_init_residual)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.final_act(self.final_bn(x))


IMAGENET_V1: dict[str, Any] = dict(
    family="resnet", input_size=(3, 224, 224), paper=RESNET_PAPER, year=2015, ref_source=TORCHVISION
)


@register_model(**IMAGENET_V1, ref_params=11_689_512, ref_macs=1.81e9)
def resnet18(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-18: basic blocks [2, 2, 2, 2]."""
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(**IMAGENET_V1, ref_params=21_797_672, ref_macs=3.66e9)
def resnet34(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-34: basic blocks [3, 4, 6, 3]."""
    return ResNet(BasicBlock, (3, 4, 6, 3), num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(**IMAGENET_V1, ref_params=25_557_032, ref_macs=4.09e9)
def resnet50(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-50 (v1.5 stride placement; ``stride_in_1x1=True`` for the paper's): bottlenecks [3, 4, 6, 3]."""
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(**IMAGENET_V1, ref_params=44_549_160, ref_macs=7.80e9)
def resnet101(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-101: bottlenecks [3, 4, 23, 3]."""
    return ResNet(Bottleneck, (3, 4, 23, 3), num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(**IMAGENET_V1, ref_params=60_192_808, ref_macs=11.51e9)
def resnet152(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-152: bottlenecks [3, 8, 36, 3]."""
    return ResNet(Bottleneck, (3, 8, 36, 3), num_classes=num_classes, in_chans=in_chans, **kwargs)


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


def _v2(ref_params: int, v1: str, v1_params: int, how: str) -> Any:
    return register_model(
        family="resnet",
        input_size=(3, 224, 224),
        paper=PREACT_PAPER,
        year=2016,
        ref_params=ref_params,
        ref_source=_V2_SOURCE.format(v1=v1, v1p=v1_params, how=how),
    )


@_v2(11_687_720, "resnet18", 11_689_512, _BASIC_DIFF)
def preact_resnet18(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> PreActResNet:
    """Pre-activation ResNet-18: basic blocks [2, 2, 2, 2]."""
    return PreActResNet(PreActBasicBlock, (2, 2, 2, 2), num_classes=num_classes, in_chans=in_chans, **kwargs)


@_v2(21_795_880, "resnet34", 21_797_672, _BASIC_DIFF)
def preact_resnet34(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> PreActResNet:
    """Pre-activation ResNet-34: basic blocks [3, 4, 6, 3]."""
    return PreActResNet(PreActBasicBlock, (3, 4, 6, 3), num_classes=num_classes, in_chans=in_chans, **kwargs)


@_v2(25_549_352, "resnet50", 25_557_032, _BOTTLENECK_DIFF + "; timm's resnetv2_50 model card: 25.5 M")
def preact_resnet50(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> PreActResNet:
    """Pre-activation ResNet-50: bottlenecks [3, 4, 6, 3]."""
    return PreActResNet(PreActBottleneck, (3, 4, 6, 3), num_classes=num_classes, in_chans=in_chans, **kwargs)


@_v2(44_541_480, "resnet101", 44_549_160, _BOTTLENECK_DIFF)
def preact_resnet101(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> PreActResNet:
    """Pre-activation ResNet-101: bottlenecks [3, 4, 23, 3]."""
    return PreActResNet(PreActBottleneck, (3, 4, 23, 3), num_classes=num_classes, in_chans=in_chans, **kwargs)


@_v2(60_185_128, "resnet152", 60_192_808, _BOTTLENECK_DIFF)
def preact_resnet152(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> PreActResNet:
    """Pre-activation ResNet-152: bottlenecks [3, 8, 36, 3]."""
    return PreActResNet(PreActBottleneck, (3, 8, 36, 3), num_classes=num_classes, in_chans=in_chans, **kwargs)
