"""``cnnkit train --data MNIST --model lenet5 --epochs 3`` vs a hand-written loop, same run.

    python bench/bench_mnist_lenet.py                 # 2 threads, 1 repeat of each
    python bench/bench_mnist_lenet.py --threads 1 --repeats 3

The baseline is the loop one would write by hand for the same recipe: MNIST as in-memory
uint8 tensors, normalised per batch, LeNet-5, batch 256, Adam with a one-cycle schedule
peaking at 1e-2, 3 epochs, then the 10,000 official test images - no validation, no
checkpoints, no logging. cnnkit runs exactly as a user types it (its defaults for a
dataset this size: batch 256, onecycle peaking at 1e-2, ``augment=auto`` = none above
20,000 images; plus validation every epoch, checkpoints and metrics.csv), through the real
CLI in a fresh process (wall time includes interpreter start and imports), and through
``cnnkit.fit`` in-process. Both must reach 99.0% test accuracy; the goal is a wall-time
ratio cnnkit / hand loop <= 1.0. Medians over ``--repeats``, interleaved.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import cnnkit
from cnnkit.shared import shared_path

MNIST = shared_path("datasets", "MNIST", "raw")


def hand_loop(epochs: int = 3, batch: int = 256, peak: float = 1e-2, seed: int = 0) -> tuple[float, float]:
    """(seconds, test accuracy) of the hand-written loop, data loading included."""
    from cnnkit.data.sources import load_idx_data

    start = time.perf_counter()
    data = load_idx_data(MNIST)
    (x, y), (xt, yt) = data.splits["train"], data.splits["test"]
    mean, std = x.float().mean() / 255, x.float().std() / 255
    torch.manual_seed(seed)
    model = cnnkit.create_model("lenet5", num_classes=10)
    opt = torch.optim.Adam(model.parameters(), lr=peak / 10)
    steps = epochs * (len(y) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=peak, total_steps=steps)
    for _ in range(epochs):
        order = torch.randperm(len(y))
        for b in range(len(y) // batch):
            idx = order[b * batch : (b + 1) * batch]
            xb = (x[idx].float() / 255 - mean) / std
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    with torch.no_grad():
        correct = sum(
            int((model((xt[i : i + 1000].float() / 255 - mean) / std).argmax(1) == yt[i : i + 1000]).sum())
            for i in range(0, len(yt), 1000)
        )
    return time.perf_counter() - start, correct / len(yt)


def cli_run(threads: int) -> tuple[float, float]:
    """(wall seconds, test accuracy) of ``cnnkit train`` as typed, in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        cmd = [
            sys.executable,
            "-m",
            "cnnkit",
            "train",
            "--data",
            str(MNIST),
            "--model",
            "lenet5",
            "--epochs",
            "3",
        ]
        start = time.perf_counter()
        subprocess.run([*cmd, "--out", str(Path(tmp) / "run"), "--quiet"], check=True, env=env, cwd=tmp)
        wall = time.perf_counter() - start
        return wall, json.loads((Path(tmp) / "run" / "results.json").read_text())["test_acc"]


def fit_run() -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        history = cnnkit.fit("lenet5", str(MNIST), epochs=3, out=str(Path(tmp) / "run"), verbose=0)
        return time.perf_counter() - start, history.results["test_acc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    if not MNIST.exists():
        raise SystemExit(f"{MNIST} is missing (set CNNKIT_SHARED)")
    torch.set_num_threads(args.threads)
    runs: dict[str, list[tuple[float, float]]] = {"hand loop": [], "cnnkit.fit": [], "cnnkit train (CLI)": []}
    for _ in range(args.repeats):  # interleaved, so machine load hits all three alike
        runs["hand loop"].append(hand_loop())
        runs["cnnkit.fit"].append(fit_run())
        runs["cnnkit train (CLI)"].append(cli_run(args.threads))
    base = statistics.median(t for t, _ in runs["hand loop"])
    print(f"LeNet-5, MNIST, 3 epochs, {args.threads} thread(s), median of {args.repeats}")
    print(f"{'':20s} {'seconds':>8s} {'test acc':>9s} {'vs hand':>8s}")
    for name, rows in runs.items():
        seconds = statistics.median(t for t, _ in rows)
        acc = statistics.median(a for _, a in rows)
        print(f"{name:20s} {seconds:8.1f} {acc:9.4f} {seconds / base:7.2f}x")


if __name__ == "__main__":
    main()
