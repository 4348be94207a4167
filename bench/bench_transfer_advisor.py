"""Does ``--regime auto`` pick the regime that wins? Two real datasets of different kinds.

    python bench/bench_transfer_advisor.py                       # CIFAR-10 and MNIST, 60 s per regime
    python bench/bench_transfer_advisor.py --datasets cifar10 fashion --budget 90 --images 3000
    python bench/bench_transfer_advisor.py --measure-only        # the advisor's numbers only

For each dataset, ``--images`` training images (balanced over the 10 classes, upscaled to
``--size`` px) from the shared datasets: first the advisor's measurements and choice
(``cnnkit.fit(..., regime="auto")`` = what ``cnnkit train --regime auto`` prints), then all
four regimes - features, truncate (at the advisor's cut), finetune, full - each trained
with the same recipe (Adam 1e-3, constant rate, no augmentation) under the same wall-time
budget of the training loop (``max_time``), scored on the same held-out images. The
features regime embeds the images once before its loop (reported in its wall time).
Prints one table per dataset and whether the advice matched the winner.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

import cnnkit
from cnnkit.shared import shared_path

DATASETS = {
    "cifar10": ("cifar", ("datasets", "cifar-10-batches-py")),
    "mnist": ("idx", ("datasets", "MNIST", "raw")),
    "fashion": ("idx", ("datasets", "FashionMNIST", "raw")),
}


def load(name: str, images: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``images`` training images, the same number per class (the first of each)."""
    from cnnkit.data.sources import load_cifar_data, load_idx_data

    kind, parts = DATASETS[name]
    path = shared_path(*parts)
    if not path.exists():
        raise SystemExit(f"{path} is missing (set CNNKIT_SHARED)")
    data = (load_cifar_data if kind == "cifar" else load_idx_data)(path, images * 3)
    x, y = data.splits["train"]
    per_class = images // 10
    keep = torch.cat([torch.nonzero(y == c).flatten()[:per_class] for c in range(10)])
    return x[keep], y[keep]


def run(name: str, data: tuple, args: argparse.Namespace, out: Path, **options: object) -> dict:
    start = time.perf_counter()
    history = cnnkit.fit(
        args.model,
        data,
        pretrained=True,
        image_size=args.size,
        augment=None,
        schedule="none",
        batch_size=64,
        out=str(out),
        verbose=0,
        seed=0,
        **options,
    )
    r = history.results
    return {
        "acc": r["test_acc"],
        "epochs": r["epochs"],
        "wall": time.perf_counter() - start,
        "loop": r["train_seconds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["cifar10", "mnist"], choices=sorted(DATASETS))
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds of training loop per regime")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--measure-only", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    summary = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets:
            data = load(name, args.images)
            auto = cnnkit.fit(
                args.model, data, pretrained=True, regime="auto", image_size=args.size, augment=None,
                epochs=1, out=str(Path(tmp) / f"{name}-auto"), verbose=0,
            )  # fmt: skip
            advice = __import__("json").loads((Path(tmp) / f"{name}-auto" / "advice.json").read_text())
            print(f"\n== {name}: {args.images} images at {args.size} px, {args.model}")
            print(f"advice: {advice['reason']}")
            if args.measure_only:
                continue
            cut = advice["cut"] or "stages.4"
            rows = {}
            budget = {"epochs": 10_000, "max_time": f"{args.budget}s"}
            rows["features"] = run(name, data, args, Path(tmp) / f"{name}-f", regime="features", **budget)
            rows["truncate"] = run(
                name, data, args, Path(tmp) / f"{name}-t", regime="truncate", cut=cut, **budget
            )
            rows["finetune"] = run(name, data, args, Path(tmp) / f"{name}-ft", regime="finetune", **budget)
            rows["full"] = run(name, data, args, Path(tmp) / f"{name}-full", regime="full", **budget)
            print(f"{'regime':10s} {'test acc':>9s} {'epochs':>7s} {'loop s':>7s} {'wall s':>7s}")
            for regime, r in rows.items():
                mark = " <- advised" if regime == advice["regime"] else ""
                print(
                    f"{regime:10s} {r['acc']:9.4f} {r['epochs']:7d} {r['loop']:7.1f} {r['wall']:7.1f}{mark}"
                )
            winner = max(rows, key=lambda k: rows[k]["acc"])
            summary.append(
                (name, advice["regime"], winner, rows[advice["regime"]]["acc"], rows[winner]["acc"])
            )
            del auto
    for name, advised, winner, a, w in summary:
        verdict = "matches" if advised == winner else f"differs (advised {a:.4f} vs best {w:.4f})"
        print(f"{name}: advised {advised}, winner {winner}: {verdict}")


if __name__ == "__main__":
    main()
