"""cnnkit evaluate: metrics against hand-computed values, and a real run evaluated end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import cnnkit
from cnnkit.cli import main
from cnnkit.errors import CnnkitError
from cnnkit.evaluate import compute_metrics, evaluate_run, reliability_bins
from cnnkit.evaluate.metrics import confident_mistakes


def test_metrics_equal_hand_computed_values_on_a_known_confusion():
    # Confusion (rows true, cols predicted) of 3 classes, 10 samples:
    #   a: 3 right, 1 -> b        b: 2 right, 1 -> c        c: 3 right
    true = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    pred = [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
    probs = np.full((10, 3), 0.1)
    probs[np.arange(10), pred] = 0.8
    probs[3] = [0.3, 0.6, 0.1]  # wrong at 0.6; true class a is second -> counted in rank-2
    probs[6] = [0.45, 0.05, 0.5]  # wrong at 0.5; true class b is third
    m = compute_metrics(probs, true, ["a", "b", "c"], topk=2)
    assert m["confusion"] == [[3, 1, 0], [0, 2, 1], [0, 0, 3]]
    assert m["accuracy"] == pytest.approx(8 / 10)
    assert m["top2"] == pytest.approx(9 / 10)
    pc = m["per_class"]
    assert (pc["a"]["precision"], pc["a"]["recall"]) == (pytest.approx(1.0), pytest.approx(3 / 4))
    assert (pc["b"]["precision"], pc["b"]["recall"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert (pc["c"]["precision"], pc["c"]["recall"]) == (pytest.approx(3 / 4), pytest.approx(1.0))
    f1 = {"a": 2 * 0.75 / 1.75, "b": 2 / 3, "c": 2 * 0.75 / 1.75}
    for name, value in f1.items():
        assert pc[name]["f1"] == pytest.approx(value)
    assert m["macro"]["f1"] == pytest.approx(sum(f1.values()) / 3)
    assert m["weighted"]["f1"] == pytest.approx((4 * f1["a"] + 3 * f1["b"] + 3 * f1["c"]) / 10)
    assert [pc[c]["support"] for c in "abc"] == [4, 3, 3]
    # ECE by hand: 8 right at confidence 0.8 (one bin: |1 - 0.8|), one wrong at 0.6, one at 0.5.
    assert m["ece"] == pytest.approx(0.8 * 0.2 + 0.1 * 0.6 + 0.1 * 0.5, abs=1e-6)
    assert m["nll"] == pytest.approx(-(8 * np.log(0.8) + np.log(0.3) + np.log(0.05)) / 10, rel=1e-5)
    bins = reliability_bins(probs, true)
    ece = np.nansum(bins["count"] / 10 * np.abs(bins["accuracy"] - bins["confidence"]))
    assert ece == pytest.approx(m["ece"], abs=1e-6)
    assert confident_mistakes(probs, true) == [3, 6]


def test_metrics_reject_mismatched_inputs():
    with pytest.raises(CnnkitError, match="columns"):
        compute_metrics(np.ones((4, 3)) / 3, [0, 1, 2, 0], ["a", "b"])
    with pytest.raises(CnnkitError, match="targets"):
        compute_metrics(np.ones((2, 2)) / 2, [0, 5], ["a", "b"])


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "lenet5"
    history = cnnkit.fit("lenet5", "digits", epochs=2, batch_size=64, out=str(out), verbose=0)
    return out, history


def _png_size(path):
    with Image.open(path) as image:
        image.load()
        return image.size


def test_evaluate_a_real_run_end_to_end(digits_run, tmp_path):
    run, history = digits_run
    m = evaluate_run(run, out=tmp_path / "ev")
    assert m["split"] == "test" and m["n"] == history.results["eval_samples"] == 180
    # The run's own test split and preprocessing: the training engine's own number.
    assert m["accuracy"] == pytest.approx(history.results["test_acc"], abs=1e-6)
    assert m["top5"] == pytest.approx(history.results["test_top5"], abs=1e-6)
    assert m["nll"] == pytest.approx(history.results["test_loss"], rel=1e-4)
    assert np.trace(np.array(m["confusion"])) == round(m["accuracy"] * 180)
    saved = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert saved["accuracy"] == m["accuracy"] and len(saved["mistakes"]) == min(
        16, 180 - np.trace(m["confusion"])
    )
    for key, (min_w, min_h) in {
        "confusion_png": (400, 400),
        "reliability_png": (300, 400),
        "mistakes_png": (400, 300),
    }.items():
        w, h = _png_size(m["files"][key])
        assert w >= min_w and h >= min_h and w < 4000 and h < 4000, (key, w, h)
    lines = (tmp_path / "ev" / "predictions.csv").read_text().splitlines()
    assert len(lines) == 181 and lines[1].startswith("test:0,")


def test_tta_reports_the_gain_over_plain(digits_run, tmp_path):
    run, history = digits_run
    for tta in ("flip", "10crop"):
        m = evaluate_run(run, tta=tta, out=tmp_path / tta)
        assert m["tta"] == tta and 0 <= m["accuracy"] <= 1
        assert m["tta_gain"] == pytest.approx(m["accuracy"] - m["plain"]["accuracy"])
    flip = json.loads((tmp_path / "flip" / "metrics.json").read_text())
    assert flip["plain"]["accuracy"] == pytest.approx(history.results["test_acc"], abs=1e-6)


def test_evaluate_on_a_new_labelled_folder_and_mismatched_classes(digits_run, tmp_path):
    from sklearn.datasets import load_digits

    run, _ = digits_run
    digits = load_digits()
    root = tmp_path / "folder"
    for i in range(0, 300, 3):
        image = Image.fromarray(np.uint8(digits.images[i] * 255 / 16)).resize((28, 28), Image.BILINEAR)
        (root / str(digits.target[i])).mkdir(parents=True, exist_ok=True)
        image.save(root / str(digits.target[i]) / f"{i}.png")
    m = evaluate_run(run, data=root, out=tmp_path / "ev")
    assert m["n"] == 100 and m["accuracy"] > 0.5  # mostly training images of the run: well above chance
    assert any(str(root) in row["sample"] for row in m["mistakes"]) or m["accuracy"] == 1.0
    (root / "7").rename(root / "seven")
    with pytest.raises(CnnkitError, match=r"not in the run: seven; missing from the data: 7"):
        evaluate_run(run, data=root, out=tmp_path / "ev2")


def test_cli_evaluate_prints_the_report_and_fails_in_one_line(digits_run, tmp_path, capsys):
    run, _ = digits_run
    assert main(["evaluate", str(run), "--out", str(tmp_path / "cli"), "--topk", "3"]) == 0
    out = capsys.readouterr().out
    assert "macro avg" in out and "rank-3" in out and "confusion matrix" in out
    assert main(["evaluate", str(tmp_path / "nope")]) == 2
    assert main(["evaluate", str(run), "--split", "bogus", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "no 'bogus' split" in err


@pytest.mark.slow  # trains a second model
def test_an_ensemble_of_two_different_models_beats_their_mean(digits_run, tmp_path, capsys):
    from cnnkit.evaluate.ensemble import ensemble_runs

    run, _ = digits_run
    other = tmp_path / "shallow"
    cnnkit.fit("shallow_cnn", "digits", epochs=2, batch_size=64, out=str(other), verbose=0)
    report = ensemble_runs([run, other])
    accs = [m["accuracy"] for m in report["members"]]
    assert report["mean_member_accuracy"] == pytest.approx(np.mean(accs))
    assert report["n"] == 180 and set(report["ensembles"]) == {"mean", "vote", "weighted", "stack"}
    assert report["ensembles"]["mean"]["accuracy"] >= report["mean_member_accuracy"]
    assert report["ensembles"]["weighted"]["accuracy"] >= min(accs)
    assert sum(report["ensembles"]["weighted"]["weights"]) == pytest.approx(1.0)
    with pytest.raises(CnnkitError, match="at least two runs"):
        ensemble_runs([run])


@pytest.fixture(scope="module")
def mnist_folder(tmp_path_factory):
    """1,000 real MNIST digits as PNG files: train/ (80 per class) and test/ (20 per class)."""
    from conftest import need
    from PIL import Image

    from cnnkit.data.sources import load_idx_data

    splits = load_idx_data(need("datasets", "MNIST", "raw"), limit=2_000).splits
    root = tmp_path_factory.mktemp("mnist-folder")
    for split, per_class in (("train", 80), ("test", 20)):
        x, y = splits["train" if split == "train" else "test"]
        counts = dict.fromkeys(range(10), 0)
        for image, label in zip(x.numpy()[:, 0], y.tolist(), strict=True):
            if counts[label] < per_class:
                (root / split / str(label)).mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(root / split / str(label) / f"{counts[label]}.png")
                counts[label] += 1
    return root


def test_an_ensemble_of_two_different_models_on_mnist_is_at_least_their_mean(mnist_folder, tmp_path):
    from cnnkit.evaluate.ensemble import ensemble_runs

    runs = []
    for model in ("lenet5", "shallow_cnn"):
        cnnkit.fit(model, str(mnist_folder), epochs=3, batch_size=32, out=str(tmp_path / model), verbose=0)
        runs.append(tmp_path / model)
    report = ensemble_runs(runs)
    assert report["n"] == 200  # the same real MNIST test split for both members
    assert report["ensembles"]["mean"]["accuracy"] >= report["mean_member_accuracy"]
