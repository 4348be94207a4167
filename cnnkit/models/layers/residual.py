"""Residual blocks shared by the ImageNet ResNets (``resnet.py``) and the CIFAR ResNets
(``cifar_resnet.py``): v1 basic / bottleneck blocks (He et al. 2015), their pre-activation
v2 forms (He et al. 2016), stage building, torchvision's initialisation and the base class
with the stem / stages / head split. Module names are torchvision's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn

from cnnkit.errors import CnnkitError
from cnnkit.models.layers.activations import make_act
from cnnkit.models.layers.classifier import ClassifierNet

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
