"""CAM / Grad-CAM / Grad-CAM++ on the pretrained EfficientNet-Lite0 and scikit-image's cat."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from skimage.data import chelsea

from cnnkit.cli import main
from cnnkit.errors import CnnkitError
from cnnkit.explain import class_activation_map, default_layer, explain_images, load_explainable

# chelsea() is 451x300; the cat's face (eyes, nose, muzzle) fills x 110..370, y 60..290 (looked at
# with a 50-px grid); the right edge (x > 390) is background.
FACE = (110 / 451, 60 / 300, 370 / 451, 290 / 300)


@pytest.fixture(scope="module")
def cat_png(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "chelsea.png"
    Image.fromarray(chelsea()).save(path)
    return path


@pytest.fixture(scope="module")
def lite0():
    return load_explainable("efficientnet_lite0")


def _in_face(xy):
    return FACE[0] <= xy[0] <= FACE[2] and FACE[1] <= xy[1] <= FACE[3]


def test_gradcam_peaks_on_the_cat_and_agrees_with_cam(lite0, cat_png, tmp_path):
    out = {
        m: explain_images(lite0, [cat_png], method=m, out=tmp_path)[0]
        for m in ("cam", "gradcam", "gradcam++")
    }
    assert "cat" in out["gradcam"]["label"]  # tabby / tiger cat / Egyptian cat
    for method, record in out.items():
        assert _in_face(record["peak"]) and _in_face(record["centre"]), (method, record)
        with Image.open(record["png"]) as image:
            image.load()
            assert image.size[0] >= 800 and image.size[1] >= 300
    # On a global-average-pooling net with a linear head, Grad-CAM at the last map is CAM.
    assert out["cam"]["peak"] == out["gradcam"]["peak"]
    x = lite0.preprocess([cat_png])
    cam = class_activation_map(lite0.model, x, "cam")["cam"][0]
    grad = class_activation_map(lite0.model, x, "gradcam")["cam"][0]
    assert torch.allclose(cam, grad, atol=1e-3)
    # The heat is on the face, not on the background strip at the right edge.
    w = cam.shape[1]
    face = grad[int(FACE[1] * 224) : int(FACE[3] * 224), int(FACE[0] * w) : int(FACE[2] * w)]
    assert face.mean() > 3 * grad[:, int(390 / 451 * w) :].mean()


def test_a_chosen_class_changes_the_map_and_layers_are_checked(lite0, cat_png, tmp_path):
    x = lite0.preprocess([cat_png])
    assert default_layer(lite0.model, x) == (getattr(lite0.model, "cam_layer", None) or "head")
    mid = class_activation_map(lite0.model, x, "gradcam", layer="stages.4", target=0)  # tench
    assert mid["layer"] == "stages.4" and mid["target"] == [0] and mid["cam"].shape == (1, 224, 224)
    with pytest.raises(CnnkitError, match=r"no layer 'nope'.*valid layers: .*stages\.4"):
        class_activation_map(lite0.model, x, "gradcam", layer="nope")
    with pytest.raises(CnnkitError, match="CAM needs"):
        class_activation_map(lite0.model, x, "cam", layer="stages.4")
    with pytest.raises(CnnkitError, match="unknown class"):
        explain_images(lite0, [cat_png], target="zebra crossing", out=tmp_path)


def test_feature_maps_and_filters_are_drawn(lite0, cat_png, tmp_path):
    record = explain_images(lite0, [cat_png], out=tmp_path, features=["stages.1", "head"], filters=True)[0]
    for png in [*record["feature_pngs"], tmp_path / "filters.png"]:
        with Image.open(png) as image:
            image.load()
            assert 400 <= image.size[0] <= 3000 and 200 <= image.size[1] <= 3000
    assert len(record["feature_pngs"]) == 2


def test_cli_explain_and_its_one_line_errors(cat_png, tmp_path, capsys):
    assert (
        main(["explain", "efficientnet_lite0", str(cat_png), "--class", "tabby", "--out", str(tmp_path)]) == 0
    )
    assert "tabby" in capsys.readouterr().out
    assert (tmp_path / "chelsea_gradcam.png").is_file()
    assert (
        main(["explain", "efficientnet_lite0", str(cat_png), "--layer", "bogus", "--out", str(tmp_path)]) == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "valid layers" in err and "stages.6" in err
    assert main(["explain", "efficientnet_lite0", str(tmp_path / "missing.png")]) == 2
