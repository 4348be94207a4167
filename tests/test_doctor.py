"""cnnkit doctor on real runs made to overfit and to underfit on purpose."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.datasets import load_digits

import cnnkit
from cnnkit.cli import main
from cnnkit.errors import CnnkitError
from cnnkit.evaluate.doctor import diagnose


@pytest.mark.slow  # 20 epochs: ~20 s on a quiet 2-core machine
def test_a_deliberately_overfit_run_is_named_with_its_epoch(tmp_path, capsys):
    # 300 digits, of which only ~45 train: LeNet-5 memorises them and the validation loss climbs.
    digits = load_digits()
    x, y = np.uint8(digits.images[:300] * 255 / 16), digits.target[:300]
    run = tmp_path / "overfit"
    cnnkit.fit(
        "lenet5", (x, y), epochs=20, batch_size=16, augment="none", schedule="none", lr=3e-3,
        val_fraction=0.8, test_fraction=0.05, out=str(run), verbose=0,
    )  # fmt: skip
    findings = diagnose(run)
    kinds = [f.kind for f in findings]
    assert "overfitting" in kinds and "underfitting" not in kinds, kinds
    over = findings[kinds.index("overfitting")]
    rows = [r for r in (run / "metrics.csv").read_text().splitlines()[1:]]
    val_loss = [float(r.split(",")[3]) for r in rows]
    assert over.epoch == int(np.argmin(val_loss)) + 1  # where the validation loss turned
    assert over.evidence["gap"][1] > 0.1 and any("augment" in a for a in over.advice)
    assert main(["doctor", str(run), "--json"]) == 0
    assert "overfitting" in [f["kind"] for f in json.loads(capsys.readouterr().out)]


def test_a_deliberately_underfit_run_is_named(tmp_path, capsys):
    # A learning rate 1000x too small with plain SGD: the loss cannot move in three epochs.
    digits = load_digits()
    x, y = np.uint8(digits.images[:400] * 255 / 16), digits.target[:400]
    run = tmp_path / "underfit"
    cnnkit.fit(
        "lenet5", (x, y), epochs=3, batch_size=64, optimizer="sgd", lr=1e-5, schedule="none",
        augment="none", out=str(run), verbose=0,
    )  # fmt: skip
    kinds = [f.kind for f in diagnose(run)]
    assert "underfitting" in kinds and "lr_too_low" in kinds and "overfitting" not in kinds, kinds
    assert main(["doctor", str(run)]) == 0
    out = capsys.readouterr().out
    assert "[underfitting]" in out and "raise the learning rate" in out


def test_doctor_rejects_what_is_not_a_run(tmp_path, capsys):
    with pytest.raises(CnnkitError, match="not a cnnkit run directory"):
        diagnose(tmp_path)
    assert main(["doctor", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
