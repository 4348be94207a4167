"""Teaching nets from the seed documents: small Keras models, rebuilt layer for layer.

* ``shallow_cnn`` - seed 003 (DL4CV book notes) ``shallow_cnn``: conv 32@3x3 'same' -> ReLU
  -> flatten -> dense classes. The simplest CNN there is; 328,586 parameters at 32x32x3.
* ``mini_vgg`` - the DL4CV book's MiniVGGNet: two blocks of (conv 3x3 'same' -> ReLU -> BN)
  x 2 -> max-pool 2x2 -> dropout 0.25, with 32 then 64 filters, then dense 512 -> ReLU -> BN
  -> dropout 0.5 -> dense classes. The seed's ``mini_vgg`` listing shows only the first
  block; the book's network (the one named here) has both. 2,169,770 parameters at
  32x32x3 - Keras reports 2,171,178 because it also counts BN's moving mean and variance
  (1,408 non-trainable numbers), which PyTorch keeps as buffers.
* ``seed_cifar_cnn`` - seed 001's CIFAR-10 CNN: conv 16-32-64 with 2x2 kernels, 'same'
  padding, ReLU and 2x2 max-pooling, flatten, dense 500 -> ReLU, dense 10; 528,054
  parameters at 32x32x3, the number in the seed's printed Keras summary.

Keras 'same' padding with an even kernel pads asymmetrically - 0 before, 1 after - so the
2x2 convs are preceded by ``nn.ZeroPad2d((0, 1, 0, 1))`` and every shape matches Keras.
All three have flatten heads, so each is built for one ``input_size``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cnnkit.models.layers import SizedNet, check_min_size, make_act
from cnnkit.models.registry import register_model

_DL4CV = "Rosebrock, Deep Learning for Computer Vision with Python (seed 003 notes)"
_COMMON = dict(input_size=(3, 32, 32), num_classes=10, year=2017)


@register_model(
    name="shallow_cnn",
    paper=_DL4CV,
    ref_params=328_586,
    ref_source="computed by hand from the seed 003 Keras code at 32x32x3: conv 3*3*3*32 + 32 = 896, "
    "dense 32*32*32*10 + 10 = 327,690",
    **_COMMON,
)
class ShallowCNN(SizedNet):
    """Seed 003's ShallowNet: conv 32@3x3 'same' -> act -> flatten -> dense, so every
    pixel's 32 features feed the classifier."""

    head_path = ("flatten",)

    def build(self, act: str = "relu") -> None:
        self.conv = nn.Conv2d(self.in_chans, 32, 3, padding=1)
        self.act = make_act(act, 32)
        self.flatten = nn.Flatten()
        self.num_features = 32 * self.input_size[0] * self.input_size[1]
        self.fc = nn.Linear(self.num_features, self.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


def _conv_act_bn(in_chs: int, out_chs: int, act: str) -> list[nn.Module]:
    # the book puts BN *after* the activation (seed 003 discusses both placements)
    return [nn.Conv2d(in_chs, out_chs, 3, padding=1), make_act(act, out_chs), nn.BatchNorm2d(out_chs)]


@register_model(
    name="mini_vgg",
    paper=_DL4CV,
    ref_params=2_169_770,
    ref_source="computed by hand at 32x32x3: convs 896 + 9,248 + 18,496 + 36,928, BN gamma/beta 64 + 64 "
    "+ 128 + 128 + 1,024, dense 2,097,664 + 5,130 (Keras: 2,171,178, counting BN moving statistics)",
    **_COMMON,
)
class MiniVGG(SizedNet):
    """MiniVGGNet of the DL4CV book: (conv-act-BN) x2, pool, dropout, for 32 and 64
    filters; dense 512 -> act -> BN -> dropout 0.5 -> classes."""

    classifier_path = "fc2"
    head_path = ("flatten", "fc1", "act", "bn", "dropout")

    def build(self, act: str = "relu") -> None:
        check_min_size("mini_vgg", self.input_size, 4, " (two 2x2 pools)")
        self.features = nn.Sequential(
            *_conv_act_bn(self.in_chans, 32, act),
            *_conv_act_bn(32, 32, act),
            nn.MaxPool2d(2),
            nn.Dropout(0.25),
            *_conv_act_bn(32, 64, act),
            *_conv_act_bn(64, 64, act),
            nn.MaxPool2d(2),
            nn.Dropout(0.25),
        )
        self.flatten = nn.Flatten()
        h, w = (s // 4 for s in self.input_size)
        self.fc1 = nn.Linear(64 * h * w, 512)
        self.act = make_act(act, 512)
        self.bn = nn.BatchNorm1d(512)
        self.dropout = nn.Dropout(0.5)
        self.num_features = 512
        self.fc2 = nn.Linear(512, self.num_classes)


@register_model(
    name="seed_cifar_cnn",
    paper="Keras CIFAR-10 CNN of the seed 001 course notes (no paper; year approximate)",
    ref_params=528_054,
    ref_source="the Keras model.summary() printed in seed 001 (Total params: 528,054)",
    **_COMMON,
)
class SeedCifarCNN(SizedNet):
    """Seed 001's CIFAR-10 CNN, shape for shape its Keras summary: 3 x (Keras-'same' 2x2
    conv -> act -> 2x2 max-pool), dense 500, dense 10."""

    classifier_path = "fc2"
    head_path = ("flatten", "fc1", "act")

    def build(self, act: str = "relu") -> None:
        check_min_size("seed_cifar_cnn", self.input_size, 8, " (three 2x2 pools)")
        layers: list[nn.Module] = []
        chans = self.in_chans
        for filters in (16, 32, 64):
            layers += [
                nn.ZeroPad2d((0, 1, 0, 1)),  # Keras 'same' for a 2x2 kernel: pad right and bottom
                nn.Conv2d(chans, filters, 2),
                make_act(act, filters),
                nn.MaxPool2d(2),
            ]
            chans = filters
        self.features = nn.Sequential(*layers)
        self.flatten = nn.Flatten()
        h, w = (s // 8 for s in self.input_size)
        self.fc1 = nn.Linear(64 * h * w, 500)
        self.act = make_act(act, 500)
        self.num_features = 500
        self.fc2 = nn.Linear(500, self.num_classes)
