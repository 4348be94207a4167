"""LeNet-5 (LeCun, Bottou, Bengio, Haffner 1998, "Gradient-Based Learning Applied to
Document Recognition", Proc. IEEE 86(11)).

``lenet5`` is the modern form most courses teach (ReLU, max-pooling, dense 120-84-10,
'valid' convolutions as in the seed's Keras code): 44,426 parameters at 28x28x1 and
61,706 at 32x32x1 - the difference is the first dense layer, whose input is
16*4*4 = 256 at 28x28 and 16*5*5 = 400 at 32x32.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cnnkit.models.layers import ClassifierNet, make_act
from cnnkit.models.registry import register_model


class LeNet5(ClassifierNet):
    """Modern LeNet-5: conv(6,5x5) -> pool -> conv(16,5x5) -> pool -> 120 -> 84 -> classes.

    The first dense layer's width is inferred from ``input_size`` so any input of at
    least 12x12 works ('valid' 5x5 convolutions and two 2x2 pools).
    """

    classifier_path = "fc3"

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 1,
        input_size: tuple[int, int] = (28, 28),
        act: str = "relu",
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.conv1 = nn.Conv2d(in_chans, 6, 5)
        self.act1 = make_act(act, 6)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.act2 = make_act(act, 16)
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        # two 'valid' 5x5 convs (-4 each) and two 2x2 pools (//2 each)
        h, w = (((s - 4) // 2 - 4) // 2 for s in input_size)
        self.fc1 = nn.Linear(16 * h * w, 120)
        self.act3 = make_act(act, 120)
        self.fc2 = nn.Linear(120, 84)
        self.act4 = make_act(act, 84)
        self.num_features = 84
        self.fc3 = nn.Linear(84, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.act1(self.conv1(x)))
        return self.pool2(self.act2(self.conv2(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.act4(self.fc2(self.act3(self.fc1(self.flatten(x)))))
        return x if pre_logits else self.fc3(x)


@register_model(
    family="lenet",
    input_size=(1, 28, 28),
    num_classes=10,
    paper="LeCun et al., Gradient-Based Learning Applied to Document Recognition",
    year=1998,
    ref_params=44_426,
    ref_source="seed Keras code, by hand: 156 + 2,416 + 30,840 + 10,164 + 850",
)
def lenet5(num_classes: int = 10, in_chans: int = 1, input_size: tuple[int, int] = (28, 28), **kwargs) -> LeNet5:
    """Modern LeNet-5 at 28x28 (pass ``input_size=(32, 32)`` for the paper's input size)."""
    return LeNet5(num_classes=num_classes, in_chans=in_chans, input_size=input_size, **kwargs)
