"""Images/s classifying a folder of real photos: cnnkit's torch path and onnx path vs a plain loop.

    python bench/bench_infer.py [--models resnet18 resnet50 efficientnet_lite0] [--repeats 3]

The folder: 64 CIFAR-10 test images upscaled to 400 px (bicubic) plus skimage's photos,
all saved as JPEG. Three ways to classify them, with the same weights (the shipped ones
where the zoo has them, else random init: fine for speed), timed in one run and
interleaved within each repeat (so a change in the machine's load hits all three alike);
the median over repeats is reported:

* **plain** - what a tutorial writes: per image ``PIL.Image.open -> convert -> resize ->
  ToTensor-like contiguous CHW -> normalise``, stack, ``model.eval()`` under
  ``torch.no_grad()``, softmax top-5.
* **cnnkit torch** - :func:`cnnkit.runtime.predict_paths` with a :class:`TorchRuntime`
  (inference_mode; the fastest of NCHW / channels_last x eager / frozen TorchScript in
  its first-batch race - the NHWC and graph columns; decode/resize in a thread pool ahead
  of the model).
* **cnnkit compiled** - the same with ``TorchRuntime(optimize="compile")``
  (``cnnkit predict --compile``): TorchInductor, compiled on the warm-up batch, outside the
  timing; the compile seconds are their own column.
* **cnnkit onnx** - the same pipeline with the model exported by :mod:`cnnkit.export` and
  run by onnxruntime.

Batch 1 uses the first ``--images-b1`` photos, batch 16 the first ``--images-b16``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnnkit.export import export_onnx  # noqa: E402
from cnnkit.runtime import Loaded, TorchRuntime, load_onnx, load_torch_model, predict_paths  # noqa: E402

SKIMAGE_PHOTOS = (
    "chelsea",
    "coffee",
    "astronaut",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
)


def make_folder(folder: Path, n_cifar: int = 64, side: int = 400) -> list[Path]:
    """Write the benchmark photos (JPEG, quality 90) and return their paths."""
    from cnnkit.data.sources import read_cifar_batch
    from cnnkit.shared import shared_path

    folder.mkdir(parents=True, exist_ok=True)
    batch = read_cifar_batch(shared_path("datasets", "cifar-10-batches-py", "test_batch"))
    images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    paths = []
    for i in range(n_cifar):
        path = folder / f"cifar_{i:02d}.jpg"
        Image.fromarray(images[i]).resize((side, side), Image.BICUBIC).save(path, quality=90)
        paths.append(path)
    from skimage import data as skdata

    for name in SKIMAGE_PHOTOS:
        path = folder / f"{name}.jpg"
        Image.fromarray(getattr(skdata, name)()).convert("RGB").save(path, quality=90)
        paths.append(path)
    return paths


def plain_loop(model: torch.nn.Module, paths: list[Path], batch: int, pre) -> list[int]:
    """The baseline: PIL + model.eval(), one image at a time into each batch."""
    h, w = pre.size
    mean = torch.tensor(pre.mean).view(3, 1, 1)
    std = torch.tensor(pre.std).view(3, 1, 1)
    top1 = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(paths), batch):
            xs = []
            for path in paths[start : start + batch]:
                image = Image.open(path).convert("RGB").resize((w, h), Image.BILINEAR)
                # torchvision's ToTensor: HWC uint8 -> contiguous CHW float in [0, 1]
                x = (
                    torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)
                    .permute(2, 0, 1)
                    .contiguous()
                )
                xs.append((x - mean) / std)
            probs = model(torch.stack(xs)).softmax(1)
            top1 += probs.topk(5, dim=1).indices[:, 0].tolist()
    return top1


def cnnkit_path(loaded: Loaded, paths: list[Path], batch: int) -> list[int]:
    return [r["topk"][0]["index"] for r in predict_paths(loaded, paths, topk=5, batch_size=batch)]


def timed(fn, *args) -> tuple[float, list[int]]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def bench_model(name: str, paths: list[Path], args: argparse.Namespace, workdir: Path) -> list[dict]:
    from cnnkit.models import models_with_weights

    # shipped weights when there are some (a random EfficientNet's logits are all equal to
    # 1e-8, so its top-1 is rounding noise and the agreement column would mean nothing)
    model, classes, pre, _ = load_torch_model(name, pretrained=name in models_with_weights())
    # stretch + bilinear, as the plain loop does, so the three paths compute the same thing
    pre = type(pre)(size=pre.size, resize="stretch", resample="bilinear", mean=pre.mean, std=pre.std)
    plain_model = copy.deepcopy(model)
    torch_loaded = Loaded(TorchRuntime(copy.deepcopy(model)), classes, pre, name, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onnx_file = export_onnx(model, workdir / f"{name}.onnx", pre, classes, arch=name)
    onnx_loaded = load_onnx(onnx_file)
    rows = []
    for batch, count in ((1, args.images_b1), (16, args.images_b16)):
        subset = paths[:count]
        compiled = Loaded(
            TorchRuntime(copy.deepcopy(model), optimize="compile" if args.compile else False),
            classes,
            pre,
            name,
            name,
        )
        runs = {
            "plain": lambda s=subset, b=batch: plain_loop(plain_model, s, b, pre),
            "cnnkit torch": lambda s=subset, b=batch: cnnkit_path(torch_loaded, s, b),
            "cnnkit compiled": lambda s=subset, b=batch, c=compiled: cnnkit_path(c, s, b),
            "cnnkit onnx": lambda s=subset, b=batch: cnnkit_path(onnx_loaded, s, b),
        }
        if not args.compile:
            del runs["cnnkit compiled"]
        # warm-up (the race, the compile) outside the timing; the race runs here whatever the
        # job's size (predict_paths alone would skip it for fewer than RACE_MIN_IMAGES images)
        torch_loaded.runtime.predict(torch.zeros(1, pre.channels, *pre.size))
        cnnkit_path(torch_loaded, subset[:batch], batch)
        compile_s, _ = timed(cnnkit_path, compiled, subset[:batch], batch) if args.compile else (0.0, [])
        cnnkit_path(onnx_loaded, subset[:batch], batch)
        plain_loop(plain_model, subset[:batch], batch, pre)
        times: dict[str, list[float]] = {k: [] for k in runs}
        answers: dict[str, list[int]] = {}
        for rep in range(args.repeats):
            order = list(runs)[rep % len(runs) :] + list(runs)[: rep % len(runs)]  # rotate who goes first
            for key in order:
                fn = runs[key]
                seconds, answers[key] = timed(fn)
                times[key].append(seconds)
        agree = {k: float(np.mean(np.equal(v, answers["plain"]))) for k, v in answers.items()}
        med = {k: statistics.median(v) for k, v in times.items()}
        row = {
            "model": name,
            "batch": batch,
            "images": len(subset),
            "cnnkit compiled img/s": float("nan"),
            **{f"{k} img/s": len(subset) / v for k, v in med.items()},
            "torch x": med["plain"] / med["cnnkit torch"],
            "compiled x": med["plain"] / med["cnnkit compiled"] if args.compile else float("nan"),
            "onnx x": med["plain"] / med["cnnkit onnx"],
            "compile s": compile_s,
            "top1 agree torch/compiled/onnx": tuple(
                agree.get(f"cnnkit {k}", float("nan")) for k in ("torch", "compiled", "onnx")
            ),
            "channels_last": torch_loaded.runtime.channels_last,
            "graph": torch_loaded.runtime.choice,
        }
        rows.append(row)
        print(_fmt(row), flush=True)
    return rows


def _fmt(row: dict) -> str:
    return (
        f"| {row['model']:<18} | {row['batch']:>2} | {row['images']:>3} | {row['plain img/s']:7.1f} | "
        f"{row['cnnkit torch img/s']:7.1f} | {row['cnnkit compiled img/s']:8.1f} | {row['cnnkit onnx img/s']:7.1f} | "
        f"{row['torch x']:5.2f}x | {row['compiled x']:5.2f}x | {row['onnx x']:5.2f}x | {row['compile s']:5.1f} | "
        f"{'/'.join(f'{a:.2f}' for a in row['top1 agree torch/compiled/onnx'])} | "
        f"{row['channels_last']!s:<5} | {row['graph']:<16} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet18", "resnet50", "efficientnet_lite0"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images-b1", type=int, default=16, help="photos timed at batch 1")
    parser.add_argument("--images-b16", type=int, default=48, help="photos timed at batch 16")
    parser.add_argument(
        "--no-compile", dest="compile", action="store_false", help="leave out the torch.compile column"
    )
    parser.add_argument("--folder", default=None, help="where to write the photos (default: a temp dir)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch and onnxruntime threads (default: torch's)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-infer-") as tmp:
        folder = Path(args.folder) if args.folder else Path(tmp) / "photos"
        paths = make_folder(folder)
        print(
            f"{len(paths)} JPEGs; torch {torch.__version__}, {torch.get_num_threads()} threads; "
            f"median of {args.repeats} repeats, paths interleaved"
        )
        print(
            "| model              | bs | img | plain/s | torch/s | compiled/s |  onnx/s | torch  | compiled | onnx   | compile s | top1 same t/c/o | NHWC  | graph            |\n"
            "|--------------------|----|-----|---------|---------|------------|---------|--------|----------|--------|-----------|-----------------|-------|------------------|"
        )
        for name in args.models:
            bench_model(name, paths, args, Path(tmp))


if __name__ == "__main__":
    main()
