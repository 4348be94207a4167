"""channels_last vs contiguous (NCHW) for one CPU training step, per zoo model, same run.

    python bench/bench_channels_last.py                       # the default model list
    python bench/bench_channels_last.py --models cifar_resnet20 lenet5 --repeats 9

One step = forward + cross-entropy + backward + SGD update on a fixed random batch at the
model's typical training size (its registered input size, or 64 px for ImageNet nets,
which is what a CPU fine-tune uses). The two layouts are timed interleaved (A, B, A, B...)
after a warm-up, so load from other processes hits both alike; the number printed is the
median ratio contiguous / channels_last (> 1: channels_last is faster). The engine's CPU
rule (:func:`cnnkit.train.engine.cpu_channels_last`: on AVX2 CPUs NHWC for every conv net;
elsewhere NHWC for depthwise nets and for inputs of at most 32 px on nets of at least 1M
multiply-adds) is printed next to it, so the table
shows whether the rule picks the faster layout ("yes" also when the two are within 5%).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from cnnkit.models import create_model, model_info
from cnnkit.train.engine import cpu_channels_last

DEFAULT_MODELS = [
    ("lenet5", 28, 256),
    ("lenet5_paper", 32, 256),
    ("small_cnn", 28, 128),
    ("seed_cifar_cnn", 32, 128),
    ("mini_vgg", 32, 128),
    ("nin", 32, 128),
    ("cifar_resnet20", 32, 128),
    ("cifar_preact_resnet110", 32, 64),
    ("resnet18", 64, 64),
    ("mobilenet_v2", 64, 64),
    ("efficientnet_lite0", 64, 64),
]


def step_seconds(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, nhwc: bool) -> float:
    """Seconds for one SGD training step in the given memory layout."""
    fmt = torch.channels_last if nhwc else torch.contiguous_format
    model.to(memory_format=fmt)
    x = x.contiguous(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    start = time.perf_counter()
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return time.perf_counter() - start


def bench(name: str, size: int, batch: int, repeats: int) -> tuple[float, float, float]:
    """(median NCHW seconds, median NHWC seconds, median of per-pair ratios)."""
    info = model_info(name)
    chans = info.input_size[0]
    torch.manual_seed(0)
    model = create_model(name, input_size=(chans, size, size))
    model.train()
    x = torch.randn(batch, chans, size, size)
    y = torch.randint(0, 10, (batch,)) % model.num_classes
    for nhwc in (False, True, False, True):  # warm-up: first calls allocate and pick kernels
        step_seconds(model, x, y, nhwc)
    dense, nhwc, ratios = [], [], []
    for _ in range(repeats):
        a = step_seconds(model, x, y, False)
        b = step_seconds(model, x, y, True)
        dense.append(a)
        nhwc.append(b)
        ratios.append(a / b)
    return statistics.median(dense), statistics.median(nhwc), statistics.median(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", help="names (default: a spread of the zoo)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = DEFAULT_MODELS
    if args.models:
        sizes = {n: (s, b) for n, s, b in DEFAULT_MODELS}
        rows = [(n, *sizes.get(n, (32, 64))) for n in args.models]
    print(
        f"torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()} kernels, "
        f"{torch.get_num_threads()} threads, median of {args.repeats} interleaved pairs"
    )
    print("| model | input | batch | NCHW step | NHWC step | NCHW/NHWC | rule says | rule right |")
    print("|---|---|---|---|---|---|---|---|")
    for name, size, batch in rows:
        dense, nhwc, ratio = bench(name, size, batch, args.repeats)
        shape = (model_info(name).input_size[0], size, size)
        rule = cpu_channels_last(create_model(name, input_size=shape), shape)
        right = (ratio > 1.0) == rule or abs(ratio - 1.0) < 0.05
        print(
            f"| {name} | {size} | {batch} | {dense * 1e3:.0f} ms | {nhwc * 1e3:.0f} ms | {ratio:.2f}x "
            f"| {'NHWC' if rule else 'NCHW'} | {'yes' if right else 'NO'} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
