"""MSRA PReLU nets (He, Zhang, Ren, Sun 2015, "Delving Deep into Rectifiers: Surpassing
Human-Level Performance on ImageNet Classification", ICCV), models A, B and C of Table 3.

Each is a 7x7/2 conv with 96 filters, a 3x3/3 max-pool, three stages of 3x3 convs
(A: 5+5+5 layers of 256-512-512; B: 6+6+6 of 256-512-512; C: 6+6+6 of 384-768-896)
separated by 2x2/2 max-pools, a spatial pyramid pooling layer with {7x7, 3x3, 2x2, 1x1}
bins, and fc 4096-4096-1000 with dropout 0.5 - 19, 22 and 22 weight layers.
Feature maps are 112, 38, 19, 10 at 224x224, as in Table 3: the pools round up.

Activation: channel-wise PReLU (``act="prelu"``, slopes start at 0.25) after every conv and
hidden fc layer; ``act="relu"`` gives the paper's ReLU baselines. Initialisation: the
paper's own (section 2.2), zero-mean Gaussian with std sqrt(2 / n_l), n_l = k^2 c (fan-in).

The SPP layer is :class:`SpatialPyramidPool`, built from adaptive max pooling; its bins
match SPP-net's window/stride rule when the map size is a multiple of the bin count and
differ by at most a pixel at a bin edge otherwise.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cnnkit.models.layers import FC6_FC7, ClassifierNet, dense_head, make_act
from cnnkit.models.registry import Variant, register_variants

_PAPER = "He et al., Delving Deep into Rectifiers: Surpassing Human-Level Performance on ImageNet"

# Table 3: (filters, number of 3x3 conv layers) per stage.
PRELU_CONFIGS: dict[str, tuple[tuple[int, int], ...]] = {
    "A": ((256, 5), (512, 5), (512, 5)),
    "B": ((256, 6), (512, 6), (512, 6)),
    "C": ((384, 6), (768, 6), (896, 6)),
}


class SpatialPyramidPool(nn.Module):
    """SPP (He et al. 2014): max-pool the map into n x n bins for each level n, flatten and
    concatenate, giving C * sum(n^2) features whatever the input size ({7,3,2,1}: 63 C)."""

    def __init__(self, levels: tuple[int, ...] = (7, 3, 2, 1)) -> None:
        super().__init__()
        self.levels = levels
        self.pools = nn.ModuleList(nn.AdaptiveMaxPool2d(n) for n in levels)

    @property
    def bins(self) -> int:
        return sum(n * n for n in self.levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([pool(x).flatten(1) for pool in self.pools], dim=1)

    def macs(self, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
        return 0  # pooling: comparisons only

    def extra_repr(self) -> str:
        return f"levels={self.levels}"


class PReLUNet(ClassifierNet):
    """Table 3 model: conv7x7/2 -> pool3x3/3 -> 3 stages of 3x3 convs -> SPP -> fc x3."""

    classifier_path = "classifier.6"
    head_path = ("spp", *FC6_FC7)

    def __init__(
        self,
        stages: tuple[tuple[int, int], ...],
        num_classes: int = 1000,
        in_chans: int = 3,
        act: str = "prelu",
        drop_rate: float = 0.5,
        spp_levels: tuple[int, ...] = (7, 3, 2, 1),
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_features = 4096
        layers: list[nn.Module] = [
            nn.Conv2d(in_chans, 96, 7, stride=2, padding=3),
            make_act(act, 96),
            nn.MaxPool2d(3, stride=3, ceil_mode=True),
        ]
        chans = 96
        for i, (filters, count) in enumerate(stages):
            if i > 0:
                layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))
            for _ in range(count):
                layers += [nn.Conv2d(chans, filters, 3, padding=1), make_act(act, filters)]
                chans = filters
        self.features = nn.Sequential(*layers)
        self.spp = SpatialPyramidPool(spp_levels)
        self.classifier = dense_head(chans * self.spp.bins, num_classes, act, drop_rate)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                # section 2.2: std = sqrt(2 / n_l), n_l = k*k*c_in, the "forward" case with a = 0
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.classifier[6].weight, 0.0, 0.01)


def _hand_count(stages: tuple[tuple[int, int], ...], prelu: bool = True) -> int:
    """Parameters by formula: (k*k*c_in + 1)*c_out per layer, plus one PReLU slope per channel."""
    total, chans = (7 * 7 * 3 + 1) * 96 + 96 * prelu, 96
    for filters, count in stages:
        for _ in range(count):
            total += (9 * chans + 1) * filters + filters * prelu
            chans = filters
    total += (chans * 63 + 1) * 4096 + (4096 + 1) * 4096 + (4096 + 1) * 1000 + 2 * 4096 * prelu
    return total


_SOURCE_B_C = "computed by formula from Table 3 (the paper gives none), as for prelu_net_a"
globals().update(
    register_variants(
        PReLUNet,
        {
            "prelu_net_a": Variant(
                (PRELU_CONFIGS["A"],),
                _hand_count(PRELU_CONFIGS["A"]),
                "MSRA model A (19 layers): 7x7 conv, 5+5+5 3x3 convs of 256-512-512, SPP, fc x3.",
                ref_source="computed by formula from Table 3 (the paper gives none): convs (k*k*c_in + 1)*c_out, "
                "fc on 63 SPP bins x 512 maps, plus 14,688 channel-wise PReLU slopes",
            ),
            "prelu_net_b": Variant(
                (PRELU_CONFIGS["B"],),
                _hand_count(PRELU_CONFIGS["B"]),
                "MSRA model B (22 layers): 6+6+6 3x3 convs of 256-512-512.",
                ref_source=_SOURCE_B_C,
            ),
            "prelu_net_c": Variant(
                (PRELU_CONFIGS["C"],),
                _hand_count(PRELU_CONFIGS["C"]),
                "MSRA model C (22 layers): 6+6+6 3x3 convs of 384-768-896 (the widest).",
                ref_source=_SOURCE_B_C,
            ),
        },
        input_size=(3, 224, 224),
        paper=_PAPER,
        year=2015,
    )
)
