"""Inception v3 (Szegedy, Vanhoucke, Ioffe, Shlens, Wojna 2015, "Rethinking the Inception
Architecture for Computer Vision", CVPR 2016).

What v3 changes over GoogLeNet (paper sections in brackets):

* Factorised convolutions [3]: a 5x5 becomes two 3x3 (``InceptionA``), an nxn becomes a
  1xn followed by an nx1 (n=7 in ``InceptionC`` on the 17x17 grid, n=3 side by side in
  ``InceptionE`` on the 8x8 grid) - the same receptive field for fewer weights.
* Grid reduction without a representational bottleneck [5]: ``InceptionB`` / ``InceptionD``
  concatenate a stride-2 conv branch with a stride-2 max-pool branch.
* One auxiliary classifier on the 17x17 grid [4], used as a regulariser (BN in its convs).
* Label-smoothing regularisation [7]: nothing in the model - train with
  ``--label-smoothing 0.1`` (torch ``CrossEntropyLoss(label_smoothing=0.1)``); 0.1 is the
  paper's epsilon for its 1000 classes.

Module names, channel widths and BatchNorm eps (0.001) are torchvision's
(``torchvision/models/inception.py``), so its state_dict keys line up. Without the aux head
the network has 23,834,568 parameters (torchvision), 27,161,264 with it; it costs 5.71 G
MACs at 299x299. Keras' ``InceptionV3`` reports 23,851,784: the same convolutions, but its
BatchNormalization layers have no scale (``scale=False``, so one parameter fewer per
channel) and Keras counts the moving mean and variance as (non-trainable) weights (two
more per channel). The net difference is one per BN channel, and the trunk has 17,216 BN
channels: 23,834,568 + 17,216 = 23,851,784 (Keras: 23,817,352 trainable + 34,432
non-trainable). ``tests/test_zoo_inception.py`` recounts the BN channels.

Inputs must be at least 75x75 (the stem and the two grid reductions take 75 down to 1); the
paper's size is 299x299, where the grids are 35x35 (Mixed_5*), 17x17 (Mixed_6*), 8x8 (Mixed_7*).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnkit.models.layers import BasicConv2d, ClassifierNet
from cnnkit.models.layers.inception import check_input_size
from cnnkit.models.registry import register_model


class InceptionA(nn.Module):
    """35x35 module: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1 (Mixed_5b/5c/5d).

    torchvision keeps the 5x5 branch of the TF-slim release; the paper's Figure 5 would
    factorise it into two 3x3s as the third branch already does.
    """

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.pool = nn.AvgPool2d(3, stride=1, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(self.pool(x))
        return torch.cat([b1, b5, b3, bp], 1)


class InceptionB(nn.Module):
    """35x35 -> 17x17 grid reduction (Mixed_6a): 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2 (paper Fig. 10)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)
        self.pool = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3(x)
        b3d = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([b3, b3d, self.pool(x)], 1)


class InceptionC(nn.Module):
    """17x17 module with 7x7 convs factorised into 1x7 + 7x1 (Mixed_6b..6e, paper Fig. 6).

    ``channels_7x7`` is the width inside the factorised branches: 128, 160, 160, 192.
    """

    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.pool = nn.AvgPool2d(3, stride=1, padding=1)
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        b7d = self.branch7x7dbl_1(x)
        for conv in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            b7d = conv(b7d)
        bp = self.branch_pool(self.pool(x))
        return torch.cat([b1, b7, b7d, bp], 1)


