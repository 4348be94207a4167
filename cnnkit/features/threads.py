"""One CPU thread for small work: on a busy machine it is many times faster.

Waking torch's intra-op thread pool costs more than it saves for a small op, and on a
machine with more runnable threads than cores every parallel op waits for all of its pool
threads to be scheduled. Measured here on 2 cores shared with other jobs: embedding the
1,797 digits with LeNet-5 takes 9.0 s on 2 threads and 0.5 s on one; 256 CIFAR images at
64 px through EfficientNet-Lite0 13 s and 2-3.5 s (``cnnkit.data.loaders.one_thread``
found the same for batch transforms). Large batches keep every thread.
"""

from __future__ import annotations

import torch

SMALL = 1 << 21  # input elements per batch (about 64 x 3 x 104 x 104) below which one thread is used


def small_on_cpu(x: torch.Tensor) -> bool:
    """True for a CPU batch small enough that one thread is the better bet."""
    return x.device.type == "cpu" and x.numel() < SMALL
