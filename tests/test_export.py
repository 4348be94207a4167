"""``cnnkit export``: ONNX and TorchScript files that answer like the PyTorch model.

Real photos (skimage's chelsea, coffee, astronaut) through the shipped EfficientNet-Lite0
weights; a real (tiny, one-epoch) digits run for the run-directory path. onnxruntime runs
the ONNX files; the TF-padded EfficientNet must be right at input sizes other than the one
it was traced at.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from cnnkit.cli import main
from cnnkit.export import export
from cnnkit.runtime import OnnxRuntime, load_runtime, predict_paths

PHOTOS = ("chelsea", "coffee", "astronaut")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list:
    skdata = pytest.importorskip("skimage.data")
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for name in PHOTOS:
        path = folder / f"{name}.jpg"
        Image.fromarray(getattr(skdata, name)()).save(path, quality=95)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def lite0():
    from cnnkit.runtime import load_torch_model

    return load_torch_model("efficientnet_lite0")[::2]  # (model, preprocess)


@pytest.fixture(scope="module")
def lite0_onnx(tmp_path_factory):
    return export("efficientnet_lite0", "onnx", tmp_path_factory.mktemp("onnx") / "lite0.onnx")


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    import cnnkit

    out = tmp_path_factory.mktemp("run")
    cnnkit.fit("lenet5", "digits", out=str(out), epochs=1, verbose=0)
    return out


def test_lite0_onnx_matches_torch_on_photos_at_two_sizes(lite0, lite0_onnx, photos):
    from cnnkit.imagenet import imagenet_classes

    (model, pre), classes = lite0, list(imagenet_classes())
    meta = json.loads(lite0_onnx.with_name(lite0_onnx.name + ".json").read_text())
    assert meta["classes"] == classes and meta["input"]["dynamic"] == ["batch", "height", "width"]
    assert meta["preprocess"] == pre.to_dict()  # the weights record's transform, written beside the model
    session = OnnxRuntime(lite0_onnx)
    for size in (224, 256):
        batch = dataclasses.replace(pre, size=(size, size))(photos)  # a batch of 3: dynamic batch
        with torch.inference_mode():
            want = model(batch).numpy()
        got = session.predict(batch)
        assert got.shape == want.shape == (3, 1000)
        assert np.array_equal(got.argmax(1), want.argmax(1)), f"top-1 differs at {size}px"
        assert np.abs(got - want).max() < 1e-3 * np.abs(want).max(), f"logits differ at {size}px"
    labels = [row["topk"][0]["label"] for row in predict_paths(load_runtime(lite0_onnx, "onnx"), photos)]
    assert labels[:2] == ["Egyptian cat", "espresso"]


def test_frozen_padding_would_be_wrong_at_another_size():
    """Why TraceableConv2dSame exists: a plain trace of Conv2dSame freezes the padding."""
    from cnnkit.export import exportable
    from cnnkit.models.efficientnet_lite import Conv2dSame

    conv = nn.Sequential(Conv2dSame(3, 4, 3, stride=2)).eval()
    even, odd = torch.randn(1, 3, 224, 224), torch.randn(1, 3, 225, 225)  # TF pads 1 vs 2 pixels here
    plain = torch.jit.trace(conv, even, check_trace=False)
    fixed = torch.jit.trace(exportable(conv), even, check_trace=False)
    with torch.inference_mode():
        want = conv(odd)
        assert plain(odd).shape != want.shape or (plain(odd) - want).abs().max() > 1e-3
        assert torch.allclose(fixed(odd), want, atol=1e-5)


def test_lite0_torchscript(lite0, photos, tmp_path):
    out = export("efficientnet_lite0", "torchscript", tmp_path / "lite0.pt")
    model, pre = lite0
    scripted = torch.jit.load(str(out))
    batch = dataclasses.replace(pre, size=(256, 256))(photos)  # not the traced size
    with torch.inference_mode():
        got, want = scripted(batch), model(batch)
    assert torch.equal(got.argmax(1), want.argmax(1))
    assert (got - want).abs().max() < 1e-4
    assert json.loads((tmp_path / "lite0.pt.json").read_text())["format"] == "torchscript"


def test_digits_run_exports_with_its_preprocessing(digits_run, tmp_path, capsys):
    from sklearn.datasets import load_digits

    digits = load_digits()
    paths = []
    for i in range(20):
        path = tmp_path / f"digit{i}.png"
        Image.fromarray((digits.images[i] * 255 / 16).astype(np.uint8)).save(path)
        paths.append(path)
    assert main(["export", str(digits_run)]) == 0
    assert "model.onnx" in capsys.readouterr().out
    onnx_file = digits_run / "model.onnx"
    meta = json.loads((digits_run / "model.onnx.json").read_text())
    norm = json.loads((digits_run / "normalization.json").read_text())
    assert meta["preprocess"]["channels"] == 1 and meta["preprocess"]["mean"] == pytest.approx(norm["mean"])
    assert meta["classes"] == json.loads((digits_run / "classes.json").read_text())
    via_torch = predict_paths(load_runtime(digits_run, "torch"), paths, topk=3, batch_size=8)
    via_onnx = predict_paths(load_runtime(onnx_file, "onnx"), paths, topk=3, batch_size=8)
    for a, b in zip(via_torch, via_onnx, strict=True):
        assert a["topk"][0]["label"] == b["topk"][0]["label"]
        assert a["topk"][0]["prob"] == pytest.approx(b["topk"][0]["prob"], abs=1e-4)


def test_export_errors_are_one_line(tmp_path, capsys):
    assert main(["export", str(tmp_path / "no-such-run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cnnkit: error:") and "\n" not in err
    out_dir = tmp_path / "folder"
    out_dir.mkdir()
    assert main(["export", "efficientnet_lite0", "--out", str(out_dir)]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert not list(out_dir.iterdir())  # nothing half-written


def test_onnx_runtime_refuses_a_damaged_file(tmp_path):
    from cnnkit.errors import CnnkitError

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all")
    (tmp_path / "bad.onnx.json").write_text(json.dumps({"classes": ["a"], "preprocess": {}}))
    with pytest.raises(CnnkitError, match="cannot load ONNX model"):
        load_runtime(bad, "onnx")
    with pytest.raises(CnnkitError, match="no sidecar"):
        (tmp_path / "bad.onnx.json").unlink()
        load_runtime(bad, "onnx")