class InceptionD(nn.Module):
    """17x17 -> 8x8 grid reduction (Mixed_7a): 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool/2."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)
        self.pool = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_1(x)
        for conv in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = conv(b7)
        return torch.cat([b3, b7, self.pool(x)], 1)


class InceptionE(nn.Module):
    """8x8 module with expanded filter banks: 3x3s split into 1x3 and 3x1 side by side
    (Mixed_7b/7c, paper Fig. 7), widening the representation at the coarsest grid."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.pool = nn.AvgPool2d(3, stride=1, padding=1)
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        b3d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        b3d = torch.cat([self.branch3x3dbl_3a(b3d), self.branch3x3dbl_3b(b3d)], 1)
        bp = self.branch_pool(self.pool(x))
        return torch.cat([b1, b3, b3d, bp], 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier on the 17x17 grid (paper section 4 and Fig. 8):
    avgpool 5x5/3 -> 1x1 conv 128 -> 5x5 conv 768 -> fc."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(5, stride=3)
        self.conv0 = BasicConv2d(in_channels, 128, kernel_size=1)
        self.conv1 = BasicConv2d(128, 768, kernel_size=5)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # At 299x299 the grid is 17x17 and the 5x5/3 pool gives exactly 5x5 for the 5x5
        # conv. Smaller inputs (e.g. training at 224, a 12x12 grid) would leave too little
        # for that conv - torchvision fails there - so they are pooled adaptively to 5x5.
        x = self.pool(x) if min(x.shape[-2:]) >= 17 else F.adaptive_avg_pool2d(x, 5)
        x = self.conv1(self.conv0(x))
        return self.fc(self.flatten(self.avgpool(x)))


@register_model(
    name="inception_v3",
    input_size=(3, 299, 299),
    paper="Szegedy et al., Rethinking the Inception Architecture for Computer Vision",
    year=2015,
    ref_params=23_834_568,
    ref_source=(
        "torchvision inception_v3 without the aux head (27,161,264 with it); "
        "Keras InceptionV3 23,851,784 counts BN moving stats, see module docstring"
    ),
    ref_macs=5.71e9,
)
class Inception3(ClassifierNet):
    """Inception v3 with torchvision's module names; ``aux_logits=True`` adds the 17x17 head.

    Training contract of the aux head: only when ``self.training and self.aux_logits`` does
    ``forward`` return ``(logits, [aux_logits])``; the trainer adds ``aux_weight`` times the
    aux loss. ``aux_weight=0.3`` is GoogLeNet's weight for its aux losses (Szegedy et al.
    2014, section 5); the v3 paper gives none. In eval mode ``forward`` returns logits.
    """

    head_path = ("avgpool", "flatten", "dropout")

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        aux_logits: bool = False,
        aux_weight: float = 0.3,
        drop_rate: float = 0.5,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_features = 2048
        self.aux_logits = aux_logits
        self.aux_weight = aux_weight
        # Stem (paper Table 1): 299 -> 149 -> 147 -> 147 -> 73 -> 73 -> 71 -> 35
        self.Conv2d_1a_3x3 = BasicConv2d(in_chans, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.maxpool1 = nn.MaxPool2d(3, stride=2)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.maxpool2 = nn.MaxPool2d(3, stride=2)
        self.Mixed_5b = InceptionA(192, pool_features=32)  # -> 256
        self.Mixed_5c = InceptionA(256, pool_features=64)  # -> 288
        self.Mixed_5d = InceptionA(288, pool_features=64)  # -> 288
        self.Mixed_6a = InceptionB(288)  # -> 768 at 17x17
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.AuxLogits = InceptionAux(768, num_classes) if aux_logits else None
        self.Mixed_7a = InceptionD(768)  # -> 1280 at 8x8
        self.Mixed_7b = InceptionE(1280)  # -> 2048
        self.Mixed_7c = InceptionE(2048)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(drop_rate)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(self.num_features, num_classes)

    def _to_17x17(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(x)
        x = self.maxpool1(self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x))))
        x = self.maxpool2(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)))
        x = self.Mixed_6a(self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x))))
        return self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(x))))

    def _to_8x8(self, x: torch.Tensor) -> torch.Tensor:
        return self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._to_8x8(self._to_17x17(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        x = self._to_17x17(x)
        use_aux = self.training and self.aux_logits and self.AuxLogits is not None
        aux = self.AuxLogits(x) if use_aux else None
        logits = self.forward_head(self._to_8x8(x))
        return (logits, [aux]) if aux is not None else logits

    def reset_classifier(self, num_classes: int) -> None:
        """New final layer, and a new aux head fc so both losses see the same classes."""
        super().reset_classifier(num_classes)
        if self.AuxLogits is not None:
            self.AuxLogits.fc = nn.Linear(self.AuxLogits.fc.in_features, num_classes)
