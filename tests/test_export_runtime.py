"""``cnnkit.runtime``: torch and onnx runtimes behind one ``predict(batch) -> logits``.

Both answer like ``cnnkit predict`` on real photos; the threaded decoding pipeline keeps
the order of the files and reports bad ones; the channels_last choice never changes the
answer, only the speed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.errors import CnnkitError
from cnnkit.runtime import GRAPH_KINDS, TorchRuntime, load_runtime, predict_paths, topk_rows


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list:
    skdata = pytest.importorskip("skimage.data")
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for name in ("chelsea", "coffee", "astronaut", "rocket"):
        path = folder / f"{name}.jpg"
        Image.fromarray(getattr(skdata, name)()).save(path, quality=90)
        paths.append(path)
    return paths


def test_torch_runtime_answers_like_cnnkit_predict(photos):
    """(The onnx runtime against torch on the same photos: tests/test_export.py.)"""
    from cnnkit.predict import predict_images

    want = predict_images(photos, topk=3)
    loaded = load_runtime("efficientnet_lite0", "torch")
    got = predict_paths(loaded, photos, topk=3, batch_size=3, workers=2)
    assert [g["image"] for g in got] == [str(p) for p in photos]  # order kept across batches
    for g, w in zip(got, want, strict=True):
        assert [t["index"] for t in g["topk"]] == [t["index"] for t in w["topk"]]
        assert g["topk"][0]["prob"] == pytest.approx(w["topk"][0]["prob"], abs=1e-4)


def test_bad_files_are_reported_not_fatal(photos, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(photos[0].read_bytes()[:500])
    loaded = load_runtime("efficientnet_lite0", "torch")
    errors: list[tuple[str, str]] = []
    got = predict_paths(
        loaded, [photos[0], broken, tmp_path / "missing.jpg", photos[1]], topk=1, errors=errors
    )
    assert [g["image"] for g in got] == [str(photos[0]), str(photos[1])]
    assert [e[0] for e in errors] == [str(broken), str(tmp_path / "missing.jpg")]
    with pytest.raises(CnnkitError, match="missing.jpg"):
        predict_paths(loaded, [tmp_path / "missing.jpg"])


def test_channels_last_changes_speed_not_answers():
    from cnnkit.models.registry import create_model

    model = create_model("cifar_resnet20").eval()
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    dense = TorchRuntime(model, channels_last=False).predict(x)
    nhwc = TorchRuntime(model, channels_last=True).predict(x)
    trial = TorchRuntime(model, channels_last=None)
    chosen = trial.predict(x)
    assert isinstance(trial.channels_last, bool)  # the trial decided
    np.testing.assert_allclose(nhwc, dense, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(chosen, dense, rtol=1e-4, atol=1e-4)
    # the re-laid-out weights still take gradients (Grad-CAM uses the served model)
    model(x[:1].requires_grad_()).sum().backward()


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_lite0"])
def test_frozen_graph_answers_like_eager(photos, name):
    """The traced + frozen + optimised graph (BN folded, TF 'same' padding traced at the
    preprocessing's size) gives the eager logits at batch 1, where it was traced, and at 3."""
    from cnnkit.models.registry import create_model
    from cnnkit.preprocess import Preprocess

    model = create_model(name, pretrained=name == "efficientnet_lite0").eval()
    x = Preprocess(size=(224, 224))(photos[:3]).numpy()
    eager = TorchRuntime(model, channels_last=False, optimize=False)
    frozen = TorchRuntime(model, channels_last=False, optimize="always")
    for batch in (x[:1], x):
        np.testing.assert_allclose(frozen.predict(batch), eager.predict(batch), rtol=1e-3, atol=1e-3)
    assert frozen.frozen is not None and eager.frozen is None
    model(torch.as_tensor(x[:1]).requires_grad_()).sum().backward()  # the eager model still trains


def test_topk_rows_and_errors():
    rows = topk_rows(np.array([[0.0, 2.0, 1.0]]), ["a", "b", "c"], k=5)
    assert [t["label"] for t in rows[0]] == ["b", "c", "a"]
    assert sum(t["prob"] for t in rows[0]) == pytest.approx(1.0)
    with pytest.raises(CnnkitError, match="3 outputs but has 2 class names"):
        topk_rows(np.zeros((1, 3)), ["a", "b"])
    with pytest.raises(CnnkitError, match="unknown runtime"):
        load_runtime("efficientnet_lite0", "tensorrt")
    with pytest.raises(CnnkitError, match="--runtime onnx"):
        load_runtime("model.onnx", "torch")


def test_a_small_job_is_answered_before_any_race_and_a_later_call_still_races(photos):
    """``predict_paths`` on two photos runs the eager model (the race would cost more than
    the job); the runtime keeps its race for the next plain call, as the server makes."""
    loaded = load_runtime("efficientnet_lite0")
    runtime = loaded.runtime
    small = predict_paths(loaded, photos[:2], topk=1)
    assert runtime.timings == {} and runtime.choice == "eager" and runtime.frozen is None
    runtime.predict(torch.zeros(1, 3, *loaded.preprocess.size))
    assert {"eager nchw", "eager nhwc"} <= set(runtime.timings)  # raced now
    again = predict_paths(loaded, photos[:2], topk=1)
    assert [r["topk"][0]["label"] for r in again] == [r["topk"][0]["label"] for r in small]


def test_race_times_every_pairing_and_keeps_one():
    from cnnkit.models.registry import create_model

    model = create_model("cifar_resnet20").eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    runtime = TorchRuntime(model)
    got = runtime.predict(x)
    assert set(runtime.timings) == {
        f"{kind} {layout}" for kind in ("eager", *GRAPH_KINDS) for layout in ("nchw", "nhwc")
    }
    layout = "nhwc" if runtime.channels_last else "nchw"
    assert runtime.timings[f"{runtime.choice} {layout}"] == min(
        t for k, t in runtime.timings.items() if k.startswith(runtime.choice + " ")
    )  # the winner is the fastest of its kind
    np.testing.assert_allclose(
        got, TorchRuntime(model, False, optimize=False).predict(x), rtol=1e-3, atol=1e-3
    )


def test_compiled_runtime_pads_and_splits_to_its_one_batch_size(photos):
    """torch.compile (Inductor, a real C++ build) on a real model: compiled at the first
    batch's size (2), it answers batches of 1 (padded) and 3 (split) like the eager model."""
    from cnnkit.models.registry import create_model
    from cnnkit.preprocess import Preprocess

    model = create_model("cifar_resnet20").eval()
    x = Preprocess(size=(32, 32))(photos[:3]).numpy()
    eager = TorchRuntime(model, channels_last=False, optimize=False)
    compiled = TorchRuntime(model, optimize="compile")
    np.testing.assert_allclose(compiled.predict(x[:2]), eager.predict(x[:2]), rtol=1e-3, atol=1e-3)
    assert compiled.choice == "compiled" and compiled.batch == 2
    for batch in (x[:1], x):
        np.testing.assert_allclose(compiled.predict(batch), eager.predict(batch), rtol=1e-3, atol=1e-3)
