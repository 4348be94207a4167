"""REPRODUCTION.md from run records: the papers' numbers next to ours, never typed by hand.

    python bench/make_reproduction.py run lenet5 --seed 0        # trains -> runs-repro/lenet5-s0/
    python bench/make_reproduction.py run lenet5 --seed 0 --resume   # continues a stopped one
    python bench/make_reproduction.py                            # writes REPRODUCTION.md + curves

``run`` trains a shipped recipe (:mod:`cnnkit.recipes`) exactly as written, into
``runs-repro/<recipe>-s<seed>/``, and adds ``hardware.json`` (CPU model, cores, torch
threads, GPU, load average when it started: the machine may be shared) and the command's
wall time. It then copies the run's record - every small file but the checkpoints - to
``docs/reproduction/runs/<recipe>-s<seed>/``, which is committed: the table can be
regenerated on any checkout, while the checkpoints (megabytes, gitignored) stay in
runs-repro/. The default action reads every record with :meth:`cnnkit.runs.Run.load`
(results.json, metrics.csv, config.json) and writes one table row per recipe - model,
dataset, the paper's number, ours (mean +- sample std over seeds when there are several),
epochs, training time, hardware, the command - plus ``docs/reproduction/<recipe>.png``
(validation/training accuracy and loss per epoch, one line per seed). A recipe with no run
gets a "not run yet" row with the command that produces it.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from cnnkit.errors import CnnkitError
from cnnkit.fileio import read_json, write_bytes_atomic, write_json_atomic, write_text_atomic
from cnnkit.recipes import dataset_name, list_recipes, load_recipe, paper_text, recipe_command, train_options
from cnnkit.runs import (
    CLASSES_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    NORMALIZATION_FILE,
    RESULTS_FILE,
    SUMMARY_FILE,
    Run,
)
from cnnkit.shared import shared_dir

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "runs-repro"
OUT = ROOT / "REPRODUCTION.md"
CURVES = ROOT / "docs" / "reproduction"
RECORDS = CURVES / "runs"
HARDWARE_FILE = "hardware.json"
# What the table, the curves and Run.load read: kilobytes, committed. split.json (60k indices)
# and the checkpoints stay with the run.
RECORD_FILES = (
    CONFIG_FILE, CLASSES_FILE, NORMALIZATION_FILE, RESULTS_FILE, METRICS_FILE, SUMMARY_FILE, HARDWARE_FILE,
)  # fmt: skip
RUN_NAME = re.compile(r"^(?P<recipe>.+)-s(?P<seed>\d+)$")


def hardware() -> dict[str, Any]:
    """What ran it: CPU model (/proc/cpuinfo), cores, torch threads, GPU, load average."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # the kernels: AVX2, AVX512...
        "gpu": gpu,
        "load_average_1min": load,
        "torch": torch.__version__,
    }


def run_recipe(
    name: str, seed: int, root: Path, resume: bool = False, records: Path | None = RECORDS
) -> Path:
    """Train recipe ``name`` with ``seed`` into ``root/<name>-s<seed>``, stamp its hardware and
    keep its record in ``records`` (None: do not); ``resume`` continues a stopped run there from
    its last checkpoint (the engine adds the earlier sessions' training time to ``train_seconds``)."""
    import cnnkit

    out = root / f"{name}-s{seed}"
    if (out / "results.json").is_file():
        raise CnnkitError(f"{out} already holds a finished run; delete it or pick another --seed.")
    stamp = hardware()
    start = time.perf_counter()
    if resume:
        cnnkit.fit(resume=str(out))
        stamp["resumed"] = True
    else:
        cnnkit.fit(**train_options(load_recipe(name), seed=seed, out=str(out)))
    stamp["command_seconds"] = round(time.perf_counter() - start, 1)
    stamp["command"] = recipe_command(name, seed=seed, out=f"runs-repro/{out.name}")
    write_json_atomic(out / HARDWARE_FILE, stamp)
    if records is not None:
        keep_record(out, records)
    return out


