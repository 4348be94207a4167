"""Every registered architecture: builds, runs at its default size, and has exactly the
published number of parameters."""

from __future__ import annotations

import pytest
import torch

import cnnkit
from cnnkit.models.layers import ClassifierNet
from cnnkit.models.registry import skip_weight_init
from cnnkit.summary import count_params

ALL = cnnkit.list_models()
# Deeper or wider copies of an architecture whose representative runs by default (same
# classes, more blocks or channels): their counts are checked above on every run and their
# stage shapes in test_models_stages.py; the real forward pass is in the slow set.
DEEPER = {
    "cifar_resnet32", "cifar_resnet44", "cifar_resnet56", "cifar_resnet110", "cifar_preact_resnet1001",
    "resnet34", "resnet101", "resnet152", "preact_resnet34", "preact_resnet101", "preact_resnet152",
    "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn", "prelu_net_b", "prelu_net_c",
    "efficientnet_lite1", "efficientnet_lite2",
}  # fmt: skip
FORWARD = [pytest.param(n, marks=pytest.mark.slow) if n in DEEPER else n for n in ALL]


@pytest.mark.parametrize("name", ALL)
def test_reference_parameter_count(name: str) -> None:
    info = cnnkit.model_info(name)
    with skip_weight_init():  # counting needs shapes, not values
        model = cnnkit.create_model(name)
    assert isinstance(model, ClassifierNet)
    assert info.ref_source, f"{name} must say where its reference count comes from"
    if info.ref_params is not None:
        assert count_params(model) == info.ref_params


def test_deeper_copies_are_registered() -> None:
    assert DEEPER <= set(ALL)


@pytest.mark.parametrize("name", FORWARD)
def test_forward_default_size_and_cut_points(name: str) -> None:
    info = cnnkit.model_info(name)
    torch.manual_seed(0)
    model = cnnkit.create_model(name, num_classes=7).eval()
    if info.kind == "text":
        x = torch.randint(0, 100, (1, *info.input_size))
    else:
        x = torch.randn(1, *info.input_size)  # one image: the shapes, not the batch, are checked
    with torch.no_grad():
        feats = model.forward_features(x)
        out = model.forward_head(feats)
        pre = model.forward_head(feats, pre_logits=True)
        if type(model).forward is not ClassifierNet.forward:  # its own forward: run it too
            assert torch.allclose(model(x), out, atol=1e-5)
        assert out.shape == (1, 7)
        assert torch.isfinite(out).all()
        assert pre.shape[0] == 1 and pre.shape[1] == model.num_features
        model.reset_classifier(3)
        assert model.forward_head(feats).shape == (1, 3)


def test_at_least_thirty_architectures() -> None:
    assert len(ALL) >= 30, ALL
