"""GoogLeNet family part 1: torchvision-compatible GoogLeNet, the 2014 paper's GoogLeNet,
BN-Inception and MiniGoogLeNet (tests/test_zoo.py already checks counts and shapes)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import need

import cnnkit
from cnnkit.data.sources import read_cifar_batch
from cnnkit.errors import CnnkitError
from cnnkit.models.layers import LocalResponseNorm
from cnnkit.summary import count_params, summary

# Key names (and shapes) of torchvision's googlenet state_dict, torchvision/models/googlenet.py.
TORCHVISION_KEYS = {
    "conv1.conv.weight": (64, 3, 7, 7),
    "conv1.bn.weight": (64,),
    "conv1.bn.running_var": (64,),
    "conv1.bn.num_batches_tracked": (),
    "conv2.conv.weight": (64, 64, 1, 1),
    "conv3.conv.weight": (192, 64, 3, 3),
    "conv3.bn.bias": (192,),
    "inception3a.branch1.conv.weight": (64, 192, 1, 1),
    "inception3a.branch2.0.conv.weight": (96, 192, 1, 1),
    "inception3a.branch2.1.conv.weight": (128, 96, 3, 3),
    "inception3a.branch2.1.bn.running_mean": (128,),
    "inception3a.branch3.0.conv.weight": (16, 192, 1, 1),
    "inception3a.branch3.1.conv.weight": (32, 16, 3, 3),  # torchvision's 3x3 in the "5x5" branch
    "inception3a.branch4.1.conv.weight": (32, 192, 1, 1),
    "inception4e.branch3.1.bn.weight": (128,),
    "inception5b.branch1.conv.weight": (384, 832, 1, 1),
    "inception5b.branch4.1.bn.num_batches_tracked": (),
    "aux1.conv.conv.weight": (128, 512, 1, 1),
    "aux1.conv.bn.running_var": (128,),
    "aux1.fc1.weight": (1024, 2048),
    "aux2.conv.conv.weight": (128, 528, 1, 1),
    "aux2.fc2.weight": (1000, 1024),
    "aux2.fc2.bias": (1000,),
    "fc.weight": (1000, 1024),
    "fc.bias": (1000,),
}
# 3 stem + 9 modules x 6 BasicConv2d, 6 tensors each (conv weight, BN weight/bias/mean/var/count),
# + fc weight/bias = 344; each aux head adds a BasicConv2d (6) + fc1, fc2 (4).
TORCHVISION_NUM_KEYS = (3 + 9 * 6) * 6 + 2
TORCHVISION_NUM_KEYS_AUX = TORCHVISION_NUM_KEYS + 2 * (6 + 4)


def test_googlenet_params_and_macs_match_torchvision() -> None:
    model = cnnkit.create_model("googlenet")
    assert count_params(model) == 6_624_904
    assert count_params(cnnkit.create_model("googlenet", aux_logits=True)) == 13_004_888
    macs = summary(model).total_macs
    assert abs(macs - 1.50e9) / 1.50e9 < 0.01, macs


def test_googlenet_state_dict_keys_are_torchvision_s() -> None:
    plain = cnnkit.create_model("googlenet").state_dict()
    state = cnnkit.create_model("googlenet", aux_logits=True).state_dict()
    for key, shape in TORCHVISION_KEYS.items():
        assert key in state, key
        assert tuple(state[key].shape) == shape, key
    assert len(plain) == TORCHVISION_NUM_KEYS == 344
    assert len(state) == TORCHVISION_NUM_KEYS_AUX == 364
    assert not any(k.startswith("aux") for k in plain)


@pytest.mark.parametrize("name", ["googlenet", "googlenet_paper"])
def test_aux_heads_only_in_training(name: str) -> None:
    torch.manual_seed(0)
    model = cnnkit.create_model(name, num_classes=10, aux_logits=True)
    assert model.aux_weight == 0.3
    x = torch.randn(2, 3, 224, 224)
    model.train()
    logits, aux = model(x)
    assert logits.shape == (2, 10)
    assert isinstance(aux, list) and [a.shape for a in aux] == [(2, 10), (2, 10)]
    # the aux losses alone reach the trunk (they tap it at 4a and 4d) and not the main head
    sum(F.cross_entropy(a, torch.tensor([1, 2])) for a in aux).backward()
    assert model.conv1.conv.weight.grad.abs().sum() > 0 and model.inception4e.branch1.conv.weight.grad is None
    assert model.fc.weight.grad is None
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 10)
    model.reset_classifier(4)
    assert model.fc.out_features == model.aux1.fc2.out_features == model.aux2.fc2.out_features == 4


def test_paper_aux_heads_reject_a_size_they_cannot_pool() -> None:
    model = cnnkit.create_model("googlenet_paper", num_classes=10, aux_logits=True).train()
    with pytest.raises(CnnkitError, match="aux_logits=False"):
        model(torch.randn(2, 3, 160, 160))


def test_googlenet_paper_follows_table_1() -> None:
    model = cnnkit.create_model("googlenet_paper")
    rows = {r.name: r for r in summary(model, depth=1).rows}
    assert rows["inception3a"].output_shape == (None, 256, 28, 28)
    assert rows["inception3b"].output_shape == (None, 480, 28, 28)
    assert rows["inception4e"].output_shape == (None, 832, 14, 14)
    assert rows["inception5b"].output_shape == (None, 1024, 7, 7)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 3 + 9 * 6 and all(c.bias is not None for c in convs)
    assert sum(isinstance(m, LocalResponseNorm) for m in model.modules()) == 2
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert model.inception3a.branch3[1].conv.kernel_size == (5, 5)  # real 5x5, unlike torchvision's
    assert model.dropout.p == 0.4


def test_bn_inception_reduction_modules() -> None:
    model = cnnkit.create_model("bn_inception")
    rows = {r.name: r for r in summary(model, depth=1).rows}
    assert rows["inception3c"].output_shape == (None, 576, 14, 14)  # 160 + 96 + 320 passed through
    assert rows["inception4e"].output_shape == (None, 1056, 7, 7)  # 192 + 256 + 608 passed through
    assert rows["inception5b"].output_shape == (None, 1024, 7, 7)
    assert model.inception3a.branch3[2].conv.kernel_size == (3, 3)  # 5x5 -> two 3x3
    assert count_params(cnnkit.create_model("bn_inception", conv_bias=False)) == 11_285_224


def _cifar_images(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    batch = read_cifar_batch(need("datasets", "cifar-10-batches-py", "data_batch_1"))
    x = torch.tensor(batch[b"data"][:n], dtype=torch.float32).reshape(n, 3, 32, 32) / 255.0
    x = (x - x.mean((0, 2, 3), keepdim=True)) / x.std((0, 2, 3), keepdim=True)
    return x, torch.tensor(batch[b"labels"][:n])


def _train_mini_googlenet(x: torch.Tensor, y: torch.Tensor, steps: int, batch_size: int = 32) -> list[float]:
    torch.manual_seed(0)
    model = cnnkit.create_model("mini_googlenet").train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    per_epoch = len(x) // batch_size
    losses = []
    for step in range(steps):
        if step % per_epoch == 0:
            order = torch.randperm(len(x))
        idx = order[(step % per_epoch) * batch_size : (step % per_epoch + 1) * batch_size]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = losses[:per_epoch], losses[-per_epoch:]
    return [sum(first) / per_epoch, sum(last) / per_epoch]


def test_mini_googlenet_fits_real_cifar10() -> None:
    # 128 real CIFAR-10 images, average-pooled to 16x16, in batches of 16 so 40 steps cost an
    # eighth of the full-size run below (the net takes any size: 16 -> 7 -> 3 before its pool).
    x, y = _cifar_images(256)
    first_epoch, last_epoch = _train_mini_googlenet(
        F.avg_pool2d(x[:128], 2), y[:128], steps=40, batch_size=16
    )
    assert first_epoch > 2.0  # starts near chance, ln(10) = 2.30
    assert last_epoch < 0.65 * first_epoch, (first_epoch, last_epoch)


@pytest.mark.slow
def test_mini_googlenet_fits_real_cifar10_at_32x32() -> None:
    x, y = _cifar_images(256)
    first_epoch, last_epoch = _train_mini_googlenet(x, y, steps=64)
    assert last_epoch < 0.5 * first_epoch, (first_epoch, last_epoch)