def keep_record(run_dir: Path, records: Path) -> Path:
    """Copy ``run_dir``'s record files (:data:`RECORD_FILES`, those it has) to
    ``records/<run name>/``, each atomically; returns that folder."""
    if not (run_dir / RESULTS_FILE).is_file():
        raise CnnkitError(f"{run_dir} has no {RESULTS_FILE}: only a finished run has a record to keep.")
    dest = records / run_dir.name
    for name in RECORD_FILES:
        if (run_dir / name).is_file():
            write_bytes_atomic(dest / name, (run_dir / name).read_bytes())
    config = read_json(dest / CONFIG_FILE)
    write_json_atomic(dest / CONFIG_FILE, {k: portable(v) for k, v in config.items()})
    return dest


def portable(value: Any) -> Any:
    """A path of this machine as the recipes write it: ``shared:<path>`` under the shared
    folder, relative to the repository under it; anything else unchanged."""
    if not isinstance(value, str) or not value.startswith("/"):
        return value
    path = Path(value)
    for root, prefix in ((shared_dir(), "shared:"), (ROOT, "")):
        if path.is_relative_to(root.resolve()):
            return prefix + path.relative_to(root.resolve()).as_posix()
    return value


def collect(root: Path) -> dict[str, list[Run]]:
    """Finished runs under ``root`` grouped by recipe (``<recipe>-s<seed>`` folders)."""
    groups: dict[str, list[Run]] = {}
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        match = RUN_NAME.match(folder.name)
        if not match or not (folder / "results.json").is_file():
            continue
        groups.setdefault(match["recipe"], []).append(Run.load(folder))
    return groups


def score(target: dict[str, Any], acc: float) -> float:
    """The run's number in the paper's metric (error or accuracy), in percent for errors."""
    return 100 * (1 - acc) if target["metric"] == "test_error" else acc


def ours(target: dict[str, Any], runs: list[Run]) -> str:
    values = [score(target, r.results["test_acc"]) for r in runs]
    pct = target["metric"] == "test_error"
    fmt = "{:.2f}%" if pct else "{:.4f}"
    text = fmt.format(statistics.mean(values))
    if len(values) > 1:
        text += " ± " + (fmt.format(statistics.stdev(values)).rstrip("%")) + ("%" if pct else "")
    met = ""
    goal = target.get("goal")
    if goal is not None:
        goal_value = 100 * goal if pct else goal
        ok = statistics.mean(values) <= goal_value if pct else statistics.mean(values) >= goal_value
        met = " ✓" if ok else " ✗"
    seeds = f" ({len(values)} seeds)" if len(values) > 1 else " (1 seed)"
    return text + seeds + met


def stamp(run: Run) -> dict[str, Any]:
    """The run's ``hardware.json`` (what :func:`run_recipe` wrote), or {} when it has none."""
    path = run.path / HARDWARE_FILE
    return read_json(path) if path.is_file() else {}


def hardware_text(runs: list[Run]) -> str:
    stamps = [s for s in map(stamp, runs) if s]
    if not stamps:
        return "not recorded"
    s = stamps[0]
    text = f"{s['cpu']}, {s['cores']} cores, {s['torch_threads']} torch threads"
    if s.get("gpu"):
        text += f", {s['gpu']}"
    loads = [x["load_average_1min"] for x in stamps if x.get("load_average_1min") is not None]
    if loads:
        low, high = f"{min(loads):.1f}", f"{max(loads):.1f}"
        spread = low if low == high else f"{low}–{high}"
        text += f" (load avg {spread} at start: shared)"
    return text


