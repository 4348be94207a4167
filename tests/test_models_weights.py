"""Weights records and ``create_model(pretrained=...)``: the offline ImageNet backbones on
real photos, a new head for another class count, an adapted stem for other channel counts,
and one clear line for each way it can go wrong.

The photos ship with scikit-image: ``chelsea`` (a tabby cat) and ``coffee`` (a cup of espresso).
"""

from __future__ import annotations

import pytest
import torch

import cnnkit
from cnnkit.errors import CnnkitError
from cnnkit.models import Weights, get_weights, models_with_weights
from cnnkit.models.pretrained import adapt_input_conv
from cnnkit.models.registry import skip_weight_init
from cnnkit.preprocess import Preprocess

BACKBONES = {
    # name: (parameters, input side)
    "efficientnet_lite0": (4_652_008, 224),
    "efficientnet_lite1": (5_416_680, 240),
    "efficientnet_lite2": (6_092_072, 260),
    "mobilenet_v2": (3_504_872, 224),
}
CATS = {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat", "lynx"}
COFFEE = {"espresso", "cup", "coffee mug"}


@pytest.fixture(scope="module")
def photos() -> dict[str, object]:
    data = pytest.importorskip("skimage.data")
    return {"cat": data.chelsea(), "coffee": data.coffee()}


def test_every_backbone_has_a_complete_record() -> None:
    assert set(BACKBONES) <= set(models_with_weights())
    for name, (params, side) in BACKBONES.items():
        record = get_weights(name)
        assert record is get_weights(name, "imagenet") and record.tag == "imagenet"
        assert record.path().is_file() and record.path().suffix == ".pth"
        assert isinstance(record.preprocess, Preprocess) and record.preprocess.size == (side, side)
        assert record.num_classes == 1000 and len(record.class_names()) == 1000
        assert record.meta["params"] == params and record.meta["top1"] > 70 and record.meta["top1_source"]
        assert cnnkit.model_info(name).weights == {"imagenet": record}
    torchvision_style = get_weights("mobilenet_v2").preprocess
    assert (torchvision_style.resize, torchvision_style.crop_pct, torchvision_style.resample) == (
        "aspect",
        0.875,
        "bilinear",
    )


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_backbone_recognises_real_photos(name: str, photos: dict[str, object]) -> None:
    with skip_weight_init():  # every tensor comes from the weights file
        model = cnnkit.create_model(name, pretrained=True).eval()
    assert sum(p.numel() for p in model.parameters()) == BACKBONES[name][0]
    record = model.pretrained_cfg
    names = record.class_names()
    with torch.no_grad():
        probs = model(record.preprocess([photos["cat"], photos["coffee"]])).softmax(1)
    top5 = [[names[i] for i in row.topk(5).indices] for row in probs]
    assert CATS & set(top5[0]), top5[0]
    assert top5[1][0] in COFFEE, top5[1]


def test_another_class_count_keeps_the_trunk() -> None:
    with skip_weight_init():  # all from the file (not so ``seven``: its new head is initialised)
        base = cnnkit.create_model("mobilenet_v2", pretrained=True)
    seven = cnnkit.create_model("mobilenet_v2", pretrained=True, num_classes=7)
    assert seven.get_classifier().weight.shape == (7, 1280)
    assert torch.equal(seven.features[18][0].weight, base.features[18][0].weight)
    assert not torch.equal(seven.get_classifier().weight[:7], base.get_classifier().weight[:7])


def test_other_channel_counts_adapt_the_first_conv() -> None:
    rgb = get_weights("efficientnet_lite0").state_dict(cnnkit.create_model("efficientnet_lite0"))[
        "stem.conv.weight"
    ]
    grey = cnnkit.create_model("efficientnet_lite0", pretrained=True, in_chans=1)
    assert torch.allclose(grey.stem.conv.weight, rgb.sum(dim=1, keepdim=True))
    five = cnnkit.create_model("mobilenet_v2", pretrained="imagenet", in_chans=5)
    file_w = get_weights("mobilenet_v2").state_dict(five)["features.0.0.weight"]
    assert torch.allclose(five.features[0][0].weight, torch.cat([file_w, file_w[:, :2]], 1) * 3 / 5)
    # a grey image through the adapted stem answers as the RGB stem does for (x, x, x)
    x = torch.rand(1, 1, 16, 16)
    conv = torch.nn.functional.conv2d
    assert torch.allclose(conv(x, adapt_input_conv(1, rgb)), conv(x.expand(1, 3, 16, 16), rgb), atol=1e-5)


def test_clear_errors() -> None:
    with pytest.raises(
        CnnkitError, match=r"resnet50 has no pretrained weights; choose one of .*mobilenet_v2"
    ):
        cnnkit.create_model("resnet50", pretrained=True)
    with pytest.raises(
        CnnkitError, match=r"neither a weights tag of mobilenet_v2 \(tags: imagenet\) nor an existing file"
    ):
        cnnkit.create_model("mobilenet_v2", pretrained="places365")
    with pytest.raises(CnnkitError, match="has no 'places365' weights; its tags: imagenet"):
        get_weights("mobilenet_v2", "places365")
    missing = Weights(
        tag="imagenet",
        package="cnnkit-no-such-weights",
        module="cnnkit_no_such_weights",
        file="w.pth",
        preprocess=Preprocess(),
    )
    with pytest.raises(CnnkitError, match="not installed; pip install cnnkit-no-such-weights"):
        missing.path()
