"""Stochastic depth (Huang et al. 2016, "Deep Networks with Stochastic Depth", ECCV)."""

from __future__ import annotations

import torch


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Zero a residual branch per sample with probability ``rate``, rescale the rest.

    EfficientNet's "drop connect": during training each sample keeps its branch with
    probability 1 - rate and the kept ones are divided by it, so the expectation is unchanged.
    """
    if not training or rate <= 0:
        return x
    keep = 1.0 - rate
    mask = torch.empty(x.shape[0], *(1,) * (x.dim() - 1), device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x * mask / keep
