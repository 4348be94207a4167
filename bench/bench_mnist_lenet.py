"""``cnnkit train --data MNIST --model lenet5 --epochs 3`` vs a hand-written loop, same run.

    python bench/bench_mnist_lenet.py                 # 2 threads, 1 repeat of each
    python bench/bench_mnist_lenet.py --threads 1 --repeats 3

The baseline is the loop one would write by hand for the same recipe: MNIST as in-memory
uint8 tensors, normalised per batch, LeNet-5, batch 256, Adam with a one-cycle schedule
peaking at 1e-2, 3 epochs, then the 10,000 official test images - no validation, no
checkpoints, no logging. cnnkit runs exactly as a user types it (its defaults for a
dataset this size: batch 256, onecycle peaking at 1e-2, ``augment=auto`` = none above
20,000 images; plus validation every epoch, checkpoints and metrics.csv), through the real
CLI in a fresh process, typed exactly as above (``--data MNIST`` is the shared dataset; the
run directory goes to ``runs/`` of a temporary folder). The hand loop is timed the same way,
as a whole command in a fresh process (interpreter start, ``import torch``, reading the IDX
files), and also in-process next to ``cnnkit.fit``. Both must reach 99.0% test accuracy;
the goal is a wall-time ratio cnnkit command / hand-loop command <= 1.0. Medians over
``--repeats``, interleaved.
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


def hand_loop_command(threads: int) -> tuple[float, float]:
    """(wall seconds, test accuracy) of the hand loop as a whole command in a fresh process:
    interpreter start, ``import torch`` and data loading included, as for ``cnnkit train``."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, "--hand-loop-only", "--threads", str(threads)],
        check=True, env=env, capture_output=True, text=True,
    )  # fmt: skip
    return time.perf_counter() - start, json.loads(out.stdout.strip().splitlines()[-1])["acc"]


def cli_run(threads: int) -> tuple[float, float]:
    """(wall seconds, test accuracy) of ``cnnkit train`` as typed, in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        cmd = ["cnnkit", "train", "--data", "MNIST", "--model", "lenet5", "--epochs", "3"]  # as typed
        start = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, cwd=tmp, capture_output=True)
        wall = time.perf_counter() - start
        (run,) = (Path(tmp) / "runs").iterdir()
        return wall, json.loads((run / "results.json").read_text())["test_acc"]


def fit_run() -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        history = cnnkit.fit("lenet5", str(MNIST), epochs=3, out=str(Path(tmp) / "run"), verbose=0)
        return time.perf_counter() - start, history.results["test_acc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--hand-loop-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hand_loop_only:  # the child process of hand_loop_command
        torch.set_num_threads(args.threads)
        print(json.dumps({"acc": hand_loop()[1]}))
        return
    if not MNIST.exists():
        raise SystemExit(f"{MNIST} is missing (set CNNKIT_SHARED)")
    torch.set_num_threads(args.threads)
    runs: dict[str, list[tuple[float, float]]] = {
        "hand loop (command)": [],
        "cnnkit train (CLI)": [],
        "hand loop (in-process)": [],
        "cnnkit.fit": [],
    }
    for _ in range(args.repeats):  # interleaved, so machine load hits all alike
        runs["hand loop (command)"].append(hand_loop_command(args.threads))
        runs["cnnkit train (CLI)"].append(cli_run(args.threads))
        runs["hand loop (in-process)"].append(hand_loop())
        runs["cnnkit.fit"].append(fit_run())
    base = statistics.median(t for t, _ in runs["hand loop (command)"])
    print(f"LeNet-5, MNIST, 3 epochs, {args.threads} thread(s), median of {args.repeats}")
    print(f"{'':24s} {'seconds':>8s} {'test acc':>9s} {'vs hand loop command':>21s}")
    for name, rows in runs.items():
        seconds = statistics.median(t for t, _ in rows)
        acc = statistics.median(a for _, a in rows)
        print(f"{name:24s} {seconds:8.1f} {acc:9.4f} {seconds / base:20.2f}x")


if __name__ == "__main__":
    main()
