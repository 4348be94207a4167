"""Pretrained EfficientNet-Lite0 on real photos, ``cnnkit predict``, and loading weights files.

The photos ship with installed packages, so these tests run offline: scikit-image's
``chelsea`` (a tabby cat) and ``coffee`` (a cup of espresso), and matplotlib's sample
``grace_hopper.jpg`` (Rear Admiral Grace Hopper in uniform).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cnnkit
from cnnkit.cli import main as cli_main
from cnnkit.errors import CnnkitError
from cnnkit.imagenet import imagenet_classes
from cnnkit.models.efficientnet_lite import Conv2dSame, convert_lukemelas_state_dict
from cnnkit.predict import EFFICIENTNET_LITE_PREPROCESSING, predict_images
from cnnkit.summary import count_params

CAT_FAMILY = {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"}
COFFEE = {"espresso", "cup", "coffee mug"}
# ImageNet indices of the same sets, to sum probability mass
CAT_IDS, COFFEE_IDS, UNIFORM_IDS = [281, 282, 283, 284, 285], [967, 968, 504], [652]


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    skimage_data = pytest.importorskip("skimage.data")
    import matplotlib.cbook

    folder = tmp_path_factory.mktemp("photos")
    paths = {
        "cat": folder / "chelsea.jpg",
        "coffee": folder / "coffee.png",
        "hopper": folder / "grace_hopper.jpg",
    }
    Image.fromarray(skimage_data.chelsea()).save(paths["cat"], quality=95)
    Image.fromarray(skimage_data.coffee()).save(paths["coffee"])
    shutil.copy(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), paths["hopper"])
    return paths


@pytest.fixture(scope="module")
def lite0() -> torch.nn.Module:
    return cnnkit.create_model("efficientnet_lite0", pretrained=True).eval()


def test_class_names_ship_with_the_package() -> None:
    names = imagenet_classes()
    assert len(names) == 1000
    assert names[0] == "tench" and names[208] == "Labrador retriever" and names[999] == "toilet tissue"
    assert names[134] == names[517] == "crane"


def test_weights_convert_and_load_strictly(lite0: torch.nn.Module) -> None:
    assert count_params(lite0) == 4_652_008
    from cnnkit.models.weights import read_state_dict

    theirs = read_state_dict(cnnkit.models.get_weights("efficientnet_lite0").path())
    ours = convert_lukemelas_state_dict(theirs)
    assert len(ours) == len(theirs) == 296
    assert torch.equal(ours["stages.6.0.depthwise.conv.weight"], theirs["_blocks.15._depthwise_conv.weight"])
    assert set(ours) == set(lite0.state_dict())
    with pytest.raises(CnnkitError, match="unexpected key '_blocks.0._se_reduce.weight'"):
        convert_lukemelas_state_dict({**theirs, "_blocks.0._se_reduce.weight": torch.zeros(1)})


def test_pretrained_trunk_with_a_new_head(lite0: torch.nn.Module) -> None:
    ten = cnnkit.create_model("efficientnet_lite0", pretrained=True, num_classes=10)
    assert ten.classifier.out_features == 10
    assert torch.equal(ten.head.conv.weight, lite0.head.conv.weight)


def test_tensorflow_conventions() -> None:
    # 'same' padding: TF puts the odd pixel at the bottom/right; stride 1 stays symmetric.
    assert Conv2dSame.same_pad(224, 3, 2) == (0, 1)
    assert Conv2dSame.same_pad(56, 5, 2) == (1, 2)
    assert Conv2dSame.same_pad(14, 5, 1) == (2, 2)
    assert Conv2dSame(3, 4, 3, 2)(torch.zeros(1, 3, 225, 225)).shape[-2:] == (113, 113)  # ceil(225 / 2)
    model = cnnkit.create_model("efficientnet_lite0")
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(m.eps == 1e-3 and m.momentum == 0.01 for m in norms)
    assert sum(isinstance(m, Conv2dSame) for m in model.modules()) == 5  # stem + 4 strided stages


def test_preprocessing_scales_pixels_as_tensorflow(tmp_path: Path) -> None:
    pixels = np.zeros((224, 224, 3), dtype=np.uint8)
    pixels[:, :, 0], pixels[:, :, 1], pixels[:, :, 2] = 0, 127, 255
    Image.fromarray(pixels).save(tmp_path / "flat.png")
    x = EFFICIENTNET_LITE_PREPROCESSING([tmp_path / "flat.png"])[0]
    assert x.shape == (3, 224, 224)
    expected = torch.tensor([-127 / 128, 0.0, 1.0])
    assert torch.allclose(x.mean(dim=(1, 2)), expected, atol=1e-6)
    assert EFFICIENTNET_LITE_PREPROCESSING.resample == "bicubic"


def test_cli_predicts_real_photos(photos: dict[str, Path]) -> None:
    files = [str(photos[k]) for k in ("cat", "coffee", "hopper")]
    done = subprocess.run(
        [sys.executable, "-m", "cnnkit", "predict", *files, "--topk", "3", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert [r["image"] for r in results] == files
    top1 = [r["topk"][0] for r in results]
    assert top1[0]["label"] in CAT_FAMILY and top1[0]["prob"] > 0.5
    assert top1[1]["label"] in COFFEE and top1[1]["prob"] > 0.5
    assert top1[2]["label"] == "military uniform"
    assert all(len(r["topk"]) == 3 and set(r["topk"][0]) == {"index", "label", "prob"} for r in results)
    assert all(r["topk"][0]["prob"] >= r["topk"][1]["prob"] >= r["topk"][2]["prob"] for r in results)

    # the Python API gives the same answers
    api = predict_images(files, topk=3)
    for cli_item, api_item in zip(results, api, strict=True):
        assert cli_item["topk"][0]["index"] == api_item["topk"][0]["index"]
        assert abs(cli_item["topk"][0]["prob"] - api_item["topk"][0]["prob"]) < 1e-4


def test_symmetric_padding_changes_the_answers(photos: dict[str, Path], lite0: torch.nn.Module) -> None:
    """PyTorch's symmetric padding loads the same weights but shifts every strided layer by
    half a pixel: less probability on the right classes for all three photos (top-1 stays;
    it changes on harder photos such as skimage's rocket and astronaut, see bench)."""
    batch = EFFICIENTNET_LITE_PREPROCESSING([photos["cat"], photos["coffee"], photos["hopper"]])
    symmetric = cnnkit.create_model("efficientnet_lite0", pretrained=True, tf_padding=False).eval()
    with torch.no_grad():
        tf_probs, sym_probs = lite0(batch).softmax(1), symmetric(batch).softmax(1)
    for row, ids in enumerate((CAT_IDS, COFFEE_IDS, UNIFORM_IDS)):
        assert sym_probs[row, ids].sum() < tf_probs[row, ids].sum()
    assert tf_probs[2, 652] - sym_probs[2, 652] > 0.1  # Grace Hopper: 'military uniform' 0.46 -> 0.32
    assert (tf_probs - sym_probs).abs().sum(1).min() > 0.02


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["missing.jpg"], "missing.jpg does not exist"),
        (["notes.jpg"], "cannot read notes.jpg as an image"),
        (["truncated.jpg"], "cannot decode image truncated.jpg"),
        (["good.png", "--model", "efficientnet_lite9"], "unknown model 'efficientnet_lite9'"),
        (["good.png", "--model", "lenet5"], "lenet5 has no pretrained weights; pass --weights PATH"),
    ],
)
def test_cli_bad_input_is_one_clear_line(
    argv: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("notes.jpg").write_text("a text file, not a photo\n")
    Image.fromarray(np.full((32, 32, 3), 90, dtype=np.uint8)).save("good.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save("whole.jpg")
    Path("truncated.jpg").write_bytes(Path("whole.jpg").read_bytes()[:600])
    assert cli_main(["predict", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cnnkit: error: ") and message in err and "\n" not in err


def test_cli_weights_and_classes_for_any_zoo_model(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    torch.manual_seed(0)
    model = cnnkit.create_model("lenet5").eval()
    torch.save(model.state_dict(), tmp_path / "lenet.pth")
    (tmp_path / "digits.txt").write_text("".join(f"digit {i}\n" for i in range(10)))
    Image.fromarray(np.full((28, 28), 200, dtype=np.uint8)).save(tmp_path / "seven.png")
    argv = ["predict", str(tmp_path / "seven.png"), "--model", "lenet5", "--topk", "10", "--json"]
    assert (
        cli_main([*argv, "--weights", str(tmp_path / "lenet.pth"), "--classes", str(tmp_path / "digits.txt")])
        == 0
    )
    result = json.loads(capsys.readouterr().out)[0]
    assert sorted(t["label"] for t in result["topk"]) == [f"digit {i}" for i in range(10)]
    assert abs(sum(t["prob"] for t in result["topk"]) - 1.0) < 1e-5


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_pretrained_path_round_trip_and_mismatch(fmt: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    # a model with BatchNorm buffers (running stats, int64 counters) when that family is present
    name = "cifar_resnet20" if "cifar_resnet20" in cnnkit.list_models() else "lenet5"
    source = cnnkit.create_model(name).eval()
    path = tmp_path / f"weights.{fmt}"
    if fmt == "pth":
        torch.save(source.state_dict(), path)
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    loaded = cnnkit.create_model(name, pretrained=path).eval()
    x = torch.randn(2, *source.default_input_size)
    with torch.no_grad():
        assert torch.equal(source(x), loaded(x))

    # another class count: the trunk loads, the classifier is freshly initialised (timm's rule)
    seven = cnnkit.create_model(name, num_classes=7, pretrained=path).eval()
    head = seven.classifier_path
    trunk = {k: v for k, v in source.state_dict().items() if not k.startswith(head + ".")}
    assert all(torch.equal(seven.state_dict()[k], v) for k, v in trunk.items())
    assert seven.get_classifier().weight.shape[0] == 7
    with pytest.raises(CnnkitError, match="missing keys: .*unexpected keys: "):
        cnnkit.create_model("efficientnet_lite0", pretrained=path)
