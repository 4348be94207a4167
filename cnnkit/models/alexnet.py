"""AlexNet (Krizhevsky, Sutskever, Hinton 2012, "ImageNet Classification with Deep
Convolutional Neural Networks", NIPS).

Two forms:

* ``alexnet`` - torchvision's single-tower variant (64-192-384-256-256 filters, no LRN,
  adaptive 6x6 average pooling before the classifier), with torchvision's module names
  (``features.N``, ``classifier.N``) so its state_dicts load unchanged. 61,100,840
  parameters, 0.714 G MACs at 224x224.
* ``alexnet_paper`` - the network of the paper: 96-256-384-384-256 filters, ReLU, local
  response normalisation after conv1 and conv2, overlapping 3x3/2 max pooling, dropout 0.5
  in fc6 and fc7. The paper says 224x224 inputs, but 11x11 stride-4 filters only give the
  55x55 maps of its Figure 2 from 227x227 (a well-known typo), so 227 is the default.
  ``two_tower=True`` splits conv2, conv4 and conv5 into two groups as the two GPUs did
  (conv3 and the dense layers connect across both towers).
"""

from __future__ import annotations

import torch.nn as nn

from cnnkit.models.layers import ClassifierNet, LocalResponseNorm, make_act
from cnnkit.models.layers.classifier import FC6_FC7, SizedNet, check_min_size, dense_head
from cnnkit.models.registry import register_model

_PAPER = "Krizhevsky et al., ImageNet Classification with Deep Convolutional Neural Networks"
_KRIZHEVSKY = dict(paper=_PAPER, year=2012)


@register_model(
    name="alexnet",
    input_size=(3, 224, 224),
    ref_params=61_100_840,
    ref_macs=0.714e9,
    ref_source="torchvision models/alexnet.py weight meta (61,100,840 params, 0.714 GFLOPS = MACs)",
    **_KRIZHEVSKY,
)
class AlexNet(ClassifierNet):
    """torchvision's single-tower AlexNet (no LRN, adaptive 6x6 pooling): any input of at
    least 63x63."""

    classifier_path = "classifier.6"
    head_path = ("avgpool", "flatten", *FC6_FC7)

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, act: str = "relu", drop_rate: float = 0.5):
        super().__init__()
        self.num_classes = num_classes
        self.num_features = 4096
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 64, kernel_size=11, stride=4, padding=2),
            make_act(act, 64),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            make_act(act, 192),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            make_act(act, 384),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            make_act(act, 256),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            make_act(act, 256),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.flatten = nn.Flatten()
        self.classifier = dense_head(256 * 6 * 6, num_classes, act, drop_rate, drop_first=True)


@register_model(
    name="alexnet_paper",
    input_size=(3, 227, 227),
    ref_params=62_378_344,
    ref_source="the paper says '60 million'; exact per-layer sum (k*k*c_in/groups + 1)*c_out: conv 34,944 + "
    "614,656 + 885,120 + 1,327,488 + 884,992, fc 37,752,832 + 16,781,312 + 4,097,000 = 62,378,344 "
    "(the single-tower AlexNet count in HewlettPackard dlcookbook-dlbs model tables); two_tower=True gives "
    "60,965,224, the count of the BVLC Caffe AlexNet (group: 2)",
    **_KRIZHEVSKY,
)
class AlexNetPaper(SizedNet):
    """AlexNet as in the paper (section 3 and Figure 2), with an optional two-tower split.

    Layer order per the paper: conv -> ReLU -> LRN -> max-pool for conv1 and conv2 ("response
    normalization layers follow the first and second convolutional layers; max-pooling layers
    follow both response-normalization layers as well as the fifth convolutional layer").
    Initialisation as in section 5: weights N(0, 0.01); biases 1 in conv2, conv4, conv5 and
    the hidden dense layers, 0 elsewhere.
    """

    classifier_path = "classifier.6"
    head_path = ("flatten", *FC6_FC7)

    def build(self, two_tower: bool = False, act: str = "relu", drop_rate: float = 0.5) -> None:
        self.num_features = 4096
        groups = 2 if two_tower else 1
        self.features = nn.Sequential(
            nn.Conv2d(self.in_chans, 96, kernel_size=11, stride=4),  # 0: conv1
            make_act(act, 96),
            LocalResponseNorm(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(96, 256, kernel_size=5, padding=2, groups=groups),  # 4: conv2
            make_act(act, 256),
            LocalResponseNorm(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(256, 384, kernel_size=3, padding=1),  # 8: conv3, across towers
            make_act(act, 384),
            nn.Conv2d(384, 384, kernel_size=3, padding=1, groups=groups),  # 10: conv4
            make_act(act, 384),
            nn.Conv2d(384, 256, kernel_size=3, padding=1, groups=groups),  # 12: conv5
            make_act(act, 256),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        check_min_size("alexnet_paper", self.input_size, 67, "; use 227x227 as in the paper")
        h, w = (_paper_trunk_size(s) for s in self.input_size)
        self.flatten = nn.Flatten()
        # fc6-fc8
        self.classifier = dense_head(256 * h * w, self.num_classes, act, drop_rate, drop_first=True)
        ones = {
            self.features[4],
            self.features[10],
            self.features[12],
            self.classifier[1],
            self.classifier[4],
        }
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.constant_(m.bias, 1.0 if m in ones else 0.0)


def _paper_trunk_size(size: int) -> int:
    """Side of the last feature map: conv1 11/4 valid, then three 3x3/2 pools (227 -> 6)."""
    side = (size - 11) // 4 + 1
    for _ in range(3):
        side = (side - 3) // 2 + 1
    return side
