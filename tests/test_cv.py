"""Cross-validation on real data (scikit-learn's 8x8 digits): the folds read back from each
fold run's own split.json are disjoint, cover the pool and are stratified; the summary's
mean/std are those of the fold runs' results.json; bad --folds values are one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from cnnkit.cli import main as cli_main
from cnnkit.errors import CnnkitError
from cnnkit.evaluate.cv import CV_FILE, cross_validate, fold_splits, format_cv

FOLDS = 3


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    return (x[:900].reshape(-1, 8, 8) * 16).clip(0, 255).astype(np.uint8), y[:900]


@pytest.fixture(scope="module")
def cv(tmp_path_factory: pytest.TempPathFactory, digits: tuple) -> dict:
    out = tmp_path_factory.mktemp("cv") / "lenet5-digits"
    return cross_validate(
        "lenet5", digits, folds=FOLDS, out=out, verbose=0, epochs=1, augment="none", workers=0
    )


def test_fold_runs_split_disjoint_stratified_folds(cv: dict, digits: tuple) -> None:
    labels = digits[1]
    parent = Path(cv["path"])
    assert json.loads((parent / CV_FILE).read_text())["mean"] == cv["mean"]
    tests = []
    for k in range(1, FOLDS + 1):
        split = json.loads((parent / f"fold-{k}" / "split.json").read_text())["splits"]
        train, val, test = (set(split[s]) for s in ("train", "val", "test"))
        assert not (train & val or train & test or val & test)  # disjoint inside a fold
        assert len(train | val | test) == len(labels)  # and the fold run saw the whole pool
        tests.append(np.array(split["test"]))
        # stratified: each class's share of the held-out fold is its share of the pool, +-1 image
        expected = np.bincount(labels, minlength=10) / FOLDS
        assert np.all(np.abs(np.bincount(labels[tests[-1]], minlength=10) - expected) <= 1)
        results = json.loads((parent / f"fold-{k}" / "results.json").read_text())
        assert results["eval_split"] == "test" and results["eval_samples"] == len(test)
        assert cv["folds"][k - 1]["metrics"]["test_acc"] == pytest.approx(results["test_acc"])
    everything = np.concatenate(tests)
    assert len(everything) == len(labels) and len(np.unique(everything)) == len(labels)  # a partition


def test_summary_is_mean_and_std_of_the_folds(cv: dict) -> None:
    accs = [row["metrics"]["test_acc"] for row in cv["folds"]]
    assert cv["mean"]["test_acc"] == pytest.approx(np.mean(accs))
    assert cv["std"]["test_acc"] == pytest.approx(np.std(accs, ddof=1))
    assert cv["mean"]["test_acc"] > 0.2  # one epoch on digits learns something (10 classes: 0.1 by chance)
    table = format_cv(cv)
    assert "mean ± std" in table and f"{cv['mean']['test_acc']:.4f}" in table


def test_fold_splits_reject_impossible_k() -> None:
    labels = np.array([0, 0, 0, 1, 1])  # the smallest class has 2 images
    assert len(fold_splits(labels, 2, 0.1, 0)) == 2
    with pytest.raises(CnnkitError, match="smallest class has 2"):
        fold_splits(labels, 3, 0.1, 0)


@pytest.mark.parametrize("folds", ["1", "2000"])
def test_cli_bad_folds_is_one_line(folds: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = cli_main(["cv", "--folds", folds, "--epochs", "1", "--out", str(tmp_path / "cv")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("cnnkit: error:") and "--folds" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "cv" / CV_FILE).exists()
