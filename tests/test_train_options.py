"""One source of truth for the training options: every TrainConfig field is a `cnnkit train`
flag with its help text; the options that used to be Python-only work from the CLI; a custom
nn.Module trains through `cnnkit.fit` and its run records what it was."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from torch import nn

import cnnkit
from cnnkit.cli import build_parser
from cnnkit.errors import CnnkitError
from cnnkit.train import TrainConfig
from cnnkit.train.config import monitor_mode

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def train_help() -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, __import__("argparse")._SubParsersAction))
    return sub.choices["train"].format_help()


def test_every_config_field_is_a_flag_with_its_help() -> None:
    text = " ".join(train_help().split())
    for f in dataclasses.fields(TrainConfig):
        assert f"--{f.name.replace('_', '-')}" in text, f.name
        assert f.metadata["help"].split(";")[0][:30] in text, f.name
    assert "one of features, truncate, finetune, full, auto" in text


def test_monitor_direction_is_decided_in_one_place() -> None:
    assert [monitor_mode(m) for m in ("val_loss", "train_loss", "val_acc", "val_top5")] == [
        "min",
        "min",
        "max",
        "max",
    ]


def digits_arrays(n: int = 400) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return torch.from_numpy((d.images[:n] * 16).clip(0, 255)).to(torch.uint8)[:, None], torch.from_numpy(
        d.target[:n]
    )


def test_cli_model_options_plateau_monitor_resize_and_normalize(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from cnnkit.cli import main

    monkeypatch.chdir(tmp_path)
    args = ["train", "--model", "cifar_resnet20", "--model-options", "shortcut='A'", "--epochs", "1",
            "--schedule", "plateau", "--plateau-monitor", "val_loss", "--resize", "aspect",
            "--normalize", "0.5/0.25", "--out", "run", "--quiet"]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model_options"] == {"shortcut": "A"} and config["plateau_monitor"] == "val_loss"
    assert config["resize"] == "aspect" and config["normalize"] == [[0.5], [0.25]]
    norm = json.loads((tmp_path / "run" / "normalization.json").read_text())
    assert norm["mean"] == [0.5] and norm["std"] == [0.25]
    assert norm["preprocess"]["resize"] == "aspect"  # the evaluation transform, for prediction
    assert "epoch 1)" in capsys.readouterr().out


class TinyNet(nn.Module):
    """A network of one's own, as the seeds write them."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten()
        )
        self.fc = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))


def test_a_custom_module_trains_and_its_run_records_the_class(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = TinyNet()
    history = cnnkit.fit(net, digits_arrays(), epochs=3, out=str(tmp_path / "run"), verbose=0)
    assert history.model is net and history.results["test_acc"] > 0.3
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model"] == "custom:TinyNet" and config["resolved"]["model_class"].endswith("TinyNet")
    assert "TinyNet" in (tmp_path / "run" / "summary.txt").read_text()
    assert history.results["input_size"] == [1, 8, 8]  # a custom net trains at the data's own size
    with pytest.raises(CnnkitError, match="custom module TinyNet passed from Python; resume it from Python"):
        cnnkit.fit(resume=str(tmp_path / "run"), epochs=4)
