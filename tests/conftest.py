"""Shared fixtures: real data from ``../shared`` (see cnnkit/shared.py) and small real images.

A test that needs a shared dataset calls :func:`need`: it skips on a machine without the
file, but under CI (``CI=true``) a missing dataset is a failure, never a silent skip.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from cnnkit.shared import shared_path

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(autouse=True, scope="session")
def _private_feature_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Feature caches of the test session go to a temp folder, never the user's ~/.cache."""
    os.environ.setdefault("CNNKIT_FEATURES_CACHE", str(tmp_path_factory.mktemp("features-cache")))


def need(*parts: str) -> Path:
    """The shared path ``parts`` (e.g. ``"datasets", "MNIST", "raw"``); skip or fail if missing."""
    path = shared_path(*parts)
    if not path.exists():
        message = f"shared data {path} is missing (set CNNKIT_SHARED to the shared folder)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def need_chromium() -> str:
    """Path of a headless-capable Chromium; skip without one, but fail under CI."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    message = "chromium is not installed (apt-get install chromium); the browser tests need it"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def one_torch_thread() -> object:
    """In-process training on one thread (same numbers; less contention on a busy CI machine).
    The training test modules use it for every test (``pytestmark``)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def chromium() -> str:
    return need_chromium()


@pytest.fixture
def mnist_raw() -> Path:
    return need("datasets", "MNIST", "raw")


@pytest.fixture
def fashion_raw() -> Path:
    return need("datasets", "FashionMNIST", "raw")


@pytest.fixture
def cifar10_dir() -> Path:
    return need("datasets", "cifar-10-batches-py")
