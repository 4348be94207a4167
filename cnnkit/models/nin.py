"""Network in Network (Lin, Chen, Yan 2013, "Network In Network", ICLR 2014), CIFAR-10 form.

Three "mlpconv" blocks - a spatial convolution followed by two 1x1 convolutions (the
"micro network", a small MLP slid over the image) - and no dense layer: the last 1x1
convolution outputs one map per class and global average pooling turns each map into
that class's score. The layer sizes are the authors' released CIFAR-10 model
(cuda-convnet/Caffe ``cifar10_nin``): 192-160-96, 192-192-192, 192-192-classes, max-pool
then average-pool 3x3/2 with dropout 0.5 between blocks, 966,986 parameters.

Pooling rounds up (``ceil_mode``) as cuda-convnet and Caffe do, so 32 -> 16 -> 8; the
released model also applies a ReLU to the class maps before averaging (``final_relu``).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cnnkit.models.layers import ClassifierNet, make_act
from cnnkit.models.registry import register_model


def mlpconv(in_chs: int, widths: tuple[int, int, int], kernel_size: int, act: str) -> list[nn.Module]:
    """conv kxk -> act -> conv 1x1 -> act -> conv 1x1 -> act (the paper's mlpconv layer)."""
    w1, w2, w3 = widths
    return [
        nn.Conv2d(in_chs, w1, kernel_size, padding=kernel_size // 2),
        make_act(act, w1),
        nn.Conv2d(w1, w2, 1),
        make_act(act, w2),
        nn.Conv2d(w2, w3, 1),
        make_act(act, w3),
    ]


@register_model(
    name="nin",
    input_size=(3, 32, 32),
    num_classes=10,
    paper="Lin, Chen, Yan, Network In Network",
    year=2013,
    ref_params=966_986,
    ref_source="computed by hand from the authors' released CIFAR-10 model (mavenlin cuda-convnet NIN / "
    "Caffe cifar10_nin): convs 14,592 + 30,880 + 15,456 + 460,992 + 37,056 + 37,056 + 331,968 + 37,056 "
    "+ 1,930; the paper gives no count",
)
class NIN(ClassifierNet):
    """NIN for 32x32 images (any size >= 8 runs: global average pooling has no fixed size).

    ``forward_features`` ends before the last 1x1 convolution (``classifier``), so
    ``pre_logits`` is the global average of the 192 maps that enter it.
    """

    classifier_path = "classifier"

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 3,
        act: str = "relu",
        drop_rate: float = 0.5,
        final_relu: bool = True,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_features = 192
        self.features = nn.Sequential(
            *mlpconv(in_chans, (192, 160, 96), 5, act),
            nn.MaxPool2d(3, stride=2, ceil_mode=True),
            nn.Dropout(drop_rate),
            *mlpconv(96, (192, 192, 192), 5, act),
            nn.AvgPool2d(3, stride=2, ceil_mode=True),
            nn.Dropout(drop_rate),
            nn.Conv2d(192, 192, 3, padding=1),
            make_act(act, 192),
            nn.Conv2d(192, 192, 1),
            make_act(act, 192),
        )
        self.classifier = nn.Conv2d(192, num_classes, 1)
        self.final_act = make_act(act, num_classes) if final_relu else nn.Identity()
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                # the released model hand-tunes a Gaussian scale per layer; He init needs no
                # per-layer tuning and keeps activations at unit scale through the ReLUs.
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits:
            return self.flatten(self.global_pool(x))
        return self.flatten(self.global_pool(self.final_act(self.classifier(x))))

    def reset_classifier(self, num_classes: int) -> None:
        super().reset_classifier(num_classes)
        if isinstance(self.final_act, nn.PReLU) and self.final_act.num_parameters > 1:
            self.final_act = nn.PReLU(num_classes)
