"""``small_cnn``: the "2 conv layers, < 100K parameters" row of Fashion-MNIST's benchmark.

The zalandoresearch/fashion-mnist README lists user-submitted small CNNs rather than a paper
(0.925 for "2 Conv <100K parameters", 0.935 for "2 Conv+2 FC+BN+dropout"), so this is the
plainest network of that class: two (conv 3x3 'same' -> BatchNorm -> ReLU -> max-pool 2x2)
blocks of 32 and 64 filters, dropout 0.25, flatten, one dense layer. 50,378 parameters at
28x28x1 - a flatten head, so it is built for one ``input_size``. BatchNorm is what lifts
it past LeNet-5 (44k parameters, ~0.90 on Fashion-MNIST) at about the same size.
"""

from __future__ import annotations

import torch.nn as nn

from cnnkit.models.layers import SizedNet, check_min_size, make_act
from cnnkit.models.registry import register_model


@register_model(
    name="small_cnn",
    input_size=(1, 28, 28),
    num_classes=10,
    year=2017,
    paper="Xiao, Rasul, Vollgraf, Fashion-MNIST benchmark table ('2 Conv <100K parameters')",
    ref_params=50_378,
    ref_source="computed by hand at 28x28x1: conv 1*9*32 + 32 = 320, BN 64, conv 32*9*64 + 64 = 18,496, "
    "BN 128, dense 64*7*7*10 + 10 = 31,370",
)
class SmallCNN(SizedNet):
    """(conv 3x3 -> BN -> act -> pool) for 32 then 64 filters, dropout, flatten, dense."""

    head_path = ("dropout", "flatten")

    def build(self, act: str = "relu", drop_rate: float = 0.25) -> None:
        check_min_size("small_cnn", self.input_size, 4, " (two 2x2 pools)")
        layers: list[nn.Module] = []
        for cin, cout in ((self.in_chans, 32), (32, 64)):
            layers += [
                nn.Conv2d(cin, cout, 3, padding=1),
                nn.BatchNorm2d(cout),
                make_act(act, cout),
                nn.MaxPool2d(2),
            ]
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(drop_rate)
        self.flatten = nn.Flatten()
        h, w = (s // 4 for s in self.input_size)
        self.num_features = 64 * h * w
        self.fc = nn.Linear(self.num_features, self.num_classes)
