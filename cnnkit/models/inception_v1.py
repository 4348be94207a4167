"""GoogLeNet / Inception v1 (Szegedy et al. 2014, "Going deeper with convolutions", CVPR 2015).

Three networks:

* ``googlenet`` - the batch-norm GoogLeNet torchvision ships, with torchvision's module
  names so its state_dict loads as is: 6,624,904 parameters (1000 classes, no aux heads),
  1.50 G MACs at 224x224.
* ``googlenet_paper`` - Table 1 of the paper: conv biases, ReLU, LRN, no BN, real 5x5
  convolutions: 6,998,552 parameters. Table 1's "6.8M" counts weights only, in units of
  1024 (inception 3a: 163,328 weights = "159K"): 6,990,272 weights = 6,826K, + 8,280 biases.
* ``mini_googlenet`` - MiniGoogLeNet for 32x32 CIFAR from Rosebrock's "Deep Learning for
  Computer Vision with Python" (seed 003): 1,652,826 parameters with 10 classes.

Auxiliary-head contract (the training engine relies on it). GoogLeNet trains with two
auxiliary classifiers, on the outputs of inception 4a and 4d, whose losses are added with
weight 0.3 (paper, section 5) and which are dropped at inference. A model built with
``aux_logits=True`` has the attribute ``aux_weight`` (0.3) and:

* ``forward(x)`` returns ``(logits, [aux1_logits, aux2_logits])`` ONLY when
  ``self.training and self.aux_logits``; in eval mode it returns the logits tensor alone;
* ``forward_features`` / ``forward_head`` never involve the aux heads;
* ``reset_classifier(n)`` replaces the final layers of the aux heads too.

The training loss is then ``CE(logits) + aux_weight * (CE(aux1) + CE(aux2))``.
With ``aux_logits=False`` (the default, and what the registry counts) the heads are not built.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cnnkit.errors import CnnkitError
from cnnkit.models.layers import BasicConv2d, ClassifierNet, LocalResponseNorm
from cnnkit.models.layers.inception import Branches
from cnnkit.models.registry import register_model

PAPER = "Szegedy et al., Going deeper with convolutions"
_SZEGEDY = dict(family="inception", input_size=(3, 224, 224), paper=PAPER, year=2014)

# (in, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj) of Table 1, module by module.
INCEPTION_CFG: dict[str, tuple[int, int, int, int, int, int, int]] = {
    "inception3a": (192, 64, 96, 128, 16, 32, 32),
    "inception3b": (256, 128, 128, 192, 32, 96, 64),
    "inception4a": (480, 192, 96, 208, 16, 48, 64),
    "inception4b": (512, 160, 112, 224, 24, 64, 64),
    "inception4c": (512, 128, 128, 256, 24, 64, 64),
    "inception4d": (512, 112, 144, 288, 32, 64, 64),
    "inception4e": (528, 256, 160, 320, 32, 128, 128),
    "inception5a": (832, 256, 160, 320, 32, 128, 128),
    "inception5b": (832, 384, 192, 384, 48, 128, 128),
}


class ConvReLU(nn.Module):
    """Conv2d (with bias) -> ReLU: the unit of the 2014 network, which predates batch norm."""

    def __init__(self, in_channels: int, out_channels: int, **conv_kwargs: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, **conv_kwargs)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x))


class Inception(Branches):
    """The Inception module (paper, Figure 2b): four parallel branches concatenated.

    1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | 3x3 max-pool -> 1x1. ``branch3_kernel`` is 5 in the
    paper; torchvision's GoogLeNet uses 3 there (a known bug kept for its weights).
    """

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
        conv_block: type[nn.Module] = BasicConv2d,
        branch3_kernel: int = 5,
    ) -> None:
        super().__init__()
        self.branch1 = conv_block(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            conv_block(in_channels, ch3x3red, kernel_size=1),
            conv_block(ch3x3red, ch3x3, kernel_size=3, padding=1),
        )
        self.branch3 = nn.Sequential(
            conv_block(in_channels, ch5x5red, kernel_size=1),
            conv_block(ch5x5red, ch5x5, kernel_size=branch3_kernel, padding=branch3_kernel // 2),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            conv_block(in_channels, pool_proj, kernel_size=1),
        )


class InceptionAux(nn.Module):
    """Auxiliary classifier (paper, section 5): pool to 4x4, 1x1 conv 128, FC 1024, dropout 0.7, FC.

    The paper pools 5x5/3 (14x14 -> 4x4 at 224x224 input); torchvision pools adaptively to 4x4.
    """

    def __init__(
        self, in_channels: int, num_classes: int, conv_block: type[nn.Module], pool: nn.Module
    ) -> None:
        super().__init__()
        self.pool = pool
        self.conv = conv_block(in_channels, 128, kernel_size=1)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(0.7)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(x)
        if x.shape[-2:] != (4, 4):
            raise CnnkitError(
                f"the auxiliary heads need a 4x4 map after pooling, got {tuple(x.shape[-2:])}. "
                "Train at 224x224 or build the model with aux_logits=False."
            )
        x = self.dropout(self.relu(self.fc1(self.flatten(self.conv(x)))))
        return self.fc2(x)

    def reset_classifier(self, num_classes: int) -> None:
        self.fc2 = nn.Linear(self.fc2.in_features, num_classes)


class _GoogLeNetBase(ClassifierNet):
    """Shared trunk walk, head and aux-head plumbing of ``googlenet`` and ``googlenet_paper``."""

    head_path = ("avgpool", "flatten", "dropout")
    aux_weight = 0.3  # paper, section 5: "their loss gets added ... with a discount weight (0.3)"
    _stages: tuple[str, ...] = ()
    _aux_taps = ("inception4a", "inception4d")
    aux1: InceptionAux | None
    aux2: InceptionAux | None

    def _build_inceptions(self, conv_block: type[nn.Module], branch3_kernel: int, last_pool: int) -> None:
        # registered in the order they run, as torchvision does
        for name in INCEPTION_CFG:
            if name == "inception4a":
                self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            elif name == "inception5a":
                self.maxpool4 = nn.MaxPool2d(last_pool, stride=2, ceil_mode=True)
            setattr(self, name, Inception(*INCEPTION_CFG[name], conv_block, branch3_kernel))

    def _run_trunk(self, x: torch.Tensor, collect_aux: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        taps: list[torch.Tensor] = []
        for name in self._stages:
            x = getattr(self, name)(x)
            if collect_aux and name in self._aux_taps:
                taps.append(x)
        return x, taps

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._run_trunk(x, collect_aux=False)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        with_aux = self.training and self.aux_logits
        features, taps = self._run_trunk(x, collect_aux=with_aux)
        logits = self.forward_head(features)
        if with_aux:
            assert self.aux1 is not None and self.aux2 is not None
            return logits, [self.aux1(taps[0]), self.aux2(taps[1])]
        return logits

    def reset_classifier(self, num_classes: int) -> None:
        super().reset_classifier(num_classes)
        for aux in (self.aux1, self.aux2):
            if aux is not None:
                aux.reset_classifier(num_classes)


@register_model(
    name="googlenet",
    ref_params=6_624_904,
    ref_source="torchvision docs (GoogLeNet_Weights.IMAGENET1K_V1, aux heads dropped); 13,004,888 with them",
    ref_macs=1.50e9,
    **_SZEGEDY,
)
class GoogLeNet(_GoogLeNetBase):
    """torchvision's batch-norm GoogLeNet (torchvision/models/googlenet.py), same state_dict keys.

    It departs from the paper in three ways, all kept so torchvision's ImageNet weights load:
    every conv is conv-BN-ReLU without bias (BN eps 1e-3) and there is no LRN; the "5x5"
    branch uses a 3x3 kernel (torchvision's own comment calls it a known bug); the last
    max-pool is 2x2/2 instead of 3x3/2, and the aux heads pool adaptively to 4x4. Head
    dropout is 0.2 (paper: 0.4). ``transform_input=True`` converts inputs normalised with
    ImageNet mean/std into the (x - 0.5) / 0.5 scaling torchvision's weights were trained on.
    """

    _stages = (
        "conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3",
        "inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4",
        "inception5a", "inception5b",
    )  # fmt: skip

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        aux_logits: bool = False,
        transform_input: bool = False,
        drop_rate: float = 0.2,
    ) -> None:
        super().__init__()
        if transform_input and in_chans != 3:
            raise CnnkitError(
                f"transform_input needs 3 input channels, got {in_chans}. Drop transform_input."
            )
        self.num_classes, self.num_features = num_classes, 1024
        self.aux_logits, self.transform_input = aux_logits, transform_input
        self.conv1 = BasicConv2d(in_chans, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self._build_inceptions(BasicConv2d, branch3_kernel=3, last_pool=2)
        self.aux1 = self.aux2 = None
        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes, BasicConv2d, nn.AdaptiveAvgPool2d((4, 4)))
            self.aux2 = InceptionAux(528, num_classes, BasicConv2d, nn.AdaptiveAvgPool2d((4, 4)))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(drop_rate)
        self.fc = nn.Linear(1024, num_classes)
        for m in self.modules():  # torchvision's init
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _run_trunk(self, x: torch.Tensor, collect_aux: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if self.transform_input:  # ImageNet mean/std normalisation -> (x - 0.5) / 0.5, per channel
            mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
            x = torch.cat([x[:, c : c + 1] * (std[c] / 0.5) + (mean[c] - 0.5) / 0.5 for c in range(3)], 1)
        return super()._run_trunk(x, collect_aux)


@register_model(
    name="googlenet_paper",
    ref_params=6_998_552,
    ref_source=(
        "computed by hand from Table 1 (real 5x5 convs, conv biases, no BN): convs 5,973,552 + fc "
        "1,025,000; the paper says about 6.8M; aux heads add 3,188,840 + 3,190,888"
    ),
    **_SZEGEDY,
)
class GoogLeNetPaper(_GoogLeNetBase):
    """GoogLeNet exactly as Table 1 / Figure 3 of the paper: no batch norm, conv biases, LRN.

    conv 7x7/2 64 -> max-pool 3x3/2 -> LRN -> conv 1x1 64 -> conv 3x3 192 -> LRN ->
    max-pool 3x3/2 -> 3a, 3b -> max-pool -> 4a..4e -> max-pool -> 5a, 5b -> 7x7 average
    pool -> dropout 0.4 -> linear. Max-pools round up (Caffe, as the original model), so
    224 -> 112 -> 56 -> 28 -> 14 -> 7. The paper gives no LRN constants; we use those of
    the reference Caffe model (BVLC GoogLeNet: n=5, alpha=1e-4 divided by n, beta=0.75, k=1).
    Weights are initialised like that model: Xavier, biases 0.2. The average pool is
    adaptive so other input sizes work; at 224x224 it is the paper's 7x7/1 pool.
    """

    _stages = (
        "conv1", "maxpool1", "lrn1", "conv2", "conv3", "lrn2", "maxpool2", "inception3a", "inception3b",
        "maxpool3", "inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4",
        "inception5a", "inception5b",
    )  # fmt: skip

    def __init__(
        self, num_classes: int = 1000, in_chans: int = 3, aux_logits: bool = False, drop_rate: float = 0.4
    ) -> None:
        super().__init__()
        self.num_classes, self.num_features, self.aux_logits = num_classes, 1024, aux_logits
        self.conv1 = ConvReLU(in_chans, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.lrn1 = LocalResponseNorm(size=5, alpha=1e-4 / 5, beta=0.75, k=1.0)
        self.conv2 = ConvReLU(64, 64, kernel_size=1)
        self.conv3 = ConvReLU(64, 192, kernel_size=3, padding=1)
        self.lrn2 = LocalResponseNorm(size=5, alpha=1e-4 / 5, beta=0.75, k=1.0)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self._build_inceptions(ConvReLU, branch3_kernel=5, last_pool=3)
        self.aux1 = self.aux2 = None
        if aux_logits:  # "average pooling layer with 5x5 filter size and stride 3"
            self.aux1 = InceptionAux(512, num_classes, ConvReLU, nn.AvgPool2d(5, stride=3))
            self.aux2 = InceptionAux(528, num_classes, ConvReLU, nn.AvgPool2d(5, stride=3))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(drop_rate)
        self.fc = nn.Linear(1024, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.constant_(m.bias, 0.2)


class MiniInception(Branches):
    """MiniGoogLeNet's ``inception_module``: a 1x1 and a 3x3 conv module, concatenated."""

    def __init__(self, in_channels: int, ch1x1: int, ch3x3: int) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, bias=True, kernel_size=1)
        self.branch2 = BasicConv2d(in_channels, ch3x3, bias=True, kernel_size=3, padding=1)


