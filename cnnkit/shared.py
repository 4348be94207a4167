"""Where the project's shared material lives: ``../shared`` beside the repository.

``CNNKIT_SHARED`` overrides it. Tests and benchmarks find real datasets
(``shared_path("datasets", "MNIST", "raw")``), the seeds and the reference numbers here;
no absolute path of any machine is written in the code.
"""

from __future__ import annotations

import os
from pathlib import Path

SHARED_ENV = "CNNKIT_SHARED"


def shared_dir() -> Path:
    """``$CNNKIT_SHARED``, else ``<repository root>/../shared`` (the checkout's sibling)."""
    if os.environ.get(SHARED_ENV):
        return Path(os.environ[SHARED_ENV]).expanduser()
    repo_root = Path(__file__).resolve().parent.parent
    return repo_root.parent / "shared"


def shared_path(*parts: str) -> Path:
    """A path inside the shared folder (it may not exist; callers decide what that means)."""
    return shared_dir().joinpath(*parts)
