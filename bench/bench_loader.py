"""How fast the data package feeds a model: images/s of the training loader, with ratios.

(a) in-memory MNIST 28x28, batched augmentation ("default": rotation 10, shifts 0.1, zoom 0.1)
(b) the same augmentation per image with PIL (ImageDataGenerator style), same images: ratio a/b
(c) a folder of real JPEGs (CIFAR-10 images upscaled to 224x224): second-epoch loader speed
    decoding every epoch vs reading the memory-mapped cache (and cache + augmentation): ratio
    of medians over interleaved repeats
(d) what a model consumes: training-step images/s of LeNet-5 at 28px and ResNet-18 at 224px,
    and whether the loader keeps up.

    python bench/bench_loader.py            # about 3-5 minutes on 2 CPU cores
    python bench/bench_loader.py --quick    # fewer images
    python bench/bench_loader.py --folder --repeats 5   # only (c), medians of 5 interleaved runs
"""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import cnnkit
from cnnkit.data import AugmentConfig, build_datamodule
from cnnkit.data.sources import load_cifar_data
from cnnkit.shared import shared_path

DATASETS = shared_path("datasets")  # ../shared beside the checkout, or $CNNKIT_SHARED


def loader_rate(loader, max_images: int) -> float:  # noqa: ANN001
    """Images/s over (up to) max_images of one pass, after a warm-up batch."""
    it = iter(loader)
    next(it)
    seen, start = 0, time.perf_counter()
    for x, _ in it:
        seen += len(x)
        if seen >= max_images:
            break
    return seen / (time.perf_counter() - start)


def pil_per_image_rate(images: np.ndarray, config: AugmentConfig, mean: float, std: float) -> float:
    """Baseline: one PIL affine warp per image, then stack and normalise (Keras-generator style)."""
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    batch = []
    for array in images:
        h, w = array.shape
        angle = math.radians(rng.uniform(-config.rotation_range, config.rotation_range))
        zoom = rng.uniform(*config.zoom_bounds)
        tx = rng.uniform(-config.width_shift_range, config.width_shift_range) * w
        ty = rng.uniform(-config.height_shift_range, config.height_shift_range) * h
        cos, sin = math.cos(angle) * zoom, math.sin(angle) * zoom
        cx, cy = w / 2, h / 2  # output -> input map about the centre, as Image.transform wants
        coeffs = (cos, -sin, cx - cos * cx + sin * cy - tx, sin, cos, cy - sin * cx - cos * cy - ty)
        warped = Image.fromarray(array).transform((w, h), Image.AFFINE, coeffs, Image.BILINEAR)
        batch.append((np.asarray(warped, dtype=np.float32) / 255.0 - mean) / std)
        if len(batch) == 128:
            torch.from_numpy(np.stack(batch))[:, None]
            batch = []
    return len(images) / (time.perf_counter() - start)


def write_jpeg_folder(root: Path, count: int) -> None:
    data = load_cifar_data(DATASETS / "cifar-10-batches-py", limit=count)
    x, y = data.splits["train"]
    for i in range(count):
        folder = root / data.classes[int(y[i])]
        folder.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(x[i].permute(1, 2, 0).numpy()).resize((224, 224), Image.BICUBIC)
        image.save(folder / f"{i:05d}.jpg", quality=90)


def train_step_rate(name: str, size: int, channels: int, batch: int, steps: int) -> float | None:
    if name not in cnnkit.list_models():
        return None
    model = cnnkit.create_model(name, num_classes=10, in_chans=channels)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, channels, size, size)
    y = torch.randint(0, 10, (batch,))
    times = []
    for _ in range(steps + 1):  # the first step warms up
        start = time.perf_counter()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        times.append(time.perf_counter() - start)
    return batch / float(np.median(times[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images and steps")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of (c); medians are reported")
    parser.add_argument("--folder", action="store_true", help="only (c), the image-folder loader")
    args = parser.parse_args()
    n_mem, n_pil, n_jpeg, n_measure = (6400, 2000, 600, 300) if args.quick else (25600, 6000, 2000, 1000)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    batched = 0.0
    if not args.folder:  # (a) + (b): in-memory MNIST, batched vs per-image augmentation
        dm = build_datamodule(DATASETS / "MNIST" / "raw", batch_size=128, augment="default")
        batched = loader_rate(dm.train_dataloader(), n_mem)
        images = dm.splits["train"][0][:n_pil, 0].numpy()
        per_image = pil_per_image_rate(images, dm.augment, dm.mean[0], dm.std[0])
        print(f"(a) MNIST 28px in memory, batched augmentation : {batched:10.0f} img/s")
        print(f"(b) same augmentation per image with PIL        : {per_image:10.0f} img/s")
        print(f"    batched / per-image                          : {batched / per_image:10.1f} x")

    # (c): image folder of real JPEGs, epoch 2 with and without the cache (medians of repeats)
    tmp = Path(tempfile.mkdtemp(prefix="cnnkit-bench-"))
    augmented = 0.0
    try:
        start = time.perf_counter()
        write_jpeg_folder(tmp / "jpegs", n_jpeg)
        print(f"    wrote {n_jpeg} CIFAR-10 JPEGs at 224x224 in {time.perf_counter() - start:.1f} s")
        rates: dict[str, list[float]] = {"decode JPEGs": [], "cached memmap": [], "cached + augment": []}
        for _ in range(args.repeats):  # interleaved, so a busy spell hits every variant alike
            for label, cache, augment in (
                ("decode JPEGs", False, None),
                ("cached memmap", True, None),
                ("cached + augment", True, "default"),
            ):
                folder_dm = build_datamodule(
                    tmp / "jpegs", batch_size=64, image_size=224, cache=cache, cache_dir=tmp / "cache",
                    augment=augment, val_fraction=0.0, test_fraction=0.0,
                )  # fmt: skip
                loader = folder_dm.train_dataloader()
                loader_rate(loader, 128)  # (part of) epoch 1: starts the workers
                rates[label].append(loader_rate(loader, n_measure))  # epoch 2
                del loader, folder_dm
        median = {label: float(np.median(r)) for label, r in rates.items()}
        for label, rate in median.items():
            spread = f"{min(rates[label]):.0f}-{max(rates[label]):.0f}"
            print(f"(c) folder 224px, epoch 2, {label:16s}     : {rate:10.0f} img/s (range {spread})")
        print(f"    cache / decode (medians of {args.repeats})              : "
              f"{median['cached memmap'] / median['decode JPEGs']:10.1f} x")  # fmt: skip
        augmented = median["cached + augment"]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.folder:
        return

    # (d): does the loader keep up with the model?
    for name, size, channels, batch, steps, supply in (
        ("lenet5", 28, 1, 128, 10, batched),
        ("resnet18", 224, 3, 16, 2, augmented),
    ):
        rate = train_step_rate(name, size, channels, batch, steps)
        if rate is None:
            print(f"(d) {name}: not registered yet, skipped")
            continue
        verdict = "keeps up" if supply >= rate else "is the bottleneck"
        print(f"(d) {name:8s} training step at {size:3d}px        : {rate:10.1f} img/s -> the loader {verdict}"
              f" ({supply / rate:.1f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
