"""The run directory through cnnkit.runs: a real tiny run trained with ``random_crop`` on a
folder of real CIFAR-10 images is read back, and prediction applies exactly its evaluation
transform (the tensors of the test loader), not a resize of the whole image to the crop."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import need
from PIL import Image

import cnnkit
from cnnkit.cli import main as cli_main
from cnnkit.data import build_datamodule
from cnnkit.data.sources import load_cifar_data
from cnnkit.errors import CnnkitError
from cnnkit.fileio import write_json_atomic
from cnnkit.predict import load_run
from cnnkit.runs import (
    BEST_CKPT,
    CONFIG_FILE,
    LAST_CKPT,
    NORMALIZATION_FILE,
    Run,
    check_resumable,
    normalization_record,
)

CLASSES = ("airplane", "cat", "ship")
DATA_OPTIONS = dict(image_size=(32, 32), augment="random_crop=26", num_workers=0)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 real CIFAR-10 images as PNG files, 16 per class, one sub-folder per class."""
    source = load_cifar_data(need("datasets", "cifar-10-batches-py"), limit=1000)
    x, y = source.splits["train"]
    root = tmp_path_factory.mktemp("cifar_png")
    for name in CLASSES:
        label = source.classes.index(name)
        (root / name).mkdir()
        for i, index in enumerate(np.flatnonzero(y.numpy() == label)[:16]):
            Image.fromarray(x[index].permute(1, 2, 0).numpy()).save(root / name / f"{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def run_dir(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("runs") / "tiny"
    cnnkit.fit(
        model="lenet5", data=str(folder), epochs=1, batch_size=8, schedule="none", out=out, verbose=0, workers=0,
        image_size=DATA_OPTIONS["image_size"], augment=DATA_OPTIONS["augment"],
    )  # fmt: skip
    return out


def test_prediction_uses_exactly_the_evaluation_transform(
    run_dir: Path, folder: Path, capsys: pytest.CaptureFixture
) -> None:
    run = Run.load(run_dir)
    dm = build_datamodule(folder, batch_size=64, **DATA_OPTIONS)
    assert run.preprocess == dm.eval_preprocess
    assert run.preprocess.size == (26, 26) and run.preprocess.scaled_size == (32, 32)
    x, y = next(iter(dm.test_dataloader()))
    files = [folder / rel for rel, _ in dm.files["test"]]
    assert len(files) == len(x) >= 4
    assert torch.equal(run.preprocess(files), x)  # the centre 26x26 of the 32x32 image
    whole = dataclasses.replace(run.preprocess, resize_size=None)  # the old behaviour
    assert not torch.allclose(whole(files), x, atol=0.1)

    # `cnnkit predict --model RUN` gives the probabilities of the test batch
    model = run.load_model()
    with torch.no_grad():
        probs = model(x).softmax(1)
    assert cli_main(["predict", *map(str, files), "--model", str(run_dir), "--json", "--topk", "3"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["image"] for r in results] == [str(f) for f in files]
    for row, item in zip(probs, results, strict=True):
        top = item["topk"][0]
        assert top["index"] == int(row.argmax()) and abs(top["prob"] - float(row.max())) < 1e-5
        assert top["label"] == run.classes[top["index"]]
    # the best checkpoint on the test split is the number results.json reports
    accuracy = float((probs.argmax(1) == y).float().mean())
    assert run.results["eval_split"] == "test" and abs(accuracy - run.results["test_acc"]) < 1e-6


def test_run_attributes_metrics_and_checkpoints(run_dir: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(run_dir, tmp_path / "copy"))
    run = Run.load(copy)
    assert run.path == copy and run.config["model"] == "lenet5" and run.classes == list(CLASSES)
    assert run.checkpoint == copy / BEST_CKPT
    assert len(run.metrics) == 1 and run.metrics[0]["epoch"] == 1.0
    assert {"train_loss", "val_loss", "val_acc"} <= set(run.metrics[0])
    assert all(isinstance(v, float) for v in run.metrics[0].values())
    assert check_resumable(copy) == copy
    (copy / BEST_CKPT).unlink()
    assert Run.load(copy).checkpoint == copy / LAST_CKPT
    (copy / LAST_CKPT).unlink()
    with pytest.raises(CnnkitError, match="has no best.ckpt or last.ckpt"):
        _ = Run.load(copy).checkpoint


def test_both_normalization_formats_read_the_same(run_dir: Path, tmp_path: Path) -> None:
    expected = Run.load(run_dir).preprocess
    copy = Path(shutil.copytree(run_dir, tmp_path / "copy"))
    write_json_atomic(copy / NORMALIZATION_FILE, normalization_record(expected))  # the current format
    assert Run.load(copy).preprocess == expected
    old = {
        "mean": list(expected.mean),
        "std": list(expected.std),
        "input_size": [3, 26, 26],
        "resize": "stretch",
    }
    write_json_atomic(copy / NORMALIZATION_FILE, old)  # before the record: rebuilt from config.json
    assert Run.load(copy).preprocess == expected
    config = json.loads((copy / CONFIG_FILE).read_text())
    write_json_atomic(copy / CONFIG_FILE, {**config, "augment": None, "image_size": None})
    assert Run.load(copy).preprocess == dataclasses.replace(expected, resize_size=None)


def test_not_a_run_and_damaged_files_are_one_line(run_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(CnnkitError, match="is not a cnnkit run directory .missing config.json, classes.json"):
        Run.load(tmp_path / "empty")
    with pytest.raises(CnnkitError, match="run directory .*nowhere does not exist"):
        Run.load(tmp_path / "nowhere")
    copy = Path(shutil.copytree(run_dir, tmp_path / "copy"))
    (copy / CONFIG_FILE).write_text('{"model": "lenet5", "epo')
    with pytest.raises(CnnkitError, match="config.json is not valid JSON") as info:
        Run.load(copy)
    assert "\n" not in str(info.value)
    shutil.copy(run_dir / CONFIG_FILE, copy / CONFIG_FILE)
    (copy / "metrics.csv").write_text("epoch,val_acc\n1,0.5\n2,half\n")
    with pytest.raises(CnnkitError, match="metrics.csv is damaged"):
        _ = Run.load(copy).metrics
    (copy / NORMALIZATION_FILE).write_text('{"std": [0.2]}')
    with pytest.raises(CnnkitError, match="normalization.json is damaged"):
        Run.load(copy)


def test_text_runs_load_their_model_from_the_vocabulary(tmp_path: Path) -> None:
    corpus = Path(__file__).parent / "data" / "topic_sentences.tsv"
    out = tmp_path / "text"
    cnnkit.fit("text_cnn", str(corpus), epochs=1, out=str(out), verbose=0, seed=0)
    run = Run.load(out)
    assert run.kind == "text" and run.preprocess is None and len(run.classes) == 3
    seq_len = json.loads((out / "vocab.json").read_text())["seq_len"]
    assert run.input_size == (seq_len,)
    model = run.load_model()  # strict load: the rebuilt architecture matches the checkpoint
    assert model(torch.ones(2, seq_len, dtype=torch.long)).shape == (2, 3)
    with pytest.raises(CnnkitError, match="is a text run; cnnkit predict classifies images"):
        load_run(out)
