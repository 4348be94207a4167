"""Which way of running a model is fastest on this machine: a timed race, once.

channels_last (NHWC) lets oneDNN use its fastest CPU kernels for depthwise, 1x1 and small
3x3 convolutions, but it is slower for some nets, and a frozen TorchScript graph
(BatchNorm folded into the convolutions, prepacked oneDNN weights) wins on some layouts
and loses on others: ResNet-18 at batch 1 here ran 20 ms frozen in NCHW but 28 ms frozen
in NHWC, while eager NHWC took 21 ms (``python bench/bench_infer.py``). No static rule
gets every model right, so inference (:class:`cnnkit.runtime.TorchRuntime`) races all the
candidates on a real input and keeps the winner. Training does not race (a rerun on a busy
machine could pick differently and round differently): it uses the deterministic rule in
:func:`cnnkit.train.engine.cpu_channels_last`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch


def race(candidates: dict[str, Callable[[], Any]], rounds: int = 5, warmup: int = 3) -> dict[str, float]:
    """Best-of-``rounds`` seconds of each zero-argument callable, keyed like ``candidates``.

    Each candidate first runs ``warmup`` times (TorchScript's profiling executor optimises a
    graph on its second call, oneDNN prepacks weights on its first); then the rounds
    alternate between candidates so that load from other processes hits all of them alike,
    and the fastest round is the estimate least hurt by a shared CPU. Runs under
    ``fork_rng`` so a trial does not shift the caller's random stream.
    """
    best = dict.fromkeys(candidates, float("inf"))
    with torch.random.fork_rng():
        for fn in candidates.values():
            for _ in range(warmup):
                fn()
        for _ in range(rounds):
            for name, fn in candidates.items():
                start = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - start)
    return best
