"""Shared fixtures: real data from ``../shared`` (see cnnkit/shared.py) and small real images.

A test that needs a shared dataset calls :func:`need`: it skips on a machine without the
file, but under CI (``CI=true``) a missing dataset is a failure, never a silent skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cnnkit.shared import shared_path

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(*parts: str) -> Path:
    """The shared path ``parts`` (e.g. ``"datasets", "MNIST", "raw"``); skip or fail if missing."""
    path = shared_path(*parts)
    if not path.exists():
        message = f"shared data {path} is missing (set CNNKIT_SHARED to the shared folder)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def mnist_raw() -> Path:
    return need("datasets", "MNIST", "raw")


@pytest.fixture
def fashion_raw() -> Path:
    return need("datasets", "FashionMNIST", "raw")


@pytest.fixture
def cifar10_dir() -> Path:
    return need("datasets", "cifar-10-batches-py")