def plot_curves(name: str, runs: list[Run], path: Path) -> None:
    """Accuracy and loss per epoch, one line per seed, written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(9, 3.4))
    for run in runs:
        rows = run.metrics
        epochs = [int(r.get("epoch", i)) for i, r in enumerate(rows, 1)]
        seed = run.config.get("seed")
        for key, style in (("val", "-"), ("train", "--")):
            if any(f"{key}_acc" in r for r in rows):
                acc_ax.plot(epochs, [r.get(f"{key}_acc") for r in rows], style, label=f"{key} s{seed}")
                loss_ax.plot(epochs, [r.get(f"{key}_loss") for r in rows], style, label=f"{key} s{seed}")
        if "best_epoch" in run.results:
            acc_ax.plot([run.results["best_epoch"]], [run.results["test_acc"]], "k*", label=f"test s{seed}")
    acc_ax.set(xlabel="epoch", ylabel="accuracy", title=f"{name}: accuracy")
    loss_ax.set(xlabel="epoch", ylabel="loss", title=f"{name}: loss", yscale="log")
    for ax in (acc_ax, loss_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())


def minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def train_time_text(runs: list[Run]) -> str:
    """The engine's mean fit time, plus the whole command's when that is much longer (a
    linear probe's fit takes seconds; computing the bottleneck features takes the minutes)."""
    fit = statistics.mean(float(r.results.get("train_seconds", 0.0)) for r in runs)
    whole = [
        float(x["command_seconds"])
        for x in map(stamp, runs)
        if "command_seconds" in x and not x.get("resumed")
    ]
    if whole and statistics.mean(whole) > 1.5 * fit + 60:
        return f"{minutes(fit)} (whole command {minutes(statistics.mean(whole))})"
    return minutes(fit)


AIRBENCH_94_SECONDS = (
    3.29  # Jordan, "94% on CIFAR-10 in 3.29 seconds on a single GPU" (airbench, 2024), one A100
)


def reached(run: Run, level: float) -> tuple[int, float] | None:
    """(first epoch whose validation accuracy is >= level, training seconds up to its end)."""
    elapsed = 0.0
    for i, row in enumerate(run.metrics, 1):
        elapsed += float(row.get("time", 0.0))
        if float(row.get("val_acc", 0.0)) >= level:
            return int(row.get("epoch", i)), elapsed
    return None


def test_hit(run: Run, level: float) -> tuple[int, float] | None:
    """(epochs, training seconds) when the kept checkpoint's test accuracy is >= level: airbench's
    definition (the whole training run, then the test set), so the two times compare."""
    if float(run.results.get("test_acc", 0.0)) < level:
        return None
    return int(run.results.get("epochs", len(run.metrics))), float(run.results.get("train_seconds", 0.0))


def cifar_runs(groups: dict[str, list[Run]]) -> list[Run]:
    """Runs of CIFAR-10 recipes trained from scratch (the speed section's subject)."""

    def from_scratch_on_cifar(name: str) -> bool:
        recipe = load_recipe(name)
        return dataset_name(recipe) == "CIFAR-10" and not recipe.get("pretrained")

    return [run for name, runs in sorted(groups.items()) if from_scratch_on_cifar(name) for run in runs]


def time_to_accuracy(groups: dict[str, list[Run]]) -> list[str]:
    """The CIFAR-10 speed section: time to 91% and 94%, per run, and how far that is from
    airbench's 94% in 3.29 s on one A100."""
    lines = ["", "## CIFAR-10: time to 91% and to 94%", ""]
    lines += [
        "'test' is airbench's measure: the training time of a run whose kept checkpoint reaches "
        "the accuracy on the 10,000 test images. 'validation' is the first epoch whose accuracy on "
        "the held-out training images reaches it, with the sum of the epoch times in metrics.csv "
        "(training + validation, no start-up); on 500 images it is noisy (about ±1.3 points at "
        f"91%). airbench reaches 94% in {AIRBENCH_94_SECONDS} s on one A100.",
        "",
        "| run | test accuracy | 91% (test) | 94% (test) | validation images | 91% (validation) | best validation accuracy |",
        "|---|---|---|---|---|---|---|",
    ]
    runs = cifar_runs(groups)
    for run in runs:
        cells = [f"`{run.path.name}`", f"{float(run.results.get('test_acc', 0.0)):.2%}"]
        for level in (0.91, 0.94):
            hit = test_hit(run, level)
            cells.append("not reached" if hit is None else f"{hit[0]} epochs, {minutes(hit[1])}")
            if hit is not None and level == 0.94:
                cells[-1] += f" ({hit[1] / AIRBENCH_94_SECONDS:.0f}x airbench's time)"
        hit = reached(run, 0.91)
        best = max(float(r.get("val_acc", 0.0)) for r in run.metrics) if run.metrics else 0.0
        cells += [
            f"{int(run.results.get('split_sizes', {}).get('val', 0)):,}",
            "not reached" if hit is None else f"epoch {hit[0]}, {minutes(hit[1])}",
        ]
        lines.append("| " + " | ".join(cells + [f"{best:.2%}"]) + " |")
    if not runs:
        lines.append("| (no CIFAR-10 run yet) | — | — | — | — | — | — |")
    return lines + how_far(groups)


def total_macs(run: Run) -> int | None:
    """The forward multiply-adds per image from the run's summary.txt, if it has one."""
    try:
        text = (run.path / "summary.txt").read_text()
    except OSError:
        return None
    found = re.search(r"Total MACs: ([\d,]+)", text)
    return int(found.group(1).replace(",", "")) if found else None


def how_far(groups: dict[str, list[Run]]) -> list[str]:
    """How far the fastest CIFAR-10 run to 91% test accuracy is from airbench, and why, from its
    own numbers."""
    hits = [(hit[1], run, hit[0]) for run in cifar_runs(groups) if (hit := test_hit(run, 0.91))]
    if not hits:
        return []
    seconds, run, epoch = min(hits, key=lambda h: h[0])
    train = int(run.results.get("split_sizes", {}).get("train", 0))
    rate = train * epoch / seconds if seconds > 0 else 0.0  # images/s, validation time included
    if rate <= 0:
        return []
    lines = [
        "",
        f"**How far, and why.** `{run.path.name}` reached 91% test accuracy after {minutes(seconds)}, "
        f"{seconds / AIRBENCH_94_SECONDS:,.0f}x airbench's 3.29 s for 94%. It trained at about "
        f"{rate:,.0f} images/s.",
    ]
    macs = total_macs(run)
    if macs:
        flops = rate * macs * 2 * 3  # a multiply-add is 2 FLOPs; backward costs about 2x forward
        lines[-1] += (
            f" At {macs / 1e6:.1f} M multiply-adds per image forward, and about 3x that for a "
            f"training step, that is about {flops / 1e9:,.0f} GFLOP/s on {stamp(run).get('cores', '?')} CPU cores. "
            "An A100 gives about 312 TFLOP/s in bf16, "
            f"about {312e12 / flops:,.0f}x more: the hardware gap alone is of the order of the "
            "whole gap."
        )
    lines[-1] += (
        " The rest is the recipe. airbench trains a net built for that speed in about 10 epochs, "
        "with whitened first-layer weights, lookahead, label smoothing and flip test-time "
        "augmentation. ResNet-20 (0.27M parameters) tops out near 91-92% even with the paper's "
        "182 epochs, so 94% needs a wider net. A ResNet-18-width CIFAR net costs about "
        "0.56 G multiply-adds per image, about 14x ResNet-20, or about "
        f"{rate / 14:,.0f} images/s here: about {train * 10 / (rate / 14) / 3600:.1f} h for 10 epochs."
    )
    return lines


def render(root: Path, out: Path, curves: Path) -> str:
    groups = collect(root)
    header = "| recipe | model | dataset | paper | ours | epochs | train time | hardware | command | curves |"
    lines = [
        "# Reproduction of published results",
        "",
        "Generated by `python bench/make_reproduction.py` from the run records in "
        f"`{root.relative_to(ROOT) if root.is_relative_to(ROOT) else root}/` "
        "(results.json, metrics.csv, config.json, hardware.json, summary.txt: copied from each "
        "run directory when its run ends, committed); do not edit by hand. "
        "'ours' is the test split's number of the checkpoint the recipe keeps (the best by "
        "validation accuracy, or the last epoch where its `monitor` is the training loss), "
        "mean ± sample standard deviation over seeds; ✓/✗: the recipe's goal is met or not. "
        "'train time' is the engine's fit time per seed (mean), and the whole command's "
        "where that is much longer (computing a probe's features). "
        "Each recipe's departures from its paper, and why: `cnnkit recipes NAME`.",
        "",
        header,
        "|" + "---|" * (header.count("|") - 1),
    ]
    for name in list_recipes():
        recipe, runs = load_recipe(name), groups.get(name, [])
        target = recipe["target"]
        cells = [f"`{name}`", str(recipe["model"]), dataset_name(recipe), paper_text(target, "—")]
        if runs:
            seeds = sorted(int(r.config.get("seed", 0)) for r in runs)
            epochs = {int(r.results.get("epochs", len(r.metrics))) for r in runs}
            png = curves / f"{name}.png"
            plot_curves(name, runs, png)
            rel = os.path.relpath(png, out.parent)
            command = f"`{recipe_command(name, seed=seeds[0])}`"
            if len(seeds) > 1:
                command += f" (seeds {', '.join(map(str, seeds))})"
            cells += [ours(target, runs), "/".join(map(str, sorted(epochs))), train_time_text(runs),
                      hardware_text(runs), command, f"[png]({rel})"]  # fmt: skip
        else:
            cells += ["not run yet", str(recipe["epochs"]), "—", "—", f"`{recipe_command(name)}`", "—"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "## The commands spelled out",
        "",
        "`cnnkit train --recipe NAME` is the same as these flags (explicit flags override the recipe):",
        "",
    ]
    lines += [f"- `{name}`: `{recipe_command(name, expand=True)}`" for name in list_recipes()]
    lines += time_to_accuracy(groups)
    lines += ["", "## Curves", ""]
    lines += [f"### {name}\n\n![{name}]({os.path.relpath(curves / f'{name}.png', out.parent)})\n"
              for name in list_recipes() if name in groups]  # fmt: skip
    text = "\n".join(lines).rstrip() + "\n"
    write_text_atomic(out, text)
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="action")
    r = sub.add_parser("run", help="train one recipe into runs-repro/<recipe>-s<seed>/")
    r.add_argument("recipe")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--resume", action="store_true", help="continue runs-repro/<recipe>-s<seed> (stopped)")
    r.add_argument("--into", type=Path, default=RUNS, help="folder the run is trained in (runs-repro/)")
    k = sub.add_parser("keep", help="copy a finished run's record into docs/reproduction/runs/")
    k.add_argument("run_dir", type=Path)
    p.add_argument(
        "--runs",
        type=Path,
        default=RECORDS,
        help="folder of <recipe>-s<seed> records (docs/reproduction/runs/)",
    )
    p.add_argument("--out", type=Path, default=OUT, help="markdown file to write (REPRODUCTION.md)")
    p.add_argument("--curves", type=Path, default=CURVES, help="folder for the PNGs (docs/reproduction/)")
    args = p.parse_args(argv)
    try:
        if args.action == "run":
            print(run_recipe(args.recipe, args.seed, args.into, args.resume, records=args.runs))
            return 0
        if args.action == "keep":
            print(keep_record(args.run_dir, args.runs))
            return 0
        render(args.runs.resolve(), args.out.resolve(), args.curves.resolve())
    except CnnkitError as exc:
        print(f"make_reproduction: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
