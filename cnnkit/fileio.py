"""The one way cnnkit writes a file: temp file in the same folder, fsync, atomic rename.

A killed process leaves the previous complete version of a file, never half of one. Every
writer in cnnkit (run directories, checkpoints, caches, exports) goes through here.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cnnkit.errors import CnnkitError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path next to ``path``; on success fsync it and rename it over ``path``.

    For writers that need a file name rather than bytes (``np.lib.format.open_memmap``,
    ``torch.onnx.export``). On an exception the temp file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder, fsync and an atomic rename."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, payload: Any, indent: int | None = 2) -> None:
    write_text_atomic(path, json.dumps(payload, indent=indent, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # tensors, numpy arrays and scalars
        return value.tolist()
    if isinstance(value, (Path, set, tuple)):
        return str(value) if isinstance(value, Path) else list(value)
    return str(value)


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; one clear line if it is missing or damaged."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CnnkitError(f"{path} does not exist; is this a cnnkit run directory?") from None
    except json.JSONDecodeError as exc:
        raise CnnkitError(f"{path} is not valid JSON ({exc.msg}); the file is damaged.") from None
