"""Inception v3, Inception-v4 and Inception-ResNet v1/v2: published parameter counts, MACs,
grid shapes at 299x299, the aux-head contract, residual scaling and the minimum input size.

These networks are large (5-13 G MACs at 299x299), so each is built once per module and run
at 299 at most once; everything else uses 75x75, the smallest size they accept.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest
import torch
import torch.nn as nn

import cnnkit
from cnnkit.models.inception_resnet import Block35
from cnnkit.summary import count_params, summary

NAMES = ("inception_v3", "inception_v4", "inception_resnet_v1", "inception_resnet_v2")


@pytest.fixture(scope="module")
def built() -> Callable[[str], nn.Module]:
    """Build each reference model once (eval mode); tests must not modify it."""
    cache: dict[str, nn.Module] = {}

    def get(name: str) -> nn.Module:
        if name not in cache:
            torch.manual_seed(0)
            cache[name] = cnnkit.create_model(name).eval()
        return cache[name]

    return get


class _Reached(Exception):
    """Raised by a hook to stop a forward pass once the wanted layer has run."""


def output_of(model: nn.Module, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The output of ``layer`` when ``model`` runs on ``x``; the rest of the net is skipped."""
    captured: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        captured.append(output)
        raise _Reached

    handle = layer.register_forward_hook(hook)
    try:
        with torch.no_grad():
            model(x)
    except _Reached:
        pass
    finally:
        handle.remove()
    return captured[0]


def bn_channels(model: nn.Module, skip_prefix: str | None = None) -> int:
    return sum(
        m.num_features
        for name, m in model.named_modules()
        if isinstance(m, nn.BatchNorm2d) and not (skip_prefix and name.startswith(skip_prefix))
    )


def test_registry_holds_the_published_counts() -> None:
    # tests/test_zoo.py checks every model against its ref_params; here, that those are
    # the library numbers (and v1's hand count), not whatever the code happened to give.
    assert cnnkit.model_info("inception_v3").ref_params == 23_834_568  # torchvision
    assert cnnkit.model_info("inception_v4").ref_params == 42_679_816  # timm
    assert cnnkit.model_info("inception_resnet_v2").ref_params == 55_843_464  # timm
    assert cnnkit.model_info("inception_resnet_v1").ref_params == 22_756_328  # by hand


def test_inception_v3_aux_head_count_and_the_keras_difference() -> None:
    model = cnnkit.create_model("inception_v3", aux_logits=True)
    assert count_params(model) == 27_161_264  # torchvision, aux_logits=True
    assert count_params(model) - count_params(model.AuxLogits) == 23_834_568
    # Keras' InceptionV3 (23,851,784) has no BN scale but counts moving mean and variance:
    # one extra number per BN channel of the trunk.
    assert 23_834_568 + bn_channels(model, skip_prefix="AuxLogits") == 23_851_784


def test_inception_v3_macs_and_grids_at_299(built: Callable[[str], nn.Module]) -> None:
    result = summary(built("inception_v3"), (3, 299, 299), depth=1)
    assert abs(result.total_macs - 5.71e9) / 5.71e9 < 0.01, result.total_macs
    shapes = {row.name: row.output_shape for row in result.rows}
    assert shapes["Mixed_5d"] == (None, 288, 35, 35)
    assert shapes["Mixed_6e"] == (None, 768, 17, 17)
    assert shapes["Mixed_7c"] == (None, 2048, 8, 8)


def test_inception_v3_aux_contract() -> None:
    torch.manual_seed(0)
    model = cnnkit.create_model("inception_v3", num_classes=5, aux_logits=True)
    assert model.aux_weight == 0.3
    x = torch.randn(2, 3, 75, 75)  # the aux head also copes with grids below 17x17
    with torch.no_grad():  # the contract is about outputs; no gradients needed
        logits, aux = model.train()(x)
        assert logits.shape == (2, 5) and len(aux) == 1 and aux[0].shape == (2, 5)
        out = model.eval()(x)
        assert isinstance(out, torch.Tensor) and out.shape == (2, 5)
        # transfer learning must re-size both heads, or the aux loss would see 5 classes
        model.reset_classifier(3)
        logits, [aux_logits] = model.train()(x)
        assert logits.shape == aux_logits.shape == (2, 3)
        model.aux_logits = False  # switched off: training returns plain logits
        assert model(x).shape == (2, 3)


