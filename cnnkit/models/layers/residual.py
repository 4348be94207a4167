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
from cnnkit.models.layers.init import init_like_torchvision

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


def _branch_convs(block: nn.Module, in_chs: int, planes: int, stride: int, stride_in_1x1: bool) -> list:
    """The convolutions of a residual branch, first to last: two 3x3 (basic blocks), or
    1x1 reduce -> 3x3 -> 1x1 expand (bottlenecks, ``expansion`` 4)."""
    if block.expansion == 1:
        return [conv3x3(in_chs, planes, stride), conv3x3(planes, planes)]
    first, middle = (stride, 1) if stride_in_1x1 else (1, stride)
    return [
        conv1x1(in_chs, planes, first),
        conv3x3(planes, planes, middle),
        conv1x1(planes, planes * block.expansion),
    ]


class ResidualBlock(nn.Module):
    """ResNet v1 block (He et al. 2015): ``act(branch(x) + shortcut(x))``, the branch being
    conv-BN-act units with no activation after the last BN.

    Children ``conv1``/``bn1``/``act1`` .. and ``downsample`` (the shortcut module when
    the shape changes), named as torchvision names them so its state_dicts load.
    torchvision reuses one ``relu`` module; here each activation is its own module so
    ``act="prelu"`` learns separate per-channel slopes (ReLU holds no weights, so the
    state_dicts still match). ``stride_in_1x1`` is for bottlenecks only (see
    :class:`Bottleneck`).
    """

    expansion = 1
    preact = False  # True: BN-act-conv units (:class:`PreActBlock`)

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
        convs = _branch_convs(self, in_chs, planes, stride, stride_in_1x1)
        self.depth = len(convs)
        for i, conv in enumerate(convs, 1):
            if self.preact:
                setattr(self, f"bn{i}", nn.BatchNorm2d(conv.in_channels))
                setattr(self, f"act{i}", make_act(act, conv.in_channels))
                setattr(self, f"conv{i}", conv)
                continue
            setattr(self, f"conv{i}", conv)
            setattr(self, f"bn{i}", nn.BatchNorm2d(conv.out_channels))
            if i < self.depth:
                setattr(self, f"act{i}", make_act(act, conv.out_channels))
        self.downsample = downsample
        if not self.preact:
            setattr(self, f"act{self.depth}", make_act(act, planes * self.expansion))

    def _unit(self, i: int) -> tuple[nn.Module, nn.Module, nn.Module]:
        return getattr(self, f"conv{i}"), getattr(self, f"bn{i}"), getattr(self, f"act{i}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = x
        for i in range(1, self.depth):
            conv, bn, act = self._unit(i)
            out = act(bn(conv(out)))
        conv, bn, act = self._unit(self.depth)
        return act(bn(conv(out)) + shortcut)

    def zero_init_last(self) -> None:
        # the residual branch starts at 0, so the block starts as an identity (Goyal et al. 2017)
        nn.init.zeros_(getattr(self, f"bn{self.depth}").weight)


class BasicBlock(ResidualBlock):
    """Two 3x3 convs with a shortcut: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""


class Bottleneck(ResidualBlock):
    """1x1 reduce -> 3x3 -> 1x1 expand (x4), with a shortcut.

    The stride sits on the 3x3 conv ("ResNet v1.5", as torchvision and most reference
    implementations do; slightly more accurate, ~5% more MACs). ``stride_in_1x1=True``
    puts it on the first 1x1 conv as in the paper (and its Caffe release), which gives
    the paper's 3.8 GFLOPs for ResNet-50.
    """

    expansion = 4


class PreActBlock(ResidualBlock):
    """Pre-activation block (He et al. 2016): ``branch(x) + shortcut``, the branch being
    BN-act-conv units (``bn1``/``act1``/``conv1`` ..); nothing follows the addition.

    When the shape changes, the shortcut takes the normalised input (as in the authors'
    code), so the projection sees BN-ReLU output.
    """

    preact = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv, bn, act = self._unit(1)
        preact = act(bn(x))
        shortcut = x if self.downsample is None else self.downsample(preact)
        out = conv(preact)
        for i in range(2, self.depth + 1):
            conv, bn, act = self._unit(i)
            out = conv(act(bn(out)))
        return out + shortcut

    def zero_init_last(self) -> None:
        # no BN after the last conv in a pre-activation block: zero the conv itself
        nn.init.zeros_(getattr(self, f"conv{self.depth}").weight)


class PreActBasicBlock(PreActBlock):
    """Pre-activation basic block: conv2(relu(bn2(conv1(relu(bn1(x)))))) + shortcut."""


class PreActBottleneck(PreActBlock):
    """Pre-activation bottleneck: BN-ReLU-conv1x1, BN-ReLU-conv3x3, BN-ReLU-conv1x1 (x4).

    ``stride_in_1x1`` as in :class:`Bottleneck`; the authors' CIFAR code
    (KaimingHe/resnet-1k-layers) strides the first 1x1 conv.
    """

    expansion = 4


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


def block_options(block: type[nn.Module], stride_in_1x1: bool) -> dict[str, Any]:
    """Keyword arguments for ``block``; ``stride_in_1x1`` only means something for bottlenecks."""
    if block not in BOTTLENECKS:
        if stride_in_1x1:
            raise CnnkitError(
                "stride_in_1x1 applies to bottleneck ResNets only. Drop it, or use a 50/101/152-layer model."
            )
        return {}
    return {"stride_in_1x1": stride_in_1x1}


def init_resnet_weights(model: nn.Module, zero_init_residual: bool) -> None:
    """He-normal convs (fan_out, as torchvision), BN as identity; optionally each block's
    residual branch starts at zero, so the whole net starts as a shallow one."""
    init_like_torchvision(model, linear_std=None)
    if zero_init_residual:
        for m in model.modules():
            if hasattr(m, "zero_init_last"):
                m.zero_init_last()


class ResNetBase(ClassifierNet):
    """What every ResNet of the zoo shares: a stem conv, stages named ``layer1``.. and an
    ``avgpool`` + ``flatten`` + ``fc`` head (adaptive pooling: any input size works).

    The class attributes give the layout: ImageNet's (7x7/2 conv to 64, 3x3/2 max-pool,
    stages of 64-128-256-512 planes) unless a subclass sets CIFAR's. v1 nets
    (:class:`ResidualBlock`) normalise the stem conv (``bn1`` + ``relu``); in
    pre-activation nets (:class:`PreActBlock`) the first block's BN-ReLU does that, and a
    last BN-ReLU (``final_bn`` + ``final_act``, part of ``forward_features``) follows the
    stages, else the classifier would see the sum of un-normalised residuals.
    """

    head_path = ("avgpool", "flatten")
    widths: tuple[int, ...] = (64, 128, 256, 512)
    strides: tuple[int, ...] = (1, 2, 2, 2)
    imagenet_stem = True

    def __init__(
        self,
        block: type[nn.Module],
        layers: tuple[int, ...],
        num_classes: int = 1000,
        in_chans: int = 3,
        act: str = "relu",
        zero_init_residual: bool = False,
        stride_in_1x1: bool = False,
        shortcut: ShortcutFactory | None = None,
    ) -> None:
        super().__init__()
        self.preact = issubclass(block, PreActBlock)
        if self.imagenet_stem:
            self.conv1: nn.Module = nn.Conv2d(in_chans, 64, 7, 2, padding=3, bias=False)
        else:
            self.conv1 = conv3x3(in_chans, self.widths[0])
        chs = self.conv1.out_channels
        if not self.preact:
            self.bn1 = nn.BatchNorm2d(chs)
            self.relu = make_act(act, chs)
        if self.imagenet_stem:
            self.maxpool = nn.MaxPool2d(3, 2, padding=1)
        # the default projection: conv + BN (v1); a bare 1x1 conv on the normalised input (v2)
        shortcut = shortcut or (conv1x1 if self.preact else projection_bn)
        options = dict(block_options(block, stride_in_1x1), act=act)
        for i, (planes, n, stride) in enumerate(zip(self.widths, layers, self.strides, strict=True)):
            self.add_module(f"layer{i + 1}", make_stage(block, chs, planes, n, stride, shortcut, **options))
            chs = planes * block.expansion
        if self.preact:
            self.final_bn = nn.BatchNorm2d(chs)
            self.final_act = make_act(act, chs)
        self.num_features = chs
        self.num_classes = num_classes
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(chs, num_classes)
        init_resnet_weights(self, zero_init_residual)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        if not self.preact:
            x = self.relu(self.bn1(x))
        if self.imagenet_stem:
            x = self.maxpool(x)
        for i in range(1, len(self.widths) + 1):
            x = getattr(self, f"layer{i}")(x)
        return self.final_act(self.final_bn(x)) if self.preact else x
