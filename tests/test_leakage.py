"""cnnkit leakage: planted duplicates across splits are found; clean splits report none."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import skimage.data as sk
from PIL import Image

from cnnkit.cli import main
from cnnkit.evaluate.leakage import find_leaks, hamming_pairs, phash

PHOTOS = ["astronaut", "camera", "chelsea", "coffee", "coins", "moon", "page", "clock", "text", "rocket",
          "brick", "grass", "gravel", "immunohistochemistry", "colorwheel", "logo"]  # fmt: skip


def _photo(name: str) -> Image.Image:
    a = getattr(sk, name)()
    a = a[..., :3] if a.ndim == 3 else a
    return Image.fromarray(a.astype(np.uint8)).convert("RGB")


def _crop(image: Image.Image, box) -> Image.Image:
    w, h = image.size
    return image.crop((int(w * box[0]), int(h * box[1]), int(w * box[2]), int(h * box[3])))


def _reencode(image: Image.Image, quality: int = 70) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """train/ holds 10 photos; test/ holds 4 altered copies of train photos and 6 new photos."""
    root = tmp_path_factory.mktemp("leak")
    photos = {name: _photo(name) for name in PHOTOS}
    train, fresh = PHOTOS[:10], PHOTOS[10:]
    for i, name in enumerate(train):
        (root / "train" / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        photos[name].save(root / "train" / f"c{i % 2}" / f"{name}.png")
    copies = {
        "exact": ("astronaut", photos["astronaut"]),
        "jpeg": ("chelsea", _reencode(photos["chelsea"])),
        "resized": ("coffee", photos["coffee"].resize((150, 100), Image.BILINEAR)),
        "cropped": ("rocket", _crop(photos["rocket"], (0.06, 0.04, 0.95, 0.96))),
        "corner": ("camera", _crop(photos["camera"], (0.1, 0.1, 1.0, 1.0))),
    }
    for kind, (_, image) in copies.items():
        (root / "test" / "c0").mkdir(parents=True, exist_ok=True)
        image.save(
            root / "test" / "c0" / f"{kind}.png" if kind != "jpeg" else root / "test" / "c0" / "jpeg.jpg"
        )
    for name in fresh:
        (root / "test" / "c1").mkdir(parents=True, exist_ok=True)
        photos[name].save(root / "test" / "c1" / f"{name}.png")
    return root, copies


def test_planted_duplicates_are_found_and_nothing_else(planted):
    root, copies = planted
    pairs = find_leaks(root)
    found = {(p["a"].rsplit("/", 1)[-1], p["b"].rsplit("/", 1)[-1]): p for p in pairs}
    expected = {
        ("astronaut.png", "exact.png"): "exact",
        ("chelsea.png", "jpeg.jpg"): "near",
        ("coffee.png", "resized.png"): "near",
        ("rocket.png", "cropped.png"): "near",
        ("camera.png", "corner.png"): "near",
    }
    assert {k: v["kind"] for k, v in found.items()} == expected
    assert found[("astronaut.png", "exact.png")]["distance"] == 0
    assert all(p["split_a"] == "train" and p["split_b"] == "test" for p in pairs)


def test_a_clean_split_reports_none(planted, tmp_path):
    root, _ = planted
    for i, name in enumerate(PHOTOS):
        folder = tmp_path / ("train" if i < 10 else "test") / f"c{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        _photo(name).save(folder / f"{name}.png")
    assert find_leaks(tmp_path) == []


def test_array_splits_use_split_index_names():
    from sklearn.datasets import load_digits

    x = np.uint8(load_digits().images * 255 / 16)
    train, test = x[:1000].copy(), x[1000:1300].copy()
    test[3] = train[7]
    pairs = find_leaks({"train": train, "test": test}, crops=False)
    assert {"a": "train:7", "b": "test:3", "kind": "exact"}.items() <= pairs[0].items()
    assert len(pairs) == 1  # 8x8 digits: exact copies only, no look-alikes
    big = {
        k: np.repeat(np.repeat(v, 3, axis=1), 3, axis=2) for k, v in {"train": train, "test": test}.items()
    }
    exact = find_leaks(big, near=False)
    assert [(p["a"], p["b"], p["kind"]) for p in exact] == [("train:7", "test:3", "exact")]


def test_hamming_search_matches_brute_force():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2**63, 300, dtype=np.int64).view(np.uint64)
    b = np.concatenate(
        [a[:50] ^ np.uint64(0b1011), rng.integers(0, 2**63, 400, dtype=np.int64).view(np.uint64)]
    )
    got = hamming_pairs(a, b, 3)
    bits = lambda v: bin(int(v)).count("1")  # noqa: E731
    want = [(i, j, bits(a[i] ^ b[j])) for i in range(len(a)) for j in range(len(b)) if bits(a[i] ^ b[j]) <= 3]
    assert sorted(map(tuple, got.tolist())) == sorted(want) and len(want) >= 50
    image = np.asarray(_photo("camera").convert("L").resize((32, 32)), dtype=np.float32)
    import torch

    assert phash(torch.from_numpy(image)[None]).dtype == np.uint64


def test_cli_writes_json_and_thumbnails(planted, tmp_path, capsys):
    root, _ = planted
    assert main(["leakage", str(root), "--json", "--out", str(tmp_path)]) == 0
    pairs = json.loads(capsys.readouterr().out)
    assert len(pairs) == 5 and set(pairs[0]) >= {"a", "b", "kind", "distance"}
    assert json.loads((tmp_path / "pairs.json").read_text()) == pairs
    with Image.open(tmp_path / "pairs.png") as image:
        image.load()
        assert image.size[0] >= 800 and image.size[1] >= 400
    assert main(["leakage", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_find_copies_flags_an_input_taken_from_the_training_set(planted):
    from cnnkit.evaluate.leakage import find_copies

    root, _ = planted
    inputs = [root / "test" / "c0" / "jpeg.jpg", root / "test" / "c1" / "grass.png"]
    pairs = find_copies(inputs, root)
    assert [(p["a"].rsplit("/", 1)[-1], p["b"].rsplit("/", 1)[-1]) for p in pairs] == [
        ("chelsea.png", "jpeg.jpg")
    ]


def test_train_and_predict_warn_about_copies_of_training_images(planted, tmp_path):
    """The trainer checks its own splits, and predict checks its inputs against the run's
    training images: testing on copies of training images measures nothing."""
    import os
    import subprocess
    import sys

    root, _ = planted
    done = subprocess.run(
        [sys.executable, "-m", "cnnkit", "train", "--data", str(root), "--model", "lenet5", "--epochs", "1",
         "--in-chans", "1", "--batch-size", "4", "--val-fraction", "0.2", "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "duplicate pairs across this run's splits" in done.stderr and "cnnkit leakage" in done.stderr
    copy, fresh = root / "test" / "c0" / "jpeg.jpg", root / "test" / "c1" / "grass.png"
    done = subprocess.run(
        [sys.executable, "-m", "cnnkit", "predict", str(copy), str(fresh), "--model", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "jpeg.jpg" in warnings[0] and "chelsea.png" in warnings[0]
