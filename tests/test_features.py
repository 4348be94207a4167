"""cnnkit.features: the on-disk cache is reused when nothing changed and recomputed when the
model, weights, cut, preprocessing, views or data change; the embeddings are what the
network computes; heads train on them.

Real data (scikit-learn's digits) and a real zoo network (LeNet-5, seeded); the backbone's
forward passes are counted with a hook on its first convolution.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn
from sklearn.datasets import load_digits

import cnnkit
from cnnkit.errors import CnnkitError
from cnnkit.features import Features, extract_features, fit_head, make_head, stage_names
from cnnkit.preprocess import Preprocess

PRE = Preprocess(size=(28, 28), channels=1, mean=(0.5,), std=(0.5,))


class Counter:
    """Counts the images that went through a network's first convolution."""

    def __init__(self, net: nn.Module) -> None:
        self.images = 0
        first = next(m for m in net.modules() if isinstance(m, nn.Conv2d))
        first.register_forward_hook(self._hook)

    def _hook(self, _m: nn.Module, inputs: tuple[torch.Tensor, ...], _o: torch.Tensor) -> None:
        self.images += inputs[0].shape[0]

    def take(self) -> int:
        n, self.images = self.images, 0
        return n


def lenet() -> nn.Module:
    torch.manual_seed(0)
    return cnnkit.create_model("lenet5", num_classes=10)


def a_cut(net: nn.Module) -> str:
    """An early cut point: the first stage of the model's metadata, else its second conv."""
    return (stage_names(net) or ["conv2"])[0]


@pytest.fixture
def env(tmp_path):
    net = lenet()
    counter = Counter(net)
    first = extract_features(net, "digits", preprocess=PRE, cache_dir=tmp_path, progress=False)
    assert not first.cache_hit and counter.take() == 1797
    return net, counter, first, tmp_path


def test_first_call_computes_the_real_embeddings(env):
    net, _, feats, _ = env
    assert feats.embeddings.shape == (1797, net.num_features) and feats.embeddings.dtype == np.float32
    assert feats.split_names == ["train", "val", "test"] and feats.classes == [str(i) for i in range(10)]
    # row i is the network's pre-logits of the image its name points to
    digits = load_digits()
    pick = [0, 500, 1700]
    names = feats.names[pick]
    source = [int(n.split("/")[1]) for n in names]
    assert all(n.startswith("train/") for n in names)
    np.testing.assert_array_equal(feats.labels[pick], digits.target[source])
    x = torch.from_numpy(np.round(digits.images[source] * 255 / 16).clip(0, 255)[:, None]).float() / 255
    x = torch.nn.functional.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
    with torch.no_grad():
        want = net.forward_head(net.forward_features((x - 0.5) / 0.5), pre_logits=True)
    np.testing.assert_allclose(feats.embeddings[pick], want.numpy(), rtol=1e-4, atol=1e-5)


def test_reused_when_nothing_changes(env):
    net, counter, first, cache = env
    again = extract_features(net, "digits", preprocess=PRE, cache_dir=cache, progress=False)
    assert again.cache_hit and counter.take() == 0
    for name in ("embeddings", "labels", "names", "splits"):
        np.testing.assert_array_equal(getattr(again, name), getattr(first, name))
    # one split alone comes from the same entries
    test = extract_features(net, "digits", preprocess=PRE, cache_dir=cache, split="test", progress=False)
    assert test.cache_hit and counter.take() == 0 and len(test) == 180


def test_new_weights_invalidate(env):
    net, _, first, cache = env
    tuned = copy.deepcopy(net)
    with torch.no_grad():
        tuned.fc2.weight[0, 0] += 0.5
    counter = Counter(tuned)
    feats = extract_features(tuned, "digits", preprocess=PRE, cache_dir=cache, progress=False)
    assert not feats.cache_hit and counter.take() == 1797
    assert not np.allclose(feats.embeddings, first.embeddings)
    # BatchNorm-style buffers count as weights too: a changed buffer is a changed model
    tuned.register_buffer("running_thing", torch.zeros(3))
    assert not extract_features(tuned, "digits", preprocess=PRE, cache_dir=cache, progress=False).cache_hit


def test_cut_and_preprocessing_and_model_name_invalidate(env):
    net, counter, first, cache = env
    cut = extract_features(net, "digits", preprocess=PRE, cut=a_cut(net), cache_dir=cache, progress=False)
    assert not cut.cache_hit and counter.take() == 1797
    assert cut.embeddings.shape[1] != first.embeddings.shape[1]
    other = Preprocess(size=(28, 28), channels=1, mean=(0.4,), std=(0.5,))
    assert not extract_features(net, "digits", preprocess=other, cache_dir=cache, progress=False).cache_hit
    assert counter.take() == 1797
    renamed = copy.deepcopy(net)
    renamed.model_name = "lenet5_variant"
    assert not extract_features(renamed, "digits", preprocess=PRE, cache_dir=cache, progress=False).cache_hit
    # and each of those is now cached in turn
    assert extract_features(
        net, "digits", preprocess=PRE, cut=a_cut(net), cache_dir=cache, progress=False
    ).cache_hit
    assert counter.take() == 0


