"""Cached bottleneck features: how much faster, and how good, on real data.

(a) Epoch time of the same head on the same images, trained on cached features
    (``cnnkit.features``) vs with the frozen backbone run on every batch of every epoch.
    Median of repeats, measured in this run; the ratio is the claim (>= 10x).
(b) CIFAR-10 and Fashion-MNIST (a "different" dataset for an ImageNet backbone): a linear
    probe (and an MLP head) on cached EfficientNet-Lite0 features vs the same net fine-tuned
    vs trained from scratch, each given the same CPU time budget; test accuracy, CPU and wall
    seconds in one table. Fine-tune and scratch run in a plain torch loop here (AdamW, random
    horizontal flips, batch 64, BatchNorm in train mode) so that the budget is exact. Every
    loop uses the thread rule of ``cnnkit.features.threads`` (one thread for small batches).

The budget is wall-clock seconds on this machine's CPU (``--clock cpu``: process CPU
time, all threads); both CPU and wall seconds are reported, so on a machine shared with
other work the compute each method really got is visible.

    python bench/bench_features.py            # both parts, ~18 min on 2 cores shared with others
    python bench/bench_features.py --part a
    python bench/bench_features.py --train 5000 --test 2000 --size 96 --budget 240   # a free machine

Defaults (2,000 train / 1,000 test images per dataset at 64 px, 100 s per trained net) are
sized for 2 CPU cores shared with other work; larger runs only need the flags above.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import cnnkit
from cnnkit.data import augment_batch
from cnnkit.data.augment import AugmentConfig
from cnnkit.data.sources import load_cifar_data, load_idx_data
from cnnkit.features import Features, extract_features, fit_head, load_backbone
from cnnkit.features.backbone import embedder
from cnnkit.features.extract import normalize, to_model_size
from cnnkit.features.threads import one_thread, small_on_cpu
from cnnkit.shared import shared_path

FLIP = AugmentConfig.from_dict({"horizontal_flip": True})


def load_subset(name: str, n_train: int, n_test: int) -> tuple[torch.Tensor, ...]:
    """uint8 (N, 3, H, W) train/test images and labels: the first n of each official split."""
    if name == "cifar10":
        data = load_cifar_data(shared_path("datasets", "cifar-10-batches-py"), limit=max(n_train, n_test))
    else:
        data = load_idx_data(shared_path("datasets", "FashionMNIST", "raw"), limit=max(n_train, n_test))
    (xtr, ytr), (xte, yte) = data.splits["train"], data.splits["test"]
    xtr, ytr, xte, yte = xtr[:n_train], ytr[:n_train], xte[:n_test], yte[:n_test]
    if xtr.shape[1] == 1:  # gray -> the 3 channels the ImageNet backbone takes
        xtr, xte = xtr.expand(-1, 3, -1, -1).contiguous(), xte.expand(-1, 3, -1, -1).contiguous()
    return xtr, ytr, xte, yte, data.classes


def batches(n: int, size: int, g: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=g)
    return [order[i : i + size] for i in range(0, n, size)]


# ----------------------------------------------------------------------------- (a)
def part_a(args: argparse.Namespace) -> dict:
    """Head epochs: cached features vs frozen backbone each epoch (same head, data, order)."""
    backbone = load_backbone("efficientnet_lite0")
    pre = dataclasses.replace(backbone.preprocess, size=(args.size, args.size), resize_size=None)
    net = backbone.net.eval()
    embed = embedder(net)
    x, y, _, _, classes = load_subset("cifar10", args.epoch_images, 1)
    feats = extract_features(
        dataclasses.replace(backbone, preprocess=pre),
        (x, y),
        val_fraction=0.0,
        test_fraction=0.0,
        cache_dir=False,
        progress=False,
        classes=classes,
    )
    order = np.argsort([int(n.split("/")[1]) for n in feats.names])  # rows back in x's order
    codes = torch.from_numpy(feats.embeddings[order])
    head = nn.Linear(codes.shape[1], 10)
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3)

    def epoch(inputs) -> float:  # noqa: ANN001 - idx -> features
        g = torch.Generator().manual_seed(0)
        start = time.perf_counter()
        for idx in batches(len(y), 64, g):
            loss = F.cross_entropy(head(inputs(idx)), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        return time.perf_counter() - start

    def live(idx: torch.Tensor) -> torch.Tensor:
        inputs = normalize(to_model_size(x[idx], pre), pre)
        with torch.no_grad(), one_thread(small_on_cpu(inputs)):  # frozen: no graph, threads as extraction
            return embed(inputs)

    with one_thread():  # as fit_head trains: head-sized ops on one thread
        cached = [epoch(lambda idx: codes[idx]) for _ in range(args.repeats_cached)]
    frozen = [epoch(live) for _ in range(args.repeats_frozen)]
    out = {
        "images": len(y),
        "size": args.size,
        "cached_epoch_s": statistics.median(cached),
        "frozen_backbone_epoch_s": statistics.median(frozen),
    }
    out["ratio"] = out["frozen_backbone_epoch_s"] / out["cached_epoch_s"]
    print(
        f"(a) {len(y)} CIFAR-10 images at {args.size} px, linear head, batch 64: "
        f"cached {1000 * out['cached_epoch_s']:.1f} ms/epoch (median of {len(cached)}), "
        f"frozen backbone {out['frozen_backbone_epoch_s']:.2f} s/epoch (median of {len(frozen)}): "
        f"{out['ratio']:.0f}x",
        flush=True,
    )
    return out


# ----------------------------------------------------------------------------- (b)
@torch.inference_mode()
def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, pre) -> float:  # noqa: ANN001
    net.eval()
    correct = 0
    for i in range(0, len(y), 128):
        inputs = normalize(to_model_size(x[i : i + 128], pre), pre)
        with one_thread(small_on_cpu(inputs)):
            logits = net(inputs)
        correct += int((logits.argmax(1) == y[i : i + 128]).sum())
    return correct / len(y)


def train_for(
    net: nn.Module,
    groups: list[dict],
    x: torch.Tensor,
    y: torch.Tensor,
    pre,  # noqa: ANN001
    budget: float,
    clock: str,
) -> dict:
    """AdamW on (x, y) with flips until ``budget`` seconds of ``clock`` are spent; cosine LR over them."""
    opt = torch.optim.AdamW(groups, weight_decay=1e-4)
    base = [group["lr"] for group in opt.param_groups]
    g = torch.Generator().manual_seed(0)
    now = time.process_time if clock == "cpu" else time.perf_counter
    cpu0, wall0, start, seen = time.process_time(), time.perf_counter(), now(), 0
    net.train()
    while now() - start < budget:
        for idx in batches(len(y), 64, g):
            used = now() - start
            if used >= budget:
                break
            for group, lr in zip(opt.param_groups, base, strict=True):
                group["lr"] = lr * 0.5 * (1 + np.cos(np.pi * used / budget))
            inputs = normalize(augment_batch(to_model_size(x[idx], pre), FLIP, g), pre)
            with one_thread(small_on_cpu(inputs)):  # the same thread rule as feature extraction
                loss = F.cross_entropy(net(inputs), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            seen += len(idx)
    return {
        "epochs": seen / len(y),
        "cpu_s": time.process_time() - cpu0,
        "wall_s": time.perf_counter() - wall0,
    }


def part_b(name: str, args: argparse.Namespace) -> list[dict]:
    xtr, ytr, xte, yte, classes = load_subset(name, args.train, args.test)
    backbone = load_backbone("efficientnet_lite0")
    pre = dataclasses.replace(backbone.preprocess, size=(args.size, args.size), resize_size=None)
    backbone = dataclasses.replace(backbone, preprocess=pre)
    rows = []
    # -- probe: extract once (train/val + test), then heads on the cache
    cpu0, wall0 = time.process_time(), time.perf_counter()
    common = {"cache_dir": False, "progress": False, "classes": classes, "batch_size": 128}
    trainval = extract_features(backbone, (xtr, ytr), val_fraction=0.1, test_fraction=0.0, **common)
    test = extract_features(backbone, (xte, yte), val_fraction=0.0, test_fraction=0.0, **common)
    test = dataclasses.replace(test, splits=np.full(len(test), "test", dtype="<U5"))
    feats = Features.concat([trainval, test])
    extract_cpu, extract_wall = time.process_time() - cpu0, time.perf_counter() - wall0
    train_rows = torch.as_tensor([int(n.split("/")[1]) for n in trainval.split("train").names])
    for head, epochs in (("linear", 60), ("mlp", 60)):
        cpu1, wall1 = time.process_time(), time.perf_counter()
        result = fit_head(feats, head=head, epochs=epochs, lr=3e-3 if head == "linear" else 1e-3)
        rows.append(
            {
                "dataset": name,
                "method": f"{head} head on cached features",
                "test_acc": result.test_acc,
                "epochs": epochs,
                "cpu_s": extract_cpu + time.process_time() - cpu1,
                "wall_s": extract_wall + time.perf_counter() - wall1,
                "note": f"extraction {extract_wall:.0f} s wall of it",
            }
        )
        print(rows[-1], flush=True)
    # -- fine-tune and scratch on the same training rows, same budget
    x, y = xtr[train_rows], ytr[train_rows]
    torch.manual_seed(0)
    tuned = cnnkit.create_model("efficientnet_lite0", pretrained=True, num_classes=len(classes))
    head_params = list(tuned.get_classifier().parameters())
    ids = {id(p) for p in head_params}
    rest = [p for p in tuned.parameters() if id(p) not in ids]
    torch.manual_seed(0)
    scratch = cnnkit.create_model("efficientnet_lite0", num_classes=len(classes))
    plans = (
        (
            "fine-tune (ImageNet init, all layers)",
            tuned,
            [{"params": rest, "lr": 3e-4}, {"params": head_params, "lr": 3e-3}],
        ),
        ("from scratch (random init)", scratch, [{"params": list(scratch.parameters()), "lr": 2e-3}]),
    )
    for method, net, groups in plans:
        spent = train_for(net, groups, x, y, pre, args.budget, args.clock)
        wall1 = time.perf_counter()
        acc = accuracy(net, xte, yte, pre)
        rows.append(
            {
                "dataset": name,
                "method": method,
                "test_acc": acc,
                "epochs": round(spent["epochs"], 2),
                "cpu_s": spent["cpu_s"],
                "wall_s": spent["wall_s"] + time.perf_counter() - wall1,
                "note": "budget spent training; + test pass",
            }
        )
        print(rows[-1], flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| dataset | method | test acc | epochs | CPU s | wall s | note |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['method']} | {100 * r['test_acc']:.1f}% | {r['epochs']} | "
            f"{r['cpu_s']:.0f} | {r['wall_s']:.0f} | {r['note']} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=["a", "b", "all"], default="all")
    p.add_argument("--train", type=int, default=2000, help="training images per dataset (10%% become val)")
    p.add_argument("--test", type=int, default=1000, help="test images per dataset")
    p.add_argument("--size", type=int, default=64, help="input side in pixels")
    p.add_argument("--budget", type=float, default=100.0, help="seconds for fine-tune and for scratch each")
    p.add_argument(
        "--clock", choices=["wall", "cpu"], default="wall", help="what --budget counts (default wall)"
    )
    p.add_argument("--epoch-images", type=int, default=300, help="(a): images per epoch")
    p.add_argument("--repeats-cached", type=int, default=7)
    p.add_argument("--repeats-frozen", type=int, default=2)
    p.add_argument("--datasets", default="cifar10,fashion")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = p.parse_args()
    start = time.perf_counter()
    out: dict = {"settings": vars(args) | {"json": str(args.json)}, "threads": torch.get_num_threads()}
    if args.part in ("a", "all"):
        out["a"] = part_a(args)
    if args.part in ("b", "all"):
        rows = [row for name in args.datasets.split(",") for row in part_b(name, args)]
        out["b"] = rows
        print(table(rows))
    out["total_wall_s"] = time.perf_counter() - start
    print(f"total {out['total_wall_s']:.0f} s wall")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
