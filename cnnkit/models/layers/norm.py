"""Local response normalisation as the classic networks (AlexNet, GoogLeNet, VGG-A-LRN) define it."""

from __future__ import annotations

import torch.nn as nn


class LocalResponseNorm(nn.LocalResponseNorm):
    """LRN as in AlexNet (Krizhevsky et al. 2012, section 3.3): k=2, n=5, alpha=1e-4, beta=0.75.

    PyTorch divides ``alpha`` by ``n``; the paper does not, so we pass ``alpha * n`` to
    reproduce the paper's formula exactly.
    """

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0) -> None:
        super().__init__(size=size, alpha=alpha * size, beta=beta, k=k)
