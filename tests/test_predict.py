"""``cnnkit predict`` on real photos: every model with shipped weights works offline through
its weights record, and every bad image - missing, empty, not an image, truncated, a folder,
a decompression bomb - is one ``cnnkit: error:`` line while the good ones are still answered."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_preprocess import png_header

import cnnkit.models as models
from cnnkit.cli import main as cli_main
from cnnkit.predict import load_predictor, predict_with_model

skimage_data = pytest.importorskip("skimage.data")
CAT_FAMILY = {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat", "lynx"}


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    Image.fromarray(skimage_data.chelsea()).save(folder / "chelsea.jpg", quality=95)
    Image.fromarray(skimage_data.coffee()).save(folder / "coffee.png")
    return folder


@pytest.mark.parametrize("name", models.models_with_weights())
def test_every_model_with_weights_predicts_offline(
    name: str, photos: Path, capsys: pytest.CaptureFixture
) -> None:
    record = models.get_weights(name)
    net, classes, preprocess = load_predictor(name)
    assert preprocess == record.preprocess and classes == record.class_names()
    assert cli_main(["predict", str(photos / "chelsea.jpg"), "--model", name, "--json", "--topk", "3"]) == 0
    top = json.loads(capsys.readouterr().out)[0]["topk"]
    assert top[0]["label"] in CAT_FAMILY, top


@pytest.mark.slow
def test_compile_option_answers_like_the_default(photos: Path, capsys: pytest.CaptureFixture) -> None:
    """``--compile`` (a real TorchInductor build of EfficientNet-Lite0) gives the same answer."""
    images = [str(photos / "chelsea.jpg"), str(photos / "coffee.png")]
    answers = []
    for extra in ([], ["--compile"]):
        assert cli_main(["predict", *images, "--json", "--topk", "3", *extra]) == 0
        answers.append(json.loads(capsys.readouterr().out))
    for plain, compiled in zip(*answers, strict=True):
        assert [t["index"] for t in compiled["topk"]] == [t["index"] for t in plain["topk"]]
        assert compiled["topk"][0]["prob"] == pytest.approx(plain["topk"][0]["prob"], abs=1e-3)


def test_each_bad_image_is_one_line_and_the_good_ones_are_answered(
    photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("notes.jpg").write_text("a text file, not a photo\n")
    Path("zero.png").write_bytes(b"")
    jpeg = (photos / "chelsea.jpg").read_bytes()
    Path("truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    Path("bomb.png").write_bytes(png_header(50_000, 50_000))
    Path("folder").mkdir()
    bad = {
        "missing.jpg": "does not exist",
        "zero.png": "is empty (0 bytes)",
        "notes.jpg": "cannot read notes.jpg as an image",
        "truncated.jpg": "cannot decode image truncated.jpg",
        "bomb.png": "bomb.png (2,500,000,000 pixels) has more pixels than the limit",
        "folder": "folder is a directory",
    }
    good = [str(photos / "chelsea.jpg"), str(photos / "coffee.png")]
    argv = ["predict", good[0], *bad, good[1], "--json", "--topk", "1"]
    assert cli_main(argv) == 2
    out, err = capsys.readouterr()
    assert [r["image"] for r in json.loads(out)] == good
    lines = err.splitlines()
    assert len(lines) == len(bad) and all(line.startswith("cnnkit: error: ") for line in lines)
    for line, message in zip(lines, bad.values(), strict=True):
        assert message in line, line
    assert "Traceback" not in err


def test_pixel_limit_option_and_environment(
    photos: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    photo = str(photos / "chelsea.jpg")  # 451 x 300 = 135,300 pixels
    limited = subprocess.run(  # the real console command, as a user runs it
        [sys.executable, "-m", "cnnkit", "predict", photo, "--max-image-pixels", "100000"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert limited.returncode == 2 and limited.stdout == ""
    assert limited.stderr.strip() == (
        f"cnnkit: error: image {photo} (451x300) has more pixels than the limit of 100,000 (a decompression "
        "bomb?). Raise it with --max-image-pixels or CNNKIT_MAX_IMAGE_PIXELS if the image is genuine."
    )
    monkeypatch.setenv("CNNKIT_MAX_IMAGE_PIXELS", "135299")
    assert cli_main(["predict", photo, "--topk", "1"]) == 2
    assert "limit of 135,299" in capsys.readouterr().err
    monkeypatch.setenv("CNNKIT_MAX_IMAGE_PIXELS", "10")
    assert cli_main(["predict", photo, "--topk", "1", "--max-image-pixels", "135300"]) == 0  # the option wins
    assert capsys.readouterr().out.splitlines()[0] == photo
    monkeypatch.setenv("CNNKIT_MAX_IMAGE_PIXELS", "lots")
    assert cli_main(["predict", photo]) == 2
    assert "is not a whole number of pixels" in capsys.readouterr().err


def test_arrays_and_bytes_predict_like_files(photos: Path) -> None:
    net, classes, preprocess = load_predictor("efficientnet_lite0")
    path = photos / "coffee.png"
    inputs = [path, path.read_bytes(), np.asarray(Image.open(path)), Image.open(path)]
    results = predict_with_model(net, classes, preprocess, inputs, topk=2)
    assert [r["image"] for r in results] == [str(path), "<bytes>", "<ndarray>", "<PngImageFile>"]
    assert all(r["topk"] == results[0]["topk"] for r in results)
    assert results[0]["topk"][0]["label"] in {"espresso", "cup", "coffee mug"}


def test_imagenet_dog_block() -> None:
    from cnnkit.imagenet import DOG_CLASSES, imagenet_classes

    names = imagenet_classes()
    assert len(DOG_CLASSES) == 118 and names[DOG_CLASSES[0]] == "Chihuahua"
    assert names[DOG_CLASSES[-1]] == "Mexican hairless" and names[DOG_CLASSES[-1] + 1] == "timber wolf"
