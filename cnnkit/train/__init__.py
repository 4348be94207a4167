"""Training on PyTorch Lightning: ``cnnkit train`` and :func:`cnnkit.fit`.

Importing this package is cheap; Lightning is imported when training starts.
"""

from cnnkit.train.config import TrainConfig
from cnnkit.train.fit import History, fit

__all__ = ["History", "TrainConfig", "fit"]