def test_inception_v4_stem_is_35x35x384(built: Callable[[str], nn.Module]) -> None:
    model = built("inception_v4")
    stem_out = output_of(model, model.features[5], torch.randn(1, 3, 299, 299))
    assert stem_out.shape == (1, 384, 35, 35)


def test_inception_resnet_v2_stem_and_the_keras_difference(built: Callable[[str], nn.Module]) -> None:
    model = built("inception_resnet_v2")
    stem_out = output_of(model, model.mixed_5b, torch.randn(1, 3, 299, 299))
    assert stem_out.shape == (1, 320, 35, 35)
    assert (len(model.repeat), len(model.repeat_1), len(model.repeat_2)) == (10, 20, 9)
    # Keras' InceptionResNetV2 (55,873,736): no BN scale, but moving mean and variance counted
    assert count_params(model) + bn_channels(model) == 55_873_736


def test_inception_resnet_v1_grids_and_hand_count(built: Callable[[str], nn.Module]) -> None:
    model = built("inception_resnet_v1")
    result = summary(model, (3, 299, 299), depth=1)
    rows = {row.name: row for row in result.rows}
    # paper Figure 15: 35x35x256 -> 17x17x896 -> 8x8x1792
    assert rows["conv2d_4b"].output_shape == rows["repeat"].output_shape == (None, 256, 35, 35)
    assert rows["mixed_6a"].output_shape == rows["repeat_1"].output_shape == (None, 896, 17, 17)
    assert rows["mixed_7a"].output_shape == rows["repeat_2"].output_shape == (None, 1792, 8, 8)
    # the parts of the hand derivation in the module docstring
    stem = sum(
        rows[n].params for n in ("conv2d_1a", "conv2d_2a", "conv2d_2b", "conv2d_3b", "conv2d_4a", "conv2d_4b")
    )
    assert stem == 615_552
    assert count_params(model.repeat[0]) == 77_440
    assert count_params(model.mixed_6a) == 1_710_080
    assert count_params(model.repeat_1[0]) == 690_048
    assert count_params(model.mixed_7a) == 3_346_176
    assert count_params(model.repeat_2[0]) == 1_600_768
    assert (len(model.repeat), len(model.repeat_1), len(model.repeat_2)) == (5, 10, 5)


@pytest.mark.parametrize(
    "block_kwargs",
    [{}, {"in_chs": 256, "branch1": (32, 32), "branch2": (32, 32, 32)}],
    ids=["v2", "v1"],
)
def test_zero_residual_scale_makes_block_a_relu_of_its_input(block_kwargs: dict) -> None:
    torch.manual_seed(0)
    block = Block35(scale=0.0, **block_kwargs).eval()
    x = torch.randn(2, block.conv2d.out_channels, 9, 9)
    with torch.no_grad():
        assert torch.equal(block(x), torch.relu(x))
        block.scale = 0.17
        assert not torch.allclose(block(x), torch.relu(x))


def test_residual_scales_are_a_constructor_argument() -> None:
    torch.manual_seed(0)
    model = cnnkit.create_model("inception_resnet_v1", scales=(0.0, 0.05, 0.3)).eval()
    assert {b.scale for b in model.repeat} == {0.0}
    assert {b.scale for b in model.repeat_1} == {0.05}
    assert {b.scale for b in model.repeat_2} == {0.3}
    x = torch.randn(1, 256, 9, 9)
    with torch.no_grad():
        assert torch.equal(model.repeat[0](x), torch.relu(x))


@pytest.mark.parametrize("name", NAMES)
def test_smallest_input_is_75(name: str, built: Callable[[str], nn.Module]) -> None:
    model = built(name)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 75, 75)).shape == (1, 1000)
        with pytest.raises(ValueError, match="at least 75x75"):  # either side too small
            model(torch.randn(1, 3, 74, 299))


def test_cli_rejects_too_small_input_in_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cnnkit", "summary", "inception_v3", "--input-size", "3x32x32"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "75x75" in lines[0] and "32x32" in lines[0]
