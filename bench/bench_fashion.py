"""Best Fashion-MNIST test accuracy a zoo network reaches in a fixed CPU budget (default
10 minutes), trained with ``cnnkit.fit``, next to the published benchmark table.

    python bench/bench_fashion.py                              # seed_cifar_cnn, 600 s, 2 threads
    python bench/bench_fashion.py --model lenet5 --budget 120

The learning rate follows the clock, not an epoch count: a short warm-up, then cosine
annealing to zero over the budget, and training stops at the last epoch boundary that
fits. On a shared machine an epoch plan made in advance is wrong either way (a one-cycle
schedule cut off by the clock ends at a high rate; one planned too short wastes the
budget). Augmentation: random horizontal flips only (clothes are left-right symmetric).
The test accuracy is that of the best checkpoint (by validation accuracy) on the official
10,000 test images.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

import cnnkit
from cnnkit.shared import shared_path

FASHION = shared_path("datasets", "FashionMNIST", "raw")
AUGMENT = "horizontal_flip=true"
# zalandoresearch/fashion-mnist README benchmark (see ../shared/reference/README.md)
PUBLISHED = {"2 conv layers, < 100K params": 0.925, "ResNet-18 + flip/translate/rotate": 0.949}


class TimeBudgetSchedule(L.Callback):
    """Learning rate as a function of elapsed time: 5% linear warm-up, then cosine to 0."""

    def __init__(self, budget: float, peak: float, warmup: float = 0.05) -> None:
        self.budget, self.peak, self.warmup = budget, peak, warmup
        self.start = self.epoch_start = 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epoch_start = time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        done = min(1.0, (time.perf_counter() - self.start) / self.budget)
        if done < self.warmup:
            lr = self.peak * (0.04 + 0.96 * done / self.warmup)
        else:
            lr = self.peak * 0.5 * (1 + math.cos(math.pi * (done - self.warmup) / (1 - self.warmup)))
        for group in trainer.optimizers[0].param_groups:
            group["lr"] = lr

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        now = time.perf_counter()
        if now - self.start + (now - self.epoch_start) > self.budget:  # the next epoch would not fit
            trainer.should_stop = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="seed_cifar_cnn")
    parser.add_argument("--budget", type=float, default=600.0, help="seconds of training")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (Adam)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--augment", default=AUGMENT)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        history = cnnkit.fit(
            args.model,
            str(FASHION),
            epochs=10_000,  # the budget decides
            batch_size=args.batch_size,
            optimizer="adam",
            schedule="none",
            augment=args.augment,
            max_time=f"{int(args.budget * 1.2)}s",  # hard stop, should an epoch run long
            callbacks=[TimeBudgetSchedule(args.budget, args.lr)],
            out=str(Path(tmp) / "run"),
            verbose=2,
        )
    results = history.results
    print(f"\n{args.model} ({results['params']:,} params) on Fashion-MNIST, budget {args.budget:.0f} s")
    print(f"  {args.threads} thread(s); {results['epochs']} epochs in {results['train_seconds']:.0f} s")
    print(f"  best val acc {results['best_val_acc']:.4f}; test acc (official 10k) {results['test_acc']:.4f}")
    for name, acc in PUBLISHED.items():
        print(f"  published {name}: {acc:.3f}  (ours / published = {results['test_acc'] / acc:.3f})")


if __name__ == "__main__":
    main()
