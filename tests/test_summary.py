"""The summary's arithmetic, checked against hand-computed numbers (the seeds' formulas)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

import cnnkit
from cnnkit.models.layers import ClassifierNet
from cnnkit.summary import summary


class TwoConv(ClassifierNet):
    """A net small enough to count by hand, with a container and a shared layer."""

    classifier_path = "fc"

    def __init__(self) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.shared = nn.Conv2d(8, 8, 1, bias=False)  # called twice
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(8, 5)
        self.num_classes, self.num_features = 5, 8

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.shared(self.shared(self.block(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.flatten(self.pool(x))
        return x if pre_logits else self.fc(x)


def test_params_and_macs_by_hand() -> None:
    s = summary(TwoConv(), (3, 16, 16))
    conv_params = 8 * 3 * 3 * 3 + 8  # K*F*F*D_in + K
    bn_params = 2 * 8
    assert s.total_params == conv_params + bn_params + 64 + (8 * 5 + 5)
    assert s.trainable_params == s.total_params  # BN running stats are buffers, not parameters
    conv_macs = 16 * 16 * 8 * (3 * 3 * 3)
    shared_macs = 16 * 16 * 8 * 8
    assert s.total_macs == conv_macs + 2 * shared_macs + 8 * 5
    # the shared layer appears twice, its parameters once
    shared_rows = [r for r in s.rows if r.name == "shared"]
    assert [r.params for r in shared_rows] == [64, 0]
    assert sum(r.params for r in s.rows) == s.total_params
    assert s.rows[0].output_shape == (None, 8, 16, 16)


def test_depth_folds_containers_without_double_counting() -> None:
    leaves = summary(TwoConv(), (3, 16, 16))
    folded = summary(TwoConv(), (3, 16, 16), depth=1)
    assert [r.name for r in folded.rows][0] == "block"
    assert folded.total_macs == leaves.total_macs
    assert sum(r.macs for r in folded.rows) == leaves.total_macs
    assert sum(r.params for r in folded.rows) == leaves.total_params


def test_frozen_layers_are_non_trainable() -> None:
    model = TwoConv()
    for p in model.block.parameters():
        p.requires_grad_(False)
    s = summary(model, (3, 16, 16))
    assert s.non_trainable_params == 8 * 27 + 8 + 16
    assert "Non-trainable params: 240" in str(s)


@pytest.mark.parametrize(
    ("h", "f", "s", "padding", "expected"),
    [(200, 2, 2, "valid", 100), (128, 3, 2, "same", 64), (32, 5, 1, "valid", 28)],
)
def test_output_size_formulas_of_the_seed(h: int, f: int, s: int, padding: str, expected: int) -> None:
    # 'same' -> ceil(H/S); 'valid' -> ceil((H-F+1)/S), as the seed notes teach
    formula = math.ceil(h / s) if padding == "same" else math.ceil((h - f + 1) / s)
    assert formula == expected
    pad = (f - 1) // 2 if padding == "same" else 0
    conv = nn.Conv2d(1, 16, f, s, padding=pad)
    assert conv(torch.zeros(1, 1, h, h)).shape[-1] == expected


def test_too_small_input_is_a_clear_error() -> None:
    model = cnnkit.create_model("lenet5")
    with pytest.raises(cnnkit.CnnkitError, match="cannot take input 1x8x8"):
        summary(model, (1, 8, 8))
