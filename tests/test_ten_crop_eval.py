"""10-crop testing (seed 003's CropPreprocessor): a run trained on random patches also
reports its test accuracy over ten patches per image, and the number is the one a user
gets by hand from the best checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import torch

import cnnkit
from cnnkit.data import build_datamodule, ten_crop
from cnnkit.models.weights import read_state_dict


def test_random_crop_runs_report_ten_crop_accuracy(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    run = tmp_path / "run"
    history = cnnkit.fit(
        model="lenet5",
        data="digits",
        epochs=2,
        augment="random_crop=24",
        image_size=(28, 28),
        out=run,
        verbose=0,
    )
    results = json.loads((run / "results.json").read_text())
    assert results["input_size"] == [1, 24, 24]  # the model sees patches
    assert results["test_acc_10crop"] == history.results["test_acc_10crop"]

    # the same number by hand: full 28x28 test images, ten 24x24 patches, mean probability
    dm = build_datamodule("digits", batch_size=64, image_size=(28, 28), augment="random_crop=24", seed=0)
    model = cnnkit.create_model("lenet5", num_classes=10, input_size=(1, 24, 24)).eval()
    model.load_state_dict(read_state_dict(run / "best.ckpt"))
    correct = total = 0
    with torch.no_grad():
        for x, y in dm.uncropped_batches("test"):
            assert x.shape[1:] == (1, 28, 28)
            probs = model(ten_crop(x, (24, 24))).softmax(1).view(len(x), 10, -1).mean(1)
            correct += int((probs.argmax(1) == y).sum())
            total += len(y)
    assert total == results["eval_samples"] == 180
    assert abs(correct / total - results["test_acc_10crop"]) < 1e-9
    assert results["test_acc_10crop"] > 0.5  # far above chance (0.1), mirrors included


def test_runs_without_random_crop_do_not_report_it(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    history = cnnkit.fit(model="lenet5", data="digits", epochs=1, out=tmp_path / "run", verbose=0)
    assert "test_acc_10crop" not in history.results
