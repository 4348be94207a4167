"""bench/make_reproduction.py: REPRODUCTION.md is computed from real run directories.

Two real one-epoch LeNet-5 runs on a few hundred MNIST images (seeds 0 and 1, named as the
script names them) must give one row with their mean +- std, a readable curves PNG, the
hardware stamp, and "not run yet" rows with the command for every other recipe.
"""

from __future__ import annotations

import importlib.util
import statistics
from pathlib import Path

import numpy as np
import pytest
from conftest import need
from PIL import Image

import cnnkit
from cnnkit.data.sources import load_idx_data
from cnnkit.fileio import write_json_atomic
from cnnkit.recipes import list_recipes, load_recipe, train_options

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "make_reproduction.py"


def _script():  # noqa: ANN202 - the bench script as a module
    spec = importlib.util.spec_from_file_location("make_reproduction", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def two_seed_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    mnist = need("datasets", "MNIST", "raw")  # skips locally, fails under CI, when missing
    root = tmp_path_factory.mktemp("runs-repro")
    x, y = load_idx_data(mnist, limit=300).splits["train"]
    stamp = _script().hardware()
    for seed in (0, 1):
        out = root / f"lenet5-s{seed}"
        options = train_options(load_recipe("lenet5"), data=(x, y), epochs=2, seed=seed, out=str(out))
        cnnkit.fit(**options, verbose=0)
        write_json_atomic(out / "hardware.json", stamp)
    (root / "scratch").mkdir()  # not a <recipe>-s<seed> run: ignored
    return root


def test_table_rows_come_from_the_runs(two_seed_runs: Path, tmp_path: Path) -> None:
    script = _script()
    out, curves = tmp_path / "REPRODUCTION.md", tmp_path / "curves"
    text = script.render(two_seed_runs, out, curves)
    assert out.read_text() == text
    runs = script.collect(two_seed_runs)
    assert sorted(runs) == ["lenet5"] and len(runs["lenet5"]) == 2
    errors = [100 * (1 - r.results["test_acc"]) for r in runs["lenet5"]]
    row = next(line for line in text.splitlines() if line.startswith("| `lenet5` |"))
    expected = f"{statistics.mean(errors):.2f}% ± {statistics.stdev(errors):.2f}% (2 seeds)"
    assert expected in row and "0.95% error" in row
    assert f"{stamp_threads()} torch threads" in row
    assert "cnnkit train --recipe lenet5 --seed 0" in row and "(seeds 0, 1)" in row
    for name in set(list_recipes()) - {"lenet5"}:
        other = next(line for line in text.splitlines() if line.startswith(f"| `{name}` |"))
        assert "not run yet" in other and f"cnnkit train --recipe {name}" in other
    png = curves / "lenet5.png"
    with Image.open(png) as image:
        assert image.format == "PNG" and image.width > 300
        pixels = np.asarray(image.convert("L"))
    assert pixels.std() > 10  # lines were drawn, not a blank canvas


def stamp_threads() -> int:
    import torch

    return torch.get_num_threads()


def test_refuses_to_overwrite_a_finished_run(two_seed_runs: Path) -> None:
    from cnnkit.errors import CnnkitError

    with pytest.raises(CnnkitError, match="already holds a finished run"):
        _script().run_recipe("lenet5", 0, two_seed_runs)


def test_train_time_adds_the_whole_command_when_it_is_much_longer(
    two_seed_runs: Path, tmp_path: Path
) -> None:
    """A probe's fit takes seconds and its feature pass the minutes: the row must show both."""
    import shutil

    from cnnkit.fileio import read_json

    script = _script()
    root = tmp_path / "runs"
    shutil.copytree(two_seed_runs, root)
    runs = script.collect(root)["lenet5"]
    fit = statistics.mean(float(r.results["train_seconds"]) for r in runs)
    assert script.train_time_text(runs) == script.minutes(fit)  # no command time recorded: fit only
    for run in runs:
        stamp = read_json(run.path / "hardware.json")
        write_json_atomic(run.path / "hardware.json", {**stamp, "command_seconds": fit + 900})
    assert (
        script.train_time_text(runs) == f"{script.minutes(fit)} (whole command {script.minutes(fit + 900)})"
    )
    for run in runs:  # a command about as long as the fit adds nothing
        stamp = read_json(run.path / "hardware.json")
        write_json_atomic(run.path / "hardware.json", {**stamp, "command_seconds": fit + 5})
    assert script.train_time_text(runs) == script.minutes(fit)


def test_records_are_kept_without_checkpoints_and_render_the_same_table(
    two_seed_runs: Path, tmp_path: Path
) -> None:
    """The committed records (docs/reproduction/runs/) must regenerate the table on a checkout
    that has no run directories: same rows, no checkpoint or split copied."""
    script = _script()
    records = tmp_path / "records"
    for run in sorted(two_seed_runs.glob("lenet5-s*")):
        kept = script.keep_record(run, records)
        names = {p.name for p in kept.iterdir()}
        assert names == {n for n in script.RECORD_FILES if (run / n).is_file()}
        assert "hardware.json" in names and "metrics.csv" in names
        assert not any(n.endswith(".ckpt") for n in names) and "split.json" not in names
    from_runs = script.render(two_seed_runs, tmp_path / "a.md", tmp_path / "a")
    from_records = script.render(records, tmp_path / "b.md", tmp_path / "b")

    def row(text: str) -> str:
        return next(line for line in text.splitlines() if line.startswith("| `lenet5` |")).split("[png]")[0]

    assert row(from_records) == row(from_runs)
    # No path of this machine in a committed record: the data as the recipes name it.
    from cnnkit.shared import shared_dir

    mnist = shared_dir().resolve() / "datasets" / "MNIST" / "raw"
    assert script.portable(str(mnist)) == "shared:datasets/MNIST/raw"
    assert script.portable(str(script.ROOT / "runs-repro" / "lenet5-s0")) == "runs-repro/lenet5-s0"
    assert script.portable("/elsewhere/run") == "/elsewhere/run" and script.portable(3) == 3
    from cnnkit.errors import CnnkitError

    (tmp_path / "unfinished").mkdir()
    with pytest.raises(CnnkitError, match="only a finished run"):
        script.keep_record(tmp_path / "unfinished", records)


def test_time_to_accuracy_uses_the_test_accuracy_like_airbench(two_seed_runs: Path, tmp_path: Path) -> None:
    """A CIFAR-10 run's time to 91% is its whole training time when its kept checkpoint reaches
    91% on the test images (airbench's measure); the "how far" paragraph is computed from it."""
    import shutil

    from cnnkit.fileio import read_json

    script = _script()
    root = tmp_path / "runs"
    run = root / "cifar_resnet20-s0"
    shutil.copytree(two_seed_runs / "lenet5-s0", run)  # a real run's files under a CIFAR recipe's name
    results = read_json(run / "results.json")
    write_json_atomic(run / "results.json", {**results, "test_acc": 0.92, "train_seconds": 600.0})
    lines = script.time_to_accuracy(script.collect(root))
    row = next(line for line in lines if line.startswith("| `cifar_resnet20-s0` |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    epochs = int(results["epochs"])
    assert cells[1:4] == ["92.00%", f"{epochs} epochs, 10.0 min", "not reached"]
    assert cells[4] == f"{results['split_sizes']['val']:,}"
    paragraph = next(line for line in lines if line.startswith("**How far, and why.**"))
    assert "reached 91% test accuracy after 10.0 min, 182x airbench's" in paragraph
    write_json_atomic(run / "results.json", {**results, "test_acc": 0.90, "train_seconds": 600.0})
    lines = script.time_to_accuracy(script.collect(root))
    row = next(line for line in lines if line.startswith("| `cifar_resnet20-s0` |"))
    assert row.split("|")[3].strip() == "not reached"
    assert not any(line.startswith("**How far") for line in lines)
