"""BN-Inception, a.k.a. Inception v2 (Ioffe & Szegedy 2015, "Batch Normalization:
Accelerating Deep Network Training by Reducing Internal Covariate Shift", ICML; Figure 5).

GoogLeNet with batch norm after every convolution, each 5x5 convolution replaced by two
stacked 3x3 ones (the "double 3x3" branch), average pooling in most modules, and two reduction modules (3c, 4e) that stride by 2 and pass the
max-pooled input straight through instead of a pool projection.

``bn_inception`` has 11,295,240 parameters with 1000 classes - exactly the model released
with the paper's Caffe weights (as converted in Cadene's ``pretrainedmodels.bninception``),
whose convolutions keep a (redundant, BN follows) bias. ``conv_bias=False`` drops them:
11,285,224 parameters (10,016 fewer). 2.03 G MACs at 224x224.

Where that released model and Figure 5 disagree we follow the model: Figure 5 lists every
module 4a-4d as 576 channels wide, yet its own columns for 4c and 4d sum to 608
(160+160+160+128 and 96+192+192+128); the released model is 608 wide there, so 4e outputs
192 + 256 + 608 = 1056 channels.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cnnkit.models.layers import BasicConv2d, ClassifierNet
from cnnkit.models.layers.inception import Branches
from cnnkit.models.registry import register_model

# Figure 5: name -> (#1x1, (#3x3 reduce, #3x3), (double #3x3 reduce, double #3x3), pool, pool proj).
# #1x1 = 0 and proj = 0 mark the stride-2 reduction modules (no 1x1 branch, pool passes through).
BN_INCEPTION_CFG: dict[str, tuple[int, tuple[int, int], tuple[int, int], str, int]] = {
    "inception3a": (64, (64, 64), (64, 96), "avg", 32),
    "inception3b": (64, (64, 96), (64, 96), "avg", 64),
    "inception3c": (0, (128, 160), (64, 96), "max", 0),
    "inception4a": (224, (64, 96), (96, 128), "avg", 128),
    "inception4b": (192, (96, 128), (96, 128), "avg", 128),
    "inception4c": (160, (128, 160), (128, 160), "avg", 128),
    "inception4d": (96, (128, 192), (160, 192), "avg", 128),
    "inception4e": (0, (128, 192), (192, 256), "max", 0),
    "inception5a": (352, (192, 320), (160, 224), "avg", 128),
    "inception5b": (352, (192, 320), (192, 224), "max", 128),
}


class BNInceptionModule(Branches):
    """One module of Figure 5: 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 -> 3x3 | pool (-> 1x1 proj).

    A reduction module (``ch1x1 == 0``) strides the last conv of branches 2 and 3 by 2 and
    concatenates the 3x3/2 max-pooled input itself (pass-through), so it widens the map.
    """

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3: tuple[int, int],
        chd3x3: tuple[int, int],
        pool: str,
        pool_proj: int,
        conv_bias: bool = True,
    ) -> None:
        super().__init__()
        stride = 1 if ch1x1 else 2

        def conv(cin: int, cout: int, kernel_size: int, stride: int = 1) -> BasicConv2d:
            pad = kernel_size // 2
            return BasicConv2d(
                cin, cout, conv_bias, 1e-5, kernel_size=kernel_size, stride=stride, padding=pad
            )

        self.branch1 = conv(in_channels, ch1x1, 1) if ch1x1 else None
        (red, out), (dred, dout) = ch3x3, chd3x3
        self.branch2 = nn.Sequential(conv(in_channels, red, 1), conv(red, out, 3, stride))
        self.branch3 = nn.Sequential(
            conv(in_channels, dred, 1), conv(dred, dout, 3), conv(dout, dout, 3, stride)
        )
        if stride == 2:
            self.branch4: nn.Module = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        else:
            pool_layer = nn.AvgPool2d(3, 1, 1, ceil_mode=True) if pool == "avg" else nn.MaxPool2d(3, 1, 1)
            self.branch4 = nn.Sequential(pool_layer, conv(in_channels, pool_proj, 1))
        self.out_channels = ch1x1 + out + dout + (pool_proj or in_channels)


@register_model(
    name="bn_inception",
    family="inception",
    input_size=(3, 224, 224),
    paper="Ioffe & Szegedy, Batch Normalization: Accelerating Deep Network Training by Reducing "
    "Internal Covariate Shift",
    year=2015,
    ref_params=11_295_240,
    ref_source="Cadene pretrainedmodels bninception (the paper's released Caffe model, conv biases kept)",
)
class BNInception(ClassifierNet):
    """BN-Inception (Figure 5): conv 7x7/2 64 -> max-pool -> conv 1x1 64 -> conv 3x3 192 ->
    max-pool -> 3a, 3b, 3c(/2) -> 4a..4d, 4e(/2) -> 5a, 5b -> global average pool -> linear.

    224 -> 112 -> 56 -> 28 -> 14 -> 7; 1024 features. The paper drops GoogLeNet's dropout
    (section 4.2.1, "Remove Dropout"), so ``drop_rate`` defaults to 0. The auxiliary
    classifiers the paper mentions are not part of the released model and not built here.
    """

    head_path = ("avgpool", "flatten", "dropout")

    def __init__(
        self, num_classes: int = 1000, in_chans: int = 3, conv_bias: bool = True, drop_rate: float = 0.0
    ) -> None:
        super().__init__()
        self.num_classes, self.num_features = num_classes, 1024

        def conv(cin: int, cout: int, **kwargs: int) -> BasicConv2d:
            return BasicConv2d(cin, cout, conv_bias, 1e-5, **kwargs)

        self.conv1 = conv(in_chans, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = conv(64, 64, kernel_size=1)
        self.conv3 = conv(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        channels = 192
        for name, cfg in BN_INCEPTION_CFG.items():
            module = BNInceptionModule(channels, *cfg, conv_bias=conv_bias)
            setattr(self, name, module)
            channels = module.out_channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)  # the paper's 7x7/1 average pool at 224x224
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(drop_rate)
        self.fc = nn.Linear(channels, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        for name in BN_INCEPTION_CFG:
            x = getattr(self, name)(x)
        return x
