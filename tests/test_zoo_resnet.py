"""The ResNet family: MACs against torchvision's published figures, summaries that fold
blocks without double counting, parameter-free option-A shortcuts, torchvision's state_dict
names, pre-activation ordering, and a real training signal on CIFAR-10 images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import need

import cnnkit
from cnnkit.data.sources import read_cifar_batch
from cnnkit.models.cifar_resnet import ZeroPadShortcut
from cnnkit.summary import ModelSummary, count_params

# torchvision.models.resnet18().state_dict().keys(), in order (torchvision is not a dependency)
TORCHVISION_RESNET18_KEYS = """
conv1.weight bn1.weight bn1.bias bn1.running_mean bn1.running_var bn1.num_batches_tracked
layer1.0.conv1.weight layer1.0.bn1.weight layer1.0.bn1.bias layer1.0.bn1.running_mean
layer1.0.bn1.running_var layer1.0.bn1.num_batches_tracked layer1.0.conv2.weight layer1.0.bn2.weight
layer1.0.bn2.bias layer1.0.bn2.running_mean layer1.0.bn2.running_var layer1.0.bn2.num_batches_tracked
layer1.1.conv1.weight layer1.1.bn1.weight layer1.1.bn1.bias layer1.1.bn1.running_mean
layer1.1.bn1.running_var layer1.1.bn1.num_batches_tracked layer1.1.conv2.weight layer1.1.bn2.weight
layer1.1.bn2.bias layer1.1.bn2.running_mean layer1.1.bn2.running_var layer1.1.bn2.num_batches_tracked
layer2.0.conv1.weight layer2.0.bn1.weight layer2.0.bn1.bias layer2.0.bn1.running_mean
layer2.0.bn1.running_var layer2.0.bn1.num_batches_tracked layer2.0.conv2.weight layer2.0.bn2.weight
layer2.0.bn2.bias layer2.0.bn2.running_mean layer2.0.bn2.running_var layer2.0.bn2.num_batches_tracked
layer2.0.downsample.0.weight layer2.0.downsample.1.weight layer2.0.downsample.1.bias
layer2.0.downsample.1.running_mean layer2.0.downsample.1.running_var
layer2.0.downsample.1.num_batches_tracked layer2.1.conv1.weight layer2.1.bn1.weight layer2.1.bn1.bias
layer2.1.bn1.running_mean layer2.1.bn1.running_var layer2.1.bn1.num_batches_tracked
layer2.1.conv2.weight layer2.1.bn2.weight layer2.1.bn2.bias layer2.1.bn2.running_mean
layer2.1.bn2.running_var layer2.1.bn2.num_batches_tracked layer3.0.conv1.weight layer3.0.bn1.weight
layer3.0.bn1.bias layer3.0.bn1.running_mean layer3.0.bn1.running_var layer3.0.bn1.num_batches_tracked
layer3.0.conv2.weight layer3.0.bn2.weight layer3.0.bn2.bias layer3.0.bn2.running_mean
layer3.0.bn2.running_var layer3.0.bn2.num_batches_tracked layer3.0.downsample.0.weight
layer3.0.downsample.1.weight layer3.0.downsample.1.bias layer3.0.downsample.1.running_mean
layer3.0.downsample.1.running_var layer3.0.downsample.1.num_batches_tracked layer3.1.conv1.weight
layer3.1.bn1.weight layer3.1.bn1.bias layer3.1.bn1.running_mean layer3.1.bn1.running_var
layer3.1.bn1.num_batches_tracked layer3.1.conv2.weight layer3.1.bn2.weight layer3.1.bn2.bias
layer3.1.bn2.running_mean layer3.1.bn2.running_var layer3.1.bn2.num_batches_tracked
layer4.0.conv1.weight layer4.0.bn1.weight layer4.0.bn1.bias layer4.0.bn1.running_mean
layer4.0.bn1.running_var layer4.0.bn1.num_batches_tracked layer4.0.conv2.weight layer4.0.bn2.weight
layer4.0.bn2.bias layer4.0.bn2.running_mean layer4.0.bn2.running_var layer4.0.bn2.num_batches_tracked
layer4.0.downsample.0.weight layer4.0.downsample.1.weight layer4.0.downsample.1.bias
layer4.0.downsample.1.running_mean layer4.0.downsample.1.running_var
layer4.0.downsample.1.num_batches_tracked layer4.1.conv1.weight layer4.1.bn1.weight layer4.1.bn1.bias
layer4.1.bn1.running_mean layer4.1.bn1.running_var layer4.1.bn1.num_batches_tracked
layer4.1.conv2.weight layer4.1.bn2.weight layer4.1.bn2.bias layer4.1.bn2.running_mean
layer4.1.bn2.running_var layer4.1.bn2.num_batches_tracked fc.weight fc.bias
""".split()


@pytest.fixture(scope="module")
def resnet50_summary() -> ModelSummary:
    return cnnkit.summary(cnnkit.create_model("resnet50"))


def test_macs_match_torchvision_at_224(resnet50_summary: ModelSummary) -> None:
    # torchvision's "GFLOPS" are multiply-accumulates of the convs and the fc
    r18 = cnnkit.summary(cnnkit.create_model("resnet18"), (3, 224, 224), depth=2)
    assert abs(r18.total_macs / 1.81e9 - 1) < 0.01
    assert abs(resnet50_summary.total_macs / 4.09e9 - 1) < 0.01
    assert resnet50_summary.total_params == 25_557_032
    # one basic block of layer1 by hand: two 3x3 convs, 64 -> 64 channels, on 56x56
    block = next(r for r in r18.rows if r.name == "layer1.0")
    assert block.macs == 2 * 56 * 56 * 64 * 64 * 9
    # the blocks' rows add up to the leaf total: nothing is counted twice
    assert sum(r.macs for r in r18.rows) == r18.total_macs
    last = next(r for r in resnet50_summary.rows if r.name == "layer4.2.act3")
    assert last.output_shape == (None, 2048, 7, 7)


def test_folded_bottleneck_stages_are_not_double_counted() -> None:
    model = cnnkit.create_model("resnet50")
    leaves = cnnkit.summary(model, (3, 64, 64))
    first_rows = {
        1: ["layer1", "layer2", "layer3", "layer4"],
        2: ["layer1.0", "layer1.1", "layer1.2", "layer2.0"],
    }
    for depth, expected in first_rows.items():
        folded = cnnkit.summary(model, (3, 64, 64), depth=depth)
        assert [r.name for r in folded.rows if r.name.startswith("layer")][:4] == expected
        assert sum(r.macs for r in folded.rows) == leaves.total_macs == folded.total_macs
        assert sum(r.params for r in folded.rows) == 25_557_032


def test_stride_in_1x1_is_the_papers_cheaper_resnet50(resnet50_summary: ModelSummary) -> None:
    model = cnnkit.create_model("resnet50", stride_in_1x1=True)
    assert model.layer2[0].conv1.stride == (2, 2) and model.layer2[0].conv2.stride == (1, 1)
    assert count_params(model) == 25_557_032
    # only the first 1x1 conv of stages 2-4 changes: it now runs on a quarter of the positions
    # (each of the three costs 56*56*256*128 MACs at full resolution)
    saved = 3 * (56 * 56 * 256 * 128) * 3 // 4
    assert cnnkit.summary(model).total_macs == resnet50_summary.total_macs - saved  # 3.86 G: paper's "3.8"
    with pytest.raises(cnnkit.CnnkitError, match="bottleneck"):
        cnnkit.create_model("resnet18", stride_in_1x1=True)


def test_resnet18_state_dict_uses_torchvision_names() -> None:
    assert len(TORCHVISION_RESNET18_KEYS) == 122
    state = cnnkit.create_model("resnet18").state_dict()
    assert list(state) == TORCHVISION_RESNET18_KEYS
    assert state["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert state["layer4.1.conv2.weight"].shape == (512, 512, 3, 3)
    assert state["fc.weight"].shape == (1000, 512)
    assert state["conv1.weight"].shape == (64, 3, 7, 7)


def test_cifar_resnet20_option_a_shortcut_and_stage_sizes() -> None:
    model = cnnkit.create_model("cifar_resnet20")
    rows = {r.name: r for r in cnnkit.summary(model).rows}
    for name in ("layer2.0.downsample", "layer3.0.downsample"):
        assert rows[name].type == "ZeroPadShortcut" and rows[name].params == 0
    assert count_params(model.layer2[0].downsample) == 0
    stages = {r.name: r.output_shape for r in cnnkit.summary(model, depth=1).rows}
    assert stages["layer1"] == (None, 16, 32, 32)
    assert stages["layer2"] == (None, 32, 16, 16)
    assert stages["layer3"] == (None, 64, 8, 8)
    # option B adds a 1x1 conv + BN per widening: (16*32 + 2*32) + (32*64 + 2*64)
    assert count_params(cnnkit.create_model("cifar_resnet20", shortcut="B")) == 269_722 + 576 + 2_176
    with pytest.raises(cnnkit.CnnkitError, match="shortcut"):
        cnnkit.create_model("cifar_resnet20", shortcut="C")


def test_zero_pad_shortcut_keeps_the_input_on_the_old_channels() -> None:
    x = torch.randn(2, 16, 8, 8)
    out = ZeroPadShortcut(16, 32, 2)(x)
    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out[:, 8:24], x[:, :, ::2, ::2])
    assert out[:, :8].abs().sum() == 0 and out[:, 24:].abs().sum() == 0


def test_preact_blocks_normalise_before_convolving() -> None:
    model = cnnkit.create_model("preact_resnet18")
    rows = cnnkit.summary(model, (3, 64, 64)).rows
    block = [r.type for r in rows if r.name.startswith("layer1.1.")]
    assert block == ["BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d", "ReLU", "Conv2d"]
    assert [r.type for r in rows[-5:]] == ["BatchNorm2d", "ReLU", "AdaptiveAvgPool2d", "Flatten", "Linear"]
    with torch.no_grad():
        feats = model.eval().forward_features(torch.randn(1, 3, 64, 64))
    assert feats.shape == (1, 512, 2, 2) and feats.min() >= 0  # after the final BN-ReLU


def test_cifar_preact_bottleneck_widths_and_counts() -> None:
    model = cnnkit.create_model("cifar_preact_resnet164")
    assert len(model.layer1) == len(model.layer2) == len(model.layer3) == 18
    stages = {r.name: r.output_shape for r in cnnkit.summary(model, depth=1).rows}
    assert stages["layer1"] == (None, 64, 32, 32)
    assert stages["layer3"] == (None, 256, 8, 8)
    assert model.layer2[0].conv1.stride == (2, 2)  # the authors' code strides the first 1x1 conv
    assert isinstance(model.layer1[0].downsample, nn.Conv2d)  # bare projection, no BN
    assert 1.65e6 < count_params(model) < 1.75e6  # paper Table 2: 1.7M
    with pytest.raises(cnnkit.CnnkitError, match="9n\\+2"):
        cnnkit.models.cifar_resnet.CifarPreActResNet(depth=165)


def test_zero_init_residual_makes_blocks_start_as_identities() -> None:
    x = torch.randn(2, 256, 14, 14)
    v1 = cnnkit.create_model("resnet50", zero_init_residual=True).eval()
    assert not any(b.bn3.weight.any() for stage in (v1.layer1, v1.layer4) for b in stage)
    with torch.no_grad():
        assert torch.allclose(v1.layer1[1](x), torch.relu(x))
    v2 = cnnkit.create_model("preact_resnet50", zero_init_residual=True).eval()
    with torch.no_grad():
        assert torch.equal(v2.layer1[1](x), x)


def test_prelu_and_any_input_size() -> None:
    model = cnnkit.create_model("resnet18", act="prelu")
    # one slope per channel: stem 64, two per basic block, 2 blocks per stage
    assert count_params(model) == 11_689_512 + 64 + 4 * (64 + 128 + 256 + 512)
    out = model(torch.randn(2, 3, 97, 131))
    assert out.shape == (2, 1000)
    out.sum().backward()
    assert model.layer3[0].act1.weight.grad is not None
    with torch.no_grad():
        assert cnnkit.create_model("cifar_resnet20").eval()(torch.randn(1, 3, 40, 56)).shape == (1, 10)


def _overfit_cifar_resnet20(side: int, epochs: int) -> tuple[float, float]:
    """Training loss on 256 real CIFAR-10 images (average-pooled to ``side``) before and after."""
    batch = read_cifar_batch(need("datasets", "cifar-10-batches-py", "data_batch_1"))
    images = np.asarray(batch[b"data"][:256], dtype=np.float32).reshape(-1, 3, 32, 32) / 255
    x = F.adaptive_avg_pool2d(torch.from_numpy(images), side)
    x = (x - x.mean(dim=(0, 2, 3), keepdim=True)) / x.std(dim=(0, 2, 3), keepdim=True)
    y = torch.tensor(batch[b"labels"][:256])
    torch.manual_seed(0)
    model = cnnkit.create_model("cifar_resnet20").train()
    batch_size = 32
    steps = epochs * 256 // batch_size
    opt = torch.optim.SGD(model.parameters(), lr=0.08, momentum=0.9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1 - k / steps)

    def training_loss() -> float:
        with torch.no_grad():
            return F.cross_entropy(model(x), y).item()

    start = training_loss()
    order = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for idx in torch.randperm(256, generator=order).split(batch_size):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return start, training_loss()


def test_cifar_resnet20_overfits_256_real_images() -> None:
    # at 16x16 (the net takes any size) and 48 steps: a sixth of the full-size run below
    start, end = _overfit_cifar_resnet20(16, epochs=6)
    assert end < 0.5 * start, (start, end)


@pytest.mark.slow
def test_cifar_resnet20_overfits_256_real_images_at_32x32() -> None:
    start, end = _overfit_cifar_resnet20(32, epochs=8)  # 64 SGD steps
    assert end < 0.5 * start, (start, end)
