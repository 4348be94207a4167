"""Which memory layout a model runs faster in on this machine: a timed trial, once.

channels_last (NHWC) lets oneDNN use its fastest CPU kernels for depthwise, 1x1 and small
3x3 convolutions (MobileNetV2, EfficientNet-Lite, NIN, the CIFAR ResNets train 1.1-1.8x
faster), but it is slower for tiny nets and for some wide ones (LeNet-5, ResNet-18 at
64 px): ``python bench/bench_channels_last.py`` has the table. No static rule gets every
model right, so both inference (:class:`cnnkit.runtime.TorchRuntime`) and CPU training
(:mod:`cnnkit.train.engine`) time the real model on a real-sized batch in both layouts and
keep the faster one.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn


def channels_last_wins(
    model: nn.Module,
    x: torch.Tensor,
    step: Callable[[nn.Module, torch.Tensor], Any] | None = None,
    rounds: int = 3,
    margin: float = 1.0,
) -> bool:
    """True when ``step(copy_of_model, x)`` is faster in channels_last than in NCHW.

    ``step`` defaults to a forward pass. Both layouts run on deep copies, alternating after
    one warm-up each, so the model itself (weights, BatchNorm statistics) is untouched and
    load from other processes hits both alike; the fastest of ``rounds`` per layout is the
    estimate least hurt by a shared CPU. channels_last must win by ``margin`` (e.g. 1.05 =
    5% faster), so a near tie keeps the plain layout. Runs under ``fork_rng`` so dropout in
    the trial does not shift the caller's random stream.
    """
    step = step or (lambda net, inp: net(inp))
    nets = {
        False: (copy.deepcopy(model), x.contiguous()),
        True: (
            copy.deepcopy(model).to(memory_format=torch.channels_last),
            x.contiguous(memory_format=torch.channels_last),
        ),
    }
    best = {False: float("inf"), True: float("inf")}
    with torch.random.fork_rng():
        for round_ in range(rounds + 1):
            for nhwc, (net, inp) in nets.items():
                start = time.perf_counter()
                step(net, inp)
                if round_:  # round 0 is the warm-up
                    best[nhwc] = min(best[nhwc], time.perf_counter() - start)
    return best[True] * margin < best[False]
