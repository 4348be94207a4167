"""cnnkit.features on every kind of source: an image folder of real photos (names are file
paths; a file whose bytes change is recomputed, alone), MNIST IDX files, and a trained probe
put back on its backbone (``FeatureClassifier``) predicting what the head predicted."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as photos

import cnnkit
from cnnkit.features import FeatureClassifier, Features, extract_features, fit_head
from cnnkit.features.extract import normalize, to_model_size
from cnnkit.preprocess import Preprocess

PRE = Preprocess(size=(28, 28), channels=1, mean=(0.5,), std=(0.5,))


def lenet() -> torch.nn.Module:
    torch.manual_seed(0)
    return cnnkit.create_model("lenet5", num_classes=10)


@pytest.fixture
def folder(tmp_path):
    """cat/ and coffee/ with eight 64x64 crops each of scikit-image's real photos."""
    root = tmp_path / "photos"
    for name, image in (("cat", photos.chelsea()), ("coffee", photos.coffee())):
        (root / name).mkdir(parents=True)
        for i in range(8):
            top, left = 20 * i, 25 * i
            crop = Image.fromarray(image[top : top + 200, left : left + 200]).resize((64, 64))
            crop.save(root / name / f"{name}{i}.{'png' if i % 2 else 'jpg'}")
    return root


def test_image_folder_names_and_a_changed_file(folder, tmp_path):
    net = lenet()
    kwargs = dict(
        preprocess=PRE, cache_dir=tmp_path / "cache", val_fraction=0.25, test_fraction=0.25, progress=False
    )
    feats = extract_features(net, folder, **kwargs)
    assert len(feats) == 16 and feats.classes == ["cat", "coffee"]
    assert sorted(feats.names) == sorted(str(p.relative_to(folder)) for p in folder.rglob("*.*"))
    # each row is the network's code of the file it names, preprocessed as for prediction
    for row in (0, 5):
        with torch.no_grad():
            x = PRE([folder / feats.names[row]])
            want = net.forward_head(net.forward_features(x), pre_logits=True)
        np.testing.assert_allclose(feats.embeddings[row], want[0].numpy(), rtol=1e-4, atol=1e-4)
    # same bytes: cached; new bytes in one test file: that split alone is recomputed
    assert extract_features(net, folder, **kwargs).cache_hit
    victim = feats.names[np.flatnonzero(feats.splits == "test")[0]]
    Image.open(folder / victim).transpose(Image.FLIP_LEFT_RIGHT).save(folder / victim)
    again = extract_features(net, folder, **kwargs)
    assert {s: v["cache_hit"] for s, v in again.meta["splits"].items()} == {
        "train": True,
        "val": True,
        "test": False,
    }


def test_mnist_idx_files(mnist_raw, tmp_path):
    feats = extract_features(
        lenet(), mnist_raw, preprocess=PRE, limit=100, cache_dir=tmp_path, progress=False
    )
    assert {s: int((feats.splits == s).sum()) for s in feats.split_names} == {
        "train": 90,
        "val": 10,
        "test": 100,
    }
    assert feats.names[-1] == "test/99" and feats.embeddings.shape == (200, 84)


def test_feature_classifier_predicts_like_the_head_on_codes(tmp_path):
    net = lenet()
    feats = extract_features(
        net, "digits", preprocess=PRE, split=["train", "test"], cache_dir=False, progress=False
    )
    result = fit_head(feats, head="linear", epochs=5)
    model = FeatureClassifier(net, result.head).train()
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    test = feats.split("test")
    from sklearn.datasets import load_digits

    images = load_digits().images[[int(n.split("/")[1]) for n in test.names[:8]]]
    x = torch.from_numpy(np.round(images * 255 / 16).clip(0, 255).astype(np.uint8)[:, None])
    with torch.no_grad():
        logits = model.eval()(normalize(to_model_size(x, PRE), PRE))
        on_codes = result.head(torch.from_numpy(test.embeddings[:8]))
    torch.testing.assert_close(logits, on_codes, rtol=1e-4, atol=1e-4)


def test_cli_one_line_error_for_an_image_that_fails_to_decode(folder, tmp_path, capsys):
    # a JPEG whose entropy-coded data is overwritten: it passes the folder scan (header, end
    # marker) and fails when decoded, in a loader worker
    victim = folder / "cat" / "cat2.jpg"
    raw = bytearray(victim.read_bytes())
    sos = raw.index(b"\xff\xda")
    raw[sos + 20 : sos + 320] = b"\xff" * 300
    victim.write_bytes(bytes(raw))
    from cnnkit.cli import main

    out = tmp_path / "f.npz"
    code = main(["features", "efficientnet_lite0", str(folder), "--out", str(out), "--no-cache", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("cnnkit: error: cannot decode image ") and "cat2.jpg" in err
    assert err.count("\n") == 1 and not out.exists()


def test_cli_zoo_model_with_a_weights_file(tmp_path, capsys):
    net = lenet()
    torch.save(net.state_dict(), tmp_path / "lenet.pth")
    from cnnkit.cli import main

    out = tmp_path / "f.npz"
    argv = ["features", "lenet5", "digits", "--weights", str(tmp_path / "lenet.pth"), "--out", str(out)]
    assert main([*argv, "--split", "test", "--no-cache", "--quiet"]) == 0
    want = extract_features(net, "digits", split="test", cache_dir=False, progress=False)
    np.testing.assert_allclose(Features.load(out).embeddings, want.embeddings, rtol=1e-5, atol=1e-6)
    capsys.readouterr()
    torch.save(cnnkit.create_model("resnet18").state_dict(), tmp_path / "resnet.pth")
    argv[4] = str(tmp_path / "resnet.pth")
    assert main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnkit: error: ") and err.count("\n") == 1
