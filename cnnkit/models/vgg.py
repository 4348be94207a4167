"""VGG (Simonyan and Zisserman 2014, "Very Deep Convolutional Networks for Large-Scale
Image Recognition", ICLR 2015), configurations A-E of the paper's Table 1.

``vgg11`` (A), ``vgg11_lrn`` (A-LRN), ``vgg13`` (B), ``vgg16`` (D), ``vgg19`` (E) and the
batch-normalised ``*_bn`` variants (not in the paper; torchvision's) use torchvision's
module names (``features.N``, ``avgpool``, ``classifier.0/3/6``), so torchvision state_dicts
load unchanged, and its adaptive 7x7 average pooling, so any input of at least 32x32 runs.

``keras_vgg16`` is the seed's Keras VGG16 (``build_VGG_16`` in seed 004) built layer by
layer - ZeroPadding2D + 'valid' 3x3 conv, ..., Flatten, Dense 4096-4096-classes - so its
summary shows the same rows as the Keras model; its flatten head depends on the input size.
"""

from __future__ import annotations

import torch.nn as nn

from cnnkit.models.layers import ClassifierNet, LocalResponseNorm, make_act
from cnnkit.models.layers.classifier import FC6_FC7, SizedNet, check_min_size, dense_head
from cnnkit.models.layers.init import init_like_torchvision
from cnnkit.models.registry import Variant, register_model, register_variants

# Table 1 of the paper: filters per 3x3 conv, "M" = 2x2/2 max-pool, "LRN" = local response norm.
CONFIGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "A-LRN": [64, "LRN", "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        512,
        "M",
    ],
}

_PAPER = "Simonyan & Zisserman, Very Deep Convolutional Networks for Large-Scale Image Recognition"
_TV = "torchvision models/vgg.py weight meta"


def make_features(config: list[int | str], in_chans: int, batch_norm: bool, act: str) -> nn.Sequential:
    """The convolutional trunk: 3x3 'same' convs [+ BN] + activation, 2x2/2 max-pools."""
    layers: list[nn.Module] = []
    channels = in_chans
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        elif item == "LRN":
            layers.append(LocalResponseNorm())
        else:
            layers.append(nn.Conv2d(channels, int(item), kernel_size=3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(int(item)))
            layers.append(make_act(act, int(item)))
            channels = int(item)
    return nn.Sequential(*layers)


class VGG(ClassifierNet):
    """VGG trunk + adaptive 7x7 average pool + three dense layers (torchvision layout)."""

    classifier_path = "classifier.6"
    head_path = ("avgpool", "flatten", *FC6_FC7)

    def __init__(
        self,
        config: list[int | str],
        num_classes: int = 1000,
        in_chans: int = 3,
        batch_norm: bool = False,
        act: str = "relu",
        drop_rate: float = 0.5,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_features = 4096
        self.features = make_features(config, in_chans, batch_norm, act)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.flatten = nn.Flatten()
        self.classifier = dense_head(512 * 7 * 7, num_classes, act, drop_rate)
        init_like_torchvision(self)


def _variant(config: str, batch_norm: bool, params: int, macs: float, source: str = _TV) -> Variant:
    doc = f"VGG configuration {config} of Table 1" + (", batch norm after every conv." if batch_norm else ".")
    return Variant((CONFIGS[config],), params, doc, macs, source, (("batch_norm", batch_norm),))


_LRN_SOURCE = (
    "same count as vgg11 (torchvision meta): LRN has no parameters; paper Table 2 gives 133 M for A and A-LRN"
)
globals().update(
    register_variants(
        VGG,
        {
            "vgg11": _variant("A", False, 132_863_336, 7.61e9),
            "vgg11_lrn": _variant("A-LRN", False, 132_863_336, 7.61e9, _LRN_SOURCE),
            "vgg13": _variant("B", False, 133_047_848, 11.31e9),
            "vgg16": _variant("D", False, 138_357_544, 15.47e9, _TV + " (Keras VGG16 with top: 138,357,544)"),
            "vgg19": _variant("E", False, 143_667_240, 19.63e9, _TV + " (Keras VGG19 with top: 143,667,240)"),
            "vgg11_bn": _variant("A", True, 132_868_840, 7.61e9),
            "vgg13_bn": _variant("B", True, 133_053_736, 11.31e9),
            "vgg16_bn": _variant("D", True, 138_365_992, 15.47e9),
            "vgg19_bn": _variant("E", True, 143_678_248, 19.63e9),
        },
        input_size=(3, 224, 224),
        paper=_PAPER,
        year=2014,
    )
)


@register_model(
    name="keras_vgg16",
    input_size=(3, 224, 224),
    paper=_PAPER,
    year=2014,
    ref_params=138_357_544,
    ref_macs=15.47e9,
    ref_source="Keras VGG16 with top (138,357,544), the same layers as the seed's build_VGG_16 at 224x224x3",
)
class KerasVGG16(SizedNet):
    """The seed's Keras ``build_VGG_16``, row for row: ZeroPadding2D((1,1)) before every
    'valid' 3x3 conv, 2x2/2 max-pools, Flatten, Dense 4096 + Dropout 0.5, Dense 4096 +
    Dropout 0.5, Dense classes.

    The first dense layer sees ``512 * (H // 32) * (W // 32)`` features (Keras pools floor),
    so the model is built for one ``input_size``; at 224x224 with 1000 classes it has the
    same 138,357,544 parameters as ``vgg16``.
    """

    classifier_path = "classifier.6"
    head_path = ("flatten", *FC6_FC7)

    def build(self, act: str = "relu", drop_rate: float = 0.5) -> None:
        check_min_size("keras_vgg16", self.input_size, 32, " (five 2x2 pools)")
        self.num_features = 4096
        layers: list[nn.Module] = []
        channels = self.in_chans
        for item in CONFIGS["D"]:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.ZeroPad2d(1), nn.Conv2d(channels, int(item), 3), make_act(act, int(item))]
                channels = int(item)
        self.features = nn.Sequential(*layers)
        self.flatten = nn.Flatten()
        h, w = (s // 32 for s in self.input_size)
        # Keras order: Dense, Dropout, Dense, Dropout, Dense (activations fused in Keras, rows here)
        self.classifier = dense_head(512 * h * w, self.num_classes, act, drop_rate)
        init_like_torchvision(self)