class MiniDownsample(Branches):
    """MiniGoogLeNet's ``downsample_module``: a 'valid' 3x3/2 conv module next to a 3x3/2 max-pool."""

    def __init__(self, in_channels: int, out_conv: int) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, out_conv, bias=True, kernel_size=3, stride=2)
        self.branch2 = nn.MaxPool2d(3, stride=2)


@register_model(
    name="mini_googlenet",
    family="inception",
    input_size=(3, 32, 32),
    num_classes=10,
    paper="Rosebrock, Deep Learning for Computer Vision with Python (MiniGoogLeNet)",
    year=2017,
    ref_params=1_652_826,
    ref_source=(
        "computed from the book's Keras code (seed 003 only names it): convs with bias + BN gamma/beta "
        "+ dense 3,370; Keras' total 1,656,250 also counts 3,424 BN moving statistics"
    ),
)
class MiniGoogLeNet(ClassifierNet):
    """MiniGoogLeNet (Rosebrock, DL4CV Practitioner Bundle; seed 003 names it "mini_GoogLeNet").

    Built from Zhang et al.'s "Understanding deep learning requires rethinking
    generalization" Inception-small: conv 3x3 96 -> inception(32,32), (32,48) ->
    downsample(80) -> inception(112,48), (96,64), (80,80), (48,96) -> downsample(96) ->
    inception(176,160), (176,160) -> 7x7 average pool -> dropout 0.5 -> dense.
    32x32 -> 15x15 -> 7x7. A "conv module" is conv (with bias, Keras' default) -> BN
    (eps 1e-3, Keras' default) -> ReLU. 1,652,826 parameters with 10 classes; Keras'
    summary shows 1,656,250 in total because it also counts the 2 x 1,712 = 3,424 BN
    moving means/variances as (non-trainable) parameters, which PyTorch keeps as buffers.
    """

    head_path = ("avgpool", "flatten", "dropout")

    def __init__(self, num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.5) -> None:
        super().__init__()
        self.num_classes, self.num_features = num_classes, 336
        self.conv1 = BasicConv2d(in_chans, 96, bias=True, kernel_size=3, padding=1)
        self.stage1 = nn.Sequential(MiniInception(96, 32, 32), MiniInception(64, 32, 48))
        self.down1 = MiniDownsample(80, 80)
        self.stage2 = nn.Sequential(
            MiniInception(160, 112, 48),
            MiniInception(160, 96, 64),
            MiniInception(160, 80, 80),
            MiniInception(160, 48, 96),
        )
        self.down2 = MiniDownsample(144, 96)
        self.stage3 = nn.Sequential(MiniInception(240, 176, 160), MiniInception(336, 176, 160))
        self.avgpool = nn.AdaptiveAvgPool2d(1)  # the book's 7x7 pool, for any input size
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(drop_rate)
        self.fc = nn.Linear(336, num_classes)
        for m in self.modules():  # Keras defaults: Glorot-uniform kernels, zero biases
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage1(self.conv1(x))
        x = self.stage2(self.down1(x))
        return self.stage3(self.down2(x))