def test_changed_data_invalidates_only_the_split_that_holds_it(tmp_path):
    digits = load_digits()
    x = np.round(digits.images * 255 / 16).clip(0, 255).astype(np.uint8)
    y = digits.target
    net = lenet()
    counter = Counter(net)
    first = extract_features(net, (x, y), preprocess=PRE, cache_dir=tmp_path, progress=False)
    counter.take()
    row = int(np.flatnonzero(first.splits == "val")[3])
    source = int(first.names[row].split("/")[1])
    x2 = x.copy()
    x2[source, 4, 4] = 255 - x2[source, 4, 4]
    second = extract_features(net, (x2, y), preprocess=PRE, cache_dir=tmp_path, progress=False)
    hits = {s: info["cache_hit"] for s, info in second.meta["splits"].items()}
    assert hits == {"train": True, "val": False, "test": True}
    assert counter.take() == int((first.splits == "val").sum())
    assert not np.allclose(second.embeddings[row], first.embeddings[row])


def test_augmented_views(tmp_path):
    net = lenet()
    counter = Counter(net)
    feats = extract_features(
        net, "digits", preprocess=PRE, views=2, augment="light", cache_dir=tmp_path, progress=False
    )
    n_train = int((feats.splits == "train").sum())
    assert counter.take() == 1797 + 2 * n_train
    assert feats.views.shape == (2, 1797, net.num_features)
    train = feats.split("train")
    assert not np.allclose(train.views[0], train.embeddings)  # augmented
    assert not np.allclose(train.views[0], train.views[1])  # two different views
    test = feats.split("test")
    np.testing.assert_array_equal(test.views[1], test.embeddings)  # evaluation rows stay plain
    again = extract_features(
        net, "digits", preprocess=PRE, views=2, augment="light", cache_dir=tmp_path, progress=False
    )
    assert again.cache_hit and counter.take() == 0
    np.testing.assert_array_equal(again.views, feats.views)
    # val/test entries do not depend on the views: asking without views recomputes only train
    plain = extract_features(net, "digits", preprocess=PRE, cache_dir=tmp_path, progress=False)
    assert [info["cache_hit"] for info in plain.meta["splits"].values()] == [False, True, True]
    result = fit_head(feats, head="linear", epochs=2)
    assert len(result.history) == 2


def test_fit_head_learns_and_is_deterministic(env):
    _, _, feats, _ = env
    a = fit_head(feats, head="mlp", epochs=15, lr=3e-3, seed=1)
    b = fit_head(feats, head="mlp", epochs=15, lr=3e-3, seed=1)
    assert [r["train_loss"] for r in a.history] == [r["train_loss"] for r in b.history]
    assert a.test_acc == b.test_acc
    # a random-init LeNet's codes are still far better than chance (10%) on digits
    assert a.test_acc > 0.4 and a.best_val_acc == max(r["val_acc"] for r in a.history)
    assert a.history[-1]["train_loss"] < a.history[0]["train_loss"]
    kinds = [type(m) for m in a.head]
    assert kinds == [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    assert isinstance(make_head("linear", 84, 10), nn.Linear)


def test_record_roundtrip_and_bad_input(env, tmp_path):
    net, _, feats, cache = env
    path = feats.save(tmp_path / "feats.npz")
    back = Features.load(path)
    for name in ("embeddings", "labels", "names", "indices", "splits"):
        np.testing.assert_array_equal(getattr(back, name), getattr(feats, name))
    assert back.classes == feats.classes and back.meta["model"] == "lenet5"
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]  # no temp file left
    with pytest.raises(CnnkitError, match="needs a 'train' split"):
        fit_head(feats.split("test"))
    with pytest.raises(CnnkitError, match="unknown head"):
        fit_head(feats, head="resnet")
    with pytest.raises(CnnkitError, match="valid cut points"):
        extract_features(net, "digits", preprocess=PRE, cut="no_such_stage", cache_dir=cache)
    with pytest.raises(CnnkitError, match="no 'val' split"):
        extract_features(net, "digits", preprocess=PRE, split="val", val_fraction=0.0, cache_dir=cache)
    (tmp_path / "bad.npz").write_bytes(b"not a zip file")
    with pytest.raises(CnnkitError, match="not a cnnkit features file"):
        Features.load(tmp_path / "bad.npz")
