"""cnnkit lr-find: the range test on the real digits with LeNet-5."""

from __future__ import annotations

import math

import pytest
from PIL import Image

from cnnkit.errors import CnnkitError
from cnnkit.evaluate.lr_find import lr_find


def test_range_test_suggests_a_rate_where_the_loss_falls(tmp_path):
    r = lr_find("lenet5", "digits", steps=60, out=tmp_path / "lr.png", optimizer="adam", augment="none")
    lrs, losses = r["lrs"], r["losses"]
    assert lrs == sorted(lrs) and lrs[0] == pytest.approx(1e-7)
    # Adam on LeNet-5 learns somewhere in 1e-4..1e-1 and the loss blows up beyond; the sweep stops there.
    assert 1e-4 <= r["suggested_lr"] <= 1e-1 and "note" not in r
    assert r["min_loss"] < 0.95 * losses[0]
    assert len(lrs) < 60 or not math.isfinite(losses[-1]) or losses[-1] > r["min_loss"]
    with Image.open(r["png"]) as image:
        image.load()
        assert image.size == (700, 450)


def test_bad_sweeps_fail_in_one_line():
    with pytest.raises(CnnkitError, match="start_lr < end_lr"):
        lr_find(start_lr=1.0, end_lr=0.1)
    with pytest.raises(CnnkitError, match="too few"):
        lr_find(steps=3)
