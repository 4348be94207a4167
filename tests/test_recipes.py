"""Recipes: every shipped file loads, names only TrainConfig fields and trains for a few batches.

The smoke test runs each recipe exactly as written except for what makes it short: a few
dozen real images from the recipe's own dataset (first images of the training files),
one epoch, small batches. So a renamed model, a removed option or an impossible schedule
fails here, not in a user's half-hour run.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

import pytest

import cnnkit
from cnnkit.cli import recipes as recipes_cli
from cnnkit.data.sources import load_cifar_data, load_idx_data
from cnnkit.errors import CnnkitError
from cnnkit.recipes import (
    list_recipes,
    load_recipe,
    recipe_command,
    recipe_config,
    recipe_flags,
    train_options,
)
from cnnkit.shared import shared_path
from cnnkit.train.config import TrainConfig

# The issue 13 results every release must carry a recipe for.
REQUIRED = {
    "lenet5",
    "lenet5_paper",
    "cifar_resnet20",
    "cifar_resnet20_paper",
    "cifar_resnet56",
    "cifar_preact_resnet110",
    "nin",
    "fashion_small_cnn",
    "fashion_resnet20",
    "cifar_efficientnet_lite0_probe",
    "cifar_mobilenet_v2_finetune",
}
BIG_INPUT = 100  # recipes at ImageNet size are smoked at SMOKE_SIZE (same weights, regime, head)
SMOKE_SIZE = (64, 64)
DEEP = ("cifar_preact_resnet110",)  # 110 layers: fewer images


def test_required_recipes_are_shipped_and_valid() -> None:
    assert REQUIRED <= set(list_recipes())
    for name in list_recipes():
        recipe = load_recipe(name)
        config = recipe_config(name)  # TrainConfig(**fields).validate(): unknown keys would raise
        assert config.model == recipe["model"] and config.epochs == recipe["epochs"]
        assert recipe["description"] and recipe["paper"] and recipe["target"]["source"]
        assert recipe["data_ref"].startswith("shared:datasets/"), name
        assert Path(recipe["data"]) == shared_path(*recipe["data_ref"][len("shared:") :].split("/"))
        assert Path(recipe["data"]).exists(), f"{name}: {recipe['data']} is missing"


def test_paper_schedule_matches_he_et_al() -> None:
    """He et al. 2015 Sec. 4.2: SGD 0.9, wd 1e-4, batch 128, lr 0.1 /10 at 32k and 48k of 64k iterations."""
    r = load_recipe("cifar_resnet20_paper")
    assert (r["optimizer"], r["momentum"], r["weight_decay"], r["batch_size"], r["lr"]) == (
        "momentum", 0.9, 1e-4, 128, 0.1
    )  # fmt: skip
    steps_per_epoch = -(-45_000 // 128)  # the 45k/5k split, last batch kept
    milestones = r["schedule_options"]["milestones"]
    assert [round(m * steps_per_epoch, -3) for m in milestones] == [32_000, 48_000]
    assert round(r["epochs"] * steps_per_epoch, -3) == 64_000
    assert r["val_fraction"] == 0.1
    for departure in ("epochs", "augment"):
        assert departure in r["why"]


def test_unknown_key_is_a_clear_error(tmp_path: Path) -> None:
    text = (shared_recipe := Path(cnnkit.recipes.RECIPE_DIR, "lenet5.toml")).read_text()
    bad = tmp_path / "typo.toml"
    bad.write_text(text.replace("batch_size = 128", "batch_sise = 128"))
    with pytest.raises(CnnkitError, match=r"'batch_sise' is not a TrainConfig field.*'batch_size'"):
        load_recipe(bad)
    bad.write_text(text.replace('metric = "test_error"', 'metric = "top1"'))
    with pytest.raises(CnnkitError, match="target"):
        load_recipe(bad)
    bad.write_text(text + "\n[extras]\nx = 1\n")
    with pytest.raises(CnnkitError, match="unknown section 'extras'"):
        load_recipe(bad)
    with pytest.raises(CnnkitError, match="unknown recipe 'lenet6'.*'lenet5'"):
        load_recipe("lenet6")
    assert load_recipe(shared_recipe)["model"] == "lenet5"


def test_expanded_command_parses_to_the_recipe() -> None:
    """The flag-by-flag command (what runs without --recipe) means exactly the recipe."""
    from cnnkit.cli.train import add_parser

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    for name in list_recipes():
        recipe = load_recipe(name)
        args = vars(parser.parse_args(["train", *recipe_flags(recipe)]))
        for key, value in train_options(recipe).items():
            parsed = args[key]
            if key == "image_size":  # the flag stays text until TrainConfig.validate parses it
                parsed = tuple(int(v) for v in parsed.split("x"))
            assert parsed == value, (name, key, parsed, value)
    assert shlex.split(recipe_command("lenet5", expand=True))[:2] == ["cnnkit", "train"]


def _run_cli(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    parser = argparse.ArgumentParser(prog="cnnkit")
    recipes_cli.add_parser(parser.add_subparsers(dest="command"))
    assert recipes_cli.run(parser.parse_args(argv)) == 0
    return capsys.readouterr().out


def test_cli_table_and_detail(capsys: pytest.CaptureFixture) -> None:
    table = _run_cli(["recipes"], capsys)
    for name in REQUIRED:
        assert f"cnnkit train --recipe {name}" in table
    assert "8.75% error" in table and "10.41% error" in table and "acc 0.925" in table
    detail = _run_cli(["recipes", "cifar_resnet20"], capsys)
    assert "why it differs from the paper" in detail and "--lr 0.2" in detail
    data = json.loads(_run_cli(["recipes", "nin", "--json"], capsys))
    assert data["target"]["paper"] == 0.1041 and data["augment"] == "none"


def _few_images(recipe: dict, n: int) -> tuple:
    """The first ``n`` training images of the recipe's own dataset, as (x, y) uint8 arrays."""
    path = Path(recipe["data"])
    loader = load_cifar_data if "cifar" in path.name else load_idx_data
    x, y = loader(path, limit=n).splits["train"]
    return x[:n], y[:n]


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_every_recipe_trains_a_few_batches(
    name: str, tmp_path: Path, mnist_raw: Path, fashion_raw: Path, cifar10_dir: Path
) -> None:
    recipe = load_recipe(name)
    short = {"epochs": 1, "batch_size": 16, "out": str(tmp_path / name)}
    if max(recipe.get("image_size") or (32, 32)) > BIG_INPUT:
        short["image_size"] = SMOKE_SIZE
    data = _few_images(recipe, 40 if len(short) > 3 or name in DEEP else 64)
    history = cnnkit.fit(**train_options(recipe, data=data, **short), verbose=0)
    assert 0.0 <= history.results["test_acc"] <= 1.0
    saved = json.loads((tmp_path / name / "config.json").read_text())
    kept = {k: v for k, v in train_options(recipe).items() if k not in {"data", *short}}
    for key, value in kept.items():
        assert saved[key] == (list(value) if isinstance(value, tuple) else value), (name, key)
    assert TrainConfig.from_json(saved).model == recipe["model"]
