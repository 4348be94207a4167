"""Stage metadata of every registered image model: feature_info, cam_layer, param_groups,
forward_intermediate.

Shapes are checked on the meta device (models built there hold no memory and run no
arithmetic), so all architectures fit in seconds; one real network runs on a real photo.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import cnnkit
from cnnkit.errors import CnnkitError
from cnnkit.models.layers.stages import GROW, meta_copy

IMAGE_MODELS = [
    pytest.param(n, marks=pytest.mark.slow) if n == "cifar_preact_resnet1001" else n  # 1001 layers: ~15 s
    for n in cnnkit.list_models()
    if cnnkit.model_info(n).kind == "image"
]
# MLPs on flattened pixels have no convolutional stages (and nothing for CAM to look at).
MLPS = {"maxout_mnist", "highway_mlp"}


def meta_model(name: str) -> nn.Module:
    """The model on the meta device; BatchNorm (shape-keeping, but slow on meta) skipped."""
    with torch.device("meta"):
        model = cnnkit.create_model(name).eval()
    return meta_copy(model)


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_stages_match_the_real_feature_maps(name: str) -> None:
    model = meta_model(name)
    info = model.feature_info
    if name in MLPS:
        assert info == [] and model.cam_layer is None
        assert [g for g, _ in model.param_groups()] == ["head"]
        return
    assert info, name
    c, h, w = model.default_input_size
    shapes = {}
    for size in ((h, w), (h + GROW, w + GROW)):
        x = torch.zeros(1, c, *size, device="meta")
        hooks = [
            model.get_submodule(row["module"]).register_forward_hook(
                lambda m, i, o, n=row["name"], s=size: shapes.setdefault((n, s), o.shape) and None
            )
            for row in info
        ]
        trunk = model.forward_features(x)
        for handle in hooks:
            handle.remove()
        for row in (info[0], info[-1]):  # early exit gives the same map as the full pass
            assert model.forward_intermediate(x, row["name"]).shape == shapes[row["name"], size]
        assert shapes[info[-1]["name"], size] == trunk.shape  # the last stage is the whole trunk
    reductions = []
    for row in info:
        assert set(row) == {"name", "module", "num_chs", "reduction"}
        out, grown = shapes[row["name"], (h, w)], shapes[row["name"], (h + GROW, w + GROW)]
        assert len(out) == 4 and out[1] == row["num_chs"], (row, out)
        assert (grown[2] - out[2]) * row["reduction"] == GROW, (row, out, grown)
        reductions.append(row["reduction"])
    assert reductions == sorted(reductions) and len(set(reductions)) == len(reductions)
    assert model.cam_layer == info[-1]["module"]
    assert isinstance(model.get_submodule(model.cam_layer), nn.Module)


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_param_groups_partition_the_parameters(name: str) -> None:
    model = meta_model(name)
    groups = model.param_groups()
    names = [g for g, _ in groups]
    assert names[-1] == "head" and names[:-1] == [r["name"] for r in model.feature_info]
    ids = [id(p) for _, params in groups for p in params]
    assert len(ids) == len(set(ids))  # each parameter once
    assert set(ids) == {id(p) for p in model.parameters()}  # and all of them
    head_ids = {id(p) for p in groups[-1][1]}
    assert all(id(p) in head_ids for p in model.get_classifier().parameters())
    if name not in MLPS:  # the stem's parameters are in the first group
        first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
        assert id(first_conv.weight) in {id(p) for p in groups[0][1]}


def test_cam_layer_is_the_last_conv_stage_on_a_real_photo() -> None:
    skimage_data = pytest.importorskip("skimage.data")
    from cnnkit.preprocess import IMAGENET_MEAN, IMAGENET_STD

    torch.manual_seed(0)
    model = cnnkit.create_model("resnet18").eval()
    assert model.cam_layer == "layer4"
    assert [(r["name"], r["num_chs"], r["reduction"]) for r in model.feature_info] == [
        ("relu", 64, 2),
        ("layer1", 64, 4),
        ("layer2", 128, 8),
        ("layer3", 256, 16),
        ("layer4", 512, 32),
    ]
    image = torch.from_numpy(skimage_data.chelsea()[:224, :224].copy()).permute(2, 0, 1).float() / 255
    x = ((image - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1))[None]
    with torch.no_grad():
        maps = {}
        handle = model.get_submodule(model.cam_layer).register_forward_hook(
            lambda m, i, o: maps.update(cam=o)
        )
        full = model.forward_features(x)
        handle.remove()
        assert torch.equal(model.forward_intermediate(x, "layer4"), full)
        assert torch.equal(maps["cam"], full)
        early = model.forward_intermediate(x, "layer2")
    assert early.shape == (1, 128, 28, 28)


def test_param_groups_follow_a_new_head() -> None:
    model = cnnkit.create_model("cifar_resnet20")
    model.fc = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 5))
    groups = dict(model.param_groups())
    assert {id(p) for p in model.fc.parameters()} <= {id(p) for p in groups["head"]}
    assert sum(len(v) for v in groups.values()) == len(list(model.parameters()))


def test_unknown_stage_lists_the_valid_ones() -> None:
    model = meta_model("resnet18")
    with pytest.raises(
        CnnkitError, match=r"resnet18 has no stage 'layer9'; its stages are: relu, layer1, .*layer4\."
    ):
        model.forward_intermediate(torch.zeros(1, 3, 64, 64, device="meta"), "layer9")
    with pytest.raises(CnnkitError, match="no stage 'fc'; its stages are: none"):
        meta_model("highway_mlp").stage_module("fc")
