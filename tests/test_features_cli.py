"""cnnkit.features with the ImageNet backbone on real CIFAR-10 images, from a ``cnnkit train``
run directory, and ``cnnkit features`` on the command line (output file, one-line errors)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import cnnkit
from cnnkit.cli import main
from cnnkit.errors import CnnkitError
from cnnkit.features import Features, extract_features, fit_head, load_backbone

SIDE = 64  # small inputs keep the pretrained backbone fast on 2 CPU cores


@pytest.fixture(scope="module")
def lite0():
    backbone = load_backbone("efficientnet_lite0")
    pre = dataclasses.replace(backbone.preprocess, size=(SIDE, SIDE), resize_size=None)
    return dataclasses.replace(backbone, preprocess=pre)


@pytest.fixture(scope="module")
def cifar_feats(lite0, tmp_path_factory, cifar10_dir_module):
    cache = tmp_path_factory.mktemp("cache")
    return extract_features(lite0, cifar10_dir_module, limit=200, cache_dir=cache, progress=False), cache


@pytest.fixture(scope="module")
def cifar10_dir_module():
    from conftest import need

    return need("datasets", "cifar-10-batches-py")


def test_linear_probe_on_imagenet_features_of_real_cifar(cifar_feats):
    feats, _ = cifar_feats
    assert feats.embeddings.shape == (400, 1280)
    assert feats.classes[:3] == ["airplane", "automobile", "bird"]
    assert {s: int((feats.splits == s).sum()) for s in feats.split_names} == {
        "train": 180,
        "val": 20,
        "test": 200,
    }
    assert feats.names[-1] == "test/199"
    result = fit_head(feats, head="linear", epochs=40, lr=3e-3)
    # 180 training images at 64 px: ImageNet features carry CIFAR-10 far above chance (10%)
    assert result.test_acc > 0.35, result.test_acc  # measured: 0.445


def test_cut_at_a_stage_gives_its_pooled_feature_map(lite0, cifar_feats, cifar10_dir_module):
    _, cache = cifar_feats
    net, pre = lite0.net, lite0.preprocess
    stage = net.feature_info[2]
    feats = extract_features(
        lite0, cifar10_dir_module, cut=stage["name"], limit=20, split="test", cache_dir=cache, progress=False
    )
    assert feats.embeddings.shape == (20, stage["num_chs"])
    from cnnkit.data.sources import load_cifar_data
    from cnnkit.features.extract import normalize, to_model_size

    x = load_cifar_data(cifar10_dir_module, limit=2).splits["test"][0]
    with torch.no_grad():
        want = (
            net.eval().forward_intermediate(normalize(to_model_size(x, pre), pre), stage["name"]).mean((2, 3))
        )
    np.testing.assert_allclose(feats.embeddings[:2], want.numpy(), rtol=1e-4, atol=1e-5)
    with pytest.raises(CnnkitError, match=r"valid cut points: stages\.0, stages\.1"):
        extract_features(lite0, "digits", cut="layer9", cache_dir=cache)


def test_features_of_a_training_run(tmp_path, monkeypatch):
    monkeypatch.delenv("CNNKIT_FEATURES_CACHE", raising=False)
    run = cnnkit.fit("lenet5", "digits", epochs=1, out=str(tmp_path / "run"), verbose=0).run_dir
    feats = extract_features(run, "digits", split="test", progress=False)
    assert not feats.cache_hit and (run / "features").is_dir()  # cached inside the run
    assert extract_features(run, "digits", split="test", progress=False).cache_hit
    # the embeddings are the trained network's pre-logits under the run's own preprocessing
    from cnnkit.runs import Run

    loaded = Run.load(run)
    net = loaded.load_model()
    result = fit_head(extract_features(run, "digits", progress=False), epochs=20, lr=3e-3)
    assert feats.embeddings.shape == (180, net.num_features) and result.test_acc > 0.5


def test_cli_writes_the_npz(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CNNKIT_FEATURES_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "codes.npz"
    argv = ["features", "efficientnet_lite0", "digits", "--out", str(out), "--split", "test"]
    assert main([*argv, "--image-size", "48", "--quiet"]) == 0
    line = capsys.readouterr().out
    assert "180 x 1280 embeddings" in line and "computed" in line
    feats = Features.load(out)
    assert feats.embeddings.shape == (180, 1280) and set(feats.splits) == {"test"}
    with np.load(out) as z:  # plain arrays anyone can read
        assert z["names"].dtype.kind == "U" and z["labels"].dtype == np.int64
    assert main([*argv, "--image-size", "48", "--quiet"]) == 0
    assert "cache hit" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["efficentnet_lite0", "digits"], "unknown model"),
        (["resnet18", "digits"], "has no pretrained weights"),
        (["./no_such_run", "digits"], "not a cnnkit run directory"),
        (["efficientnet_lite0", "no/such/folder"], "does not exist"),
        (["efficientnet_lite0", "digits", "--cut", "stage9"], "valid cut points"),
        (["efficientnet_lite0", "digits", "--batch-size", "0"], "--batch-size must be at least 1"),
    ],
)
def test_cli_errors_are_one_line(args, message, tmp_path, capsys):
    code = main(["features", *args, "--out", str(tmp_path / "f.npz"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("cnnkit: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "f.npz").exists()


def test_cli_run_dir_that_is_a_plain_folder(tmp_path, capsys):
    assert main(["features", str(tmp_path), "digits", "--out", str(tmp_path / "f.npz")]) == 2
    assert "not a cnnkit run directory" in capsys.readouterr().err
