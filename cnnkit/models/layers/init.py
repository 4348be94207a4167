"""torchvision's weight initialisation, shared by VGG, MobileNetV2 and the ResNets."""

from __future__ import annotations

import torch.nn as nn


def init_like_torchvision(model: nn.Module, linear_std: float | None = 0.01) -> None:
    """He-normal convs (fan_out, He et al. 2015) with zero biases, BatchNorm as the identity
    (weight 1, bias 0) and, unless ``linear_std`` is None, Linear layers N(0, linear_std)
    with zero biases - what torchvision's VGG, MobileNetV2 and ResNet constructors do."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0.0, linear_std)
            nn.init.zeros_(m.bias)
