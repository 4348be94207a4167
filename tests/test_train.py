"""The training engine end to end, through the real ``cnnkit train`` command on real data:
the no-argument run (LeNet-5 on the embedded digits), its run directory, safe loading
of its checkpoint, exact repeatability, resuming a killed run, and one-line errors."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import cnnkit
from cnnkit.data import build_datamodule
from cnnkit.models.weights import load_weights, read_state_dict
from cnnkit.train import TrainConfig
from cnnkit.train.module import evaluate

RUN_FILES = (
    "config.json",
    "classes.json",
    "normalization.json",
    "best.ckpt",
    "last.ckpt",
    "metrics.csv",
    "curves.png",
    "summary.txt",
    "results.json",
)
# One OpenMP thread per run: a seeded CPU run gives the same numbers with 1 or 2 threads,
# and on a busy CI machine spinning thread pools of parallel tests slow each other down a lot.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def cnnkit_train(*args: str) -> list[str]:
    return [sys.executable, "-m", "cnnkit", "train", *args]


def metric_rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def without_time(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in row.items() if k != "time"} for row in rows]


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``cnnkit train`` with no arguments, run in an empty folder: (run directory, stdout)."""
    cwd = tmp_path_factory.mktemp("default")
    done = subprocess.run(cnnkit_train(), cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    runs = list((cwd / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("lenet5-digits-")
    return runs[0], done.stdout


def test_default_run_reaches_95_percent_and_writes_every_file(default_run: tuple[Path, str]) -> None:
    run_dir, stdout = default_run
    for name in RUN_FILES:
        assert (run_dir / name).is_file() and (run_dir / name).stat().st_size > 0, name
    assert not list(run_dir.glob("*.tmp*")) and not list(run_dir.glob(".*.tmp"))  # atomic writes left nothing
    results = json.loads((run_dir / "results.json").read_text())
    assert results["test_acc"] >= 0.95
    assert results["eval_split"] == "test" and results["eval_samples"] == 180
    assert results["epochs"] == 10 and results["train_seconds"] > 0
    assert 0 < results["best_val_acc"] <= 1 and results["skipped_files"] == 0
    assert {"test_loss", "test_top5"} <= set(results) and results["test_top5"] >= results["test_acc"]
    assert f"test accuracy {results['test_acc']:.2%}" in stdout and str(run_dir.name) in stdout

    rows = metric_rows(run_dir)
    assert ",".join(rows[0]) == "epoch,train_loss,train_acc,val_loss,val_acc,val_top5,lr,time"
    assert [int(r["epoch"]) for r in rows] == list(range(1, 11))  # numbered as printed
    assert max(float(r["val_acc"]) for r in rows) == pytest.approx(results["best_val_acc"])
    # One epoch convention everywhere: results.json, metrics.csv and the console agree.
    best_row = max(rows, key=lambda r: float(r["val_acc"]))
    assert results["best_epoch"] == int(best_row["epoch"])
    assert f"(best checkpoint: epoch {results['best_epoch']})" in stdout
    # The training doctor reads the curves at the end (the same text as 'cnnkit doctor RUN').
    from cnnkit.evaluate import diagnose, format_findings

    assert "doctor:\n" + format_findings(diagnose(run_dir)) in stdout
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])

    # LeNet-5's 8x8 digits are trained at its own 28x28; inference needs exactly this.
    normalization = json.loads((run_dir / "normalization.json").read_text())
    assert normalization["input_size"] == [1, 28, 28] and normalization["resize"] == "stretch"
    assert len(normalization["mean"]) == len(normalization["std"]) == 1
    assert json.loads((run_dir / "classes.json").read_text()) == [str(i) for i in range(10)]
    summary = (run_dir / "summary.txt").read_text()
    assert "lenet5" in summary and "Total params: 44,426" in summary
    assert (run_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = TrainConfig.from_json(json.loads((run_dir / "config.json").read_text()))
    assert (config.model, config.data, config.epochs, config.seed) == ("lenet5", "digits", 10, 0)


def test_best_checkpoint_loads_with_weights_only_and_reproduces_the_test_accuracy(
    default_run: tuple[Path, str],
) -> None:
    run_dir, _ = default_run
    checkpoint = torch.load(run_dir / "best.ckpt", map_location="cpu", weights_only=True)
    assert all(key.startswith("model.") for key in checkpoint["state_dict"])
    results = json.loads((run_dir / "results.json").read_text())
    assert checkpoint["epoch"] + 1 == results["best_epoch"]  # Lightning counts from 0, we print from 1

    # A fresh model + the weights + the saved preprocessing give the reported accuracy exactly.
    state = read_state_dict(run_dir / "best.ckpt")  # unwraps Lightning's "model." prefix
    model = load_weights(cnnkit.create_model("lenet5", num_classes=10), state)
    dm = build_datamodule("digits", batch_size=64, image_size=(28, 28), seed=0)
    normalization = json.loads((run_dir / "normalization.json").read_text())
    assert list(dm.mean) == pytest.approx(normalization["mean"])
    scores = evaluate(model, dm.test_dataloader())
    assert scores["acc"] == pytest.approx(results["test_acc"])


def test_resume_after_kill_continues_and_matches_an_uninterrupted_run(
    default_run: tuple[Path, str], tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        cnnkit_train("--out", str(run_dir)),
        cwd=tmp_path,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    epoch, rows = -1, 0
    while (epoch < 1 or rows < 2) and time.monotonic() < deadline and proc.poll() is None:
        if (run_dir / "last.ckpt").is_file():  # atomic writes: a file that exists is complete
            epoch = torch.load(run_dir / "last.ckpt", map_location="cpu", weights_only=True)["epoch"]
        if (run_dir / "metrics.csv").is_file():  # written just after the checkpoint of the epoch
            rows = len(metric_rows(run_dir))
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.kill()  # SIGKILL: no chance to clean up
    proc.wait()
    assert not (run_dir / "results.json").exists()
    assert 2 <= len(metric_rows(run_dir)) < 10

    done = subprocess.run(
        cnnkit_train("--resume", str(run_dir)),
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = metric_rows(run_dir)
    assert [int(r["epoch"]) for r in rows] == list(range(1, 11))  # each epoch exactly once
    assert json.loads((run_dir / "results.json").read_text())["epochs"] == 10
    # Same seed, data order and augmentation per epoch: the resumed run is the uninterrupted one.
    reference, _ = default_run
    assert without_time(rows) == without_time(metric_rows(reference))


def digits_subset() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.from_numpy((digits.images[:600] * 16).clip(0, 255)).to(torch.uint8)[:, None]
    return x, torch.from_numpy(digits.target[:600])


def test_same_seed_gives_identical_metrics_and_another_seed_does_not(tmp_path: Path) -> None:
    data = digits_subset()
    common = dict(model="lenet5", data=data, epochs=1, batch_size=32, verbose=0)
    first = cnnkit.fit(**common, seed=3, out=str(tmp_path / "a"))
    second = cnnkit.fit(**common, seed=3, out=str(tmp_path / "b"))
    other = cnnkit.fit(**common, seed=4, out=str(tmp_path / "c"))
    keys = ["train_loss", "train_acc", "val_loss", "val_acc", "val_top5", "lr"]
    assert [first.history[k] for k in keys] == [second.history[k] for k in keys]
    assert first.results["test_acc"] == second.results["test_acc"]
    assert first.history["train_loss"] != other.history["train_loss"]
    assert first.epoch == [1] and first.run_dir == tmp_path / "a"
    assert first.history["lr"] == [pytest.approx(0.01 / 25)]  # the epoch's rate: onecycle starts at peak/25


def test_bad_input_is_one_line_with_status_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    no_checkpoint = tmp_path / "stopped"
    no_checkpoint.mkdir()
    (no_checkpoint / "config.json").write_text(json.dumps(TrainConfig().to_json()))
    cases = {
        ("--data", str(tmp_path / "missing")): "does not exist",
        ("--data", str(empty)): str(empty),
        ("--model", "vgg16", "--image-size", "8x8"): "vgg16 cannot train on 8x8 images",
        ("--resume", str(no_checkpoint)): "no last.ckpt",
    }
    # All at once: each is a fresh interpreter, and they are independent.
    procs = {
        args: subprocess.Popen(
            cnnkit_train(*args),
            cwd=tmp_path,
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in cases
    }
    for args, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        lines = err.strip().splitlines()
        assert proc.returncode == 2, (args, err)
        assert len(lines) == 1 and lines[0].startswith("cnnkit: error: "), (args, err)
        assert cases[args] in lines[0], (args, lines[0])
        assert "Traceback" not in err and out == ""
    assert not (tmp_path / "runs").exists()  # a run that never started leaves no folder


@pytest.mark.parametrize(
    "args, message",
    [
        (["--optimizer", "adamm"], "unknown optimizer 'adamm'; choose one of sgd, momentum, nesterov, adam,"),
        (["--schedule", "cosin"], "unknown schedule 'cosin'; choose one of none, step,"),
        (["--batch-size", "0"], "batch size 0 must be at least 1"),
        (["--epochs", "0"], "epochs=0 must be at least 1"),
        (["--max-time", "soon"], "cannot read max time 'soon'"),
    ],
)
def test_invalid_options_fail_before_any_work(
    args: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    from cnnkit.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["train", *args]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"cnnkit: error: {message}") and captured.err.count("\n") == 1
    assert captured.out == "" and not list(tmp_path.iterdir())


def test_predict_from_the_run_directory(default_run: tuple[Path, str], tmp_path: Path) -> None:
    """`cnnkit predict --model RUN` classifies image files with the run's best checkpoint,
    its classes and the preprocessing it trained with (real digits written as PNG files)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    run_dir, _ = default_run
    digits = load_digits()
    paths, labels = [], []
    for i in range(0, 1797, 36):  # 50 digits spread over the set
        path = tmp_path / f"digit{i}.png"
        Image.fromarray((digits.images[i] * 255 / 16).astype("uint8")).save(path)
        paths.append(str(path))
        labels.append(str(digits.target[i]))
    out = subprocess.run(
        [sys.executable, "-m", "cnnkit", "predict", *paths, "--model", str(run_dir), "--json", "--topk", "2"],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)
    assert [r["image"] for r in results] == paths
    predicted = [r["topk"][0]["label"] for r in results]
    accuracy = sum(p == t for p, t in zip(predicted, labels, strict=True)) / len(labels)
    assert accuracy >= 0.9, (accuracy, predicted, labels)
    not_a_run = subprocess.run(
        [sys.executable, "-m", "cnnkit", "predict", paths[0], "--model", str(tmp_path)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    assert not_a_run.returncode == 2
    assert "not a cnnkit run directory" in not_a_run.stderr and "Traceback" not in not_a_run.stderr
