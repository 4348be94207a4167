"""Checkpoints from other libraries: ``create_model(name, pretrained=PATH)``.

torchvision and timm cannot be installed here (and nothing may download), so the files
are built from our own tensors under the other library's key names and conventions: the
auxiliary heads torchvision always saves, ``module.`` prefixes, timm's 1001-class TF heads
without BatchNorm counters, and lukemelas' EfficientNet names. The converted model must
give the same logits as the model the tensors came from (to 1e-4).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import cnnkit
from cnnkit.errors import CnnkitError
from cnnkit.models.registry import skip_weight_init

# model: input side small enough for a quick forward pass on CPU. The default run covers
# each convention once; the big files (AlexNet, VGG, the deep ResNets) are in the slow set.
FAST = {"resnet18": 64, "googlenet": 64, "inception_v3": 75, "mobilenet_v2": 64, "inception_v4": 75}
SIDE = {**FAST, "vgg11_bn": 32, "alexnet": 64, "inception_resnet_v2": 75}
SLOW = [
    "alexnet",
    "inception_resnet_v2",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
]


def logits(model: torch.nn.Module, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    x = torch.randn(2, 3, side, side)
    with torch.no_grad():
        return x, model.eval()(x)


def torchvision_file(name: str, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What torchvision saves for ``name``: our keys plus the aux heads it always carries."""
    state = dict(model.state_dict())
    if name == "googlenet":  # torchvision saves aux1/aux2 (InceptionAux on 4a: 512, on 4d: 528 channels)
        with_aux = cnnkit.create_model("googlenet", aux_logits=True)
        state.update({k: v for k, v in with_aux.state_dict().items() if k.startswith(("aux1.", "aux2."))})
    if name == "inception_v3":  # AuxLogits: conv0 1x1 768->128, conv1 5x5 128->768, fc 768->1000
        for conv, shape in (("conv0", (128, 768, 1, 1)), ("conv1", (768, 128, 5, 5))):
            state[f"AuxLogits.{conv}.conv.weight"] = torch.randn(shape)
            for leaf in ("weight", "bias", "running_mean", "running_var"):
                state[f"AuxLogits.{conv}.bn.{leaf}"] = torch.rand(shape[0])
            state[f"AuxLogits.{conv}.bn.num_batches_tracked"] = torch.tensor(0)
        state["AuxLogits.fc.weight"], state["AuxLogits.fc.bias"] = torch.randn(1000, 768), torch.randn(1000)
    return state


def timm_tf_file(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """timm's ports of the TF releases: 1001 classes (row 0 background), no BN counters."""
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    head = model.classifier_path
    state[f"{head}.weight"] = torch.cat(
        [torch.randn(1, state[f"{head}.weight"].shape[1]), state[f"{head}.weight"]]
    )
    state[f"{head}.bias"] = torch.cat([torch.randn(1), state[f"{head}.bias"]])
    return state


def round_trip(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = cnnkit.create_model(name)
    with torch.no_grad():  # non-trivial BN statistics, so a dropped buffer would show
        for m in source.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    x, expected = logits(source, SIDE.get(name, 64))
    family = cnnkit.model_info(name).family
    state = (
        timm_tf_file(source)
        if family in ("inception_v4", "inception_resnet")
        else torchvision_file(name, source)
    )
    path = tmp_path / f"{name}.pth"
    torch.save({f"module.{k}": v for k, v in state.items()} if name == "resnet18" else state, path)
    with skip_weight_init():  # every tensor comes from the file: random init would be thrown away
        loaded = cnnkit.create_model(name, pretrained=path).eval()
    with torch.no_grad():
        assert torch.allclose(loaded(x), expected, atol=1e-4), name


@pytest.mark.parametrize("name", sorted(FAST))
def test_other_library_files_give_the_same_logits(name: str, tmp_path: Path) -> None:
    round_trip(name, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_every_torchvision_and_timm_file(name: str, tmp_path: Path) -> None:
    round_trip(name, tmp_path)


def test_lukemelas_efficientnet_file(tmp_path: Path) -> None:
    from cnnkit.models import get_weights
    from cnnkit.models.weights import read_state_dict

    record = get_weights("efficientnet_lite0")
    path = tmp_path / "efficientnet-lite0.pth"
    torch.save(read_state_dict(record.path()), path)  # the package's own lukemelas-named file
    with skip_weight_init():  # both load every tensor from a file
        from_path = cnnkit.create_model("efficientnet_lite0", pretrained=path).eval()
        shipped = cnnkit.create_model("efficientnet_lite0", pretrained=True).eval()
    x, expected = logits(shipped, 64)
    with torch.no_grad():
        assert torch.equal(from_path(x), expected)


def test_a_file_of_another_architecture_is_named(tmp_path: Path) -> None:
    with skip_weight_init():  # only key names and shapes matter here
        torch.save(cnnkit.create_model("resnet18").state_dict(), tmp_path / "r18.pth")
        with pytest.raises(CnnkitError) as err:
            cnnkit.create_model("resnet34", pretrained=tmp_path / "r18.pth")
    message = str(err.value)
    assert "first mismatch: missing key 'layer1.2.conv1.weight'" in message
    assert "This looks like a resnet18 checkpoint" in message and "\n" not in message


def test_wrong_shape_is_the_first_mismatch(tmp_path: Path) -> None:
    with skip_weight_init():  # only key names and shapes matter here
        state = cnnkit.create_model("mobilenet_v2").state_dict()
        state["features.3.conv.1.0.weight"] = torch.zeros(144, 1, 5, 5)  # a 5x5 depthwise kernel
        torch.save(state, tmp_path / "m.pth")
        with pytest.raises(
            CnnkitError, match=r"first mismatch: 'features.3.conv.1.0.weight' is \(144, 1, 5, 5\) in the file"
        ):
            cnnkit.create_model("mobilenet_v2", pretrained=tmp_path / "m.pth")
