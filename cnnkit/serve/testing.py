"""Run ``cnnkit serve`` in a subprocess on a free loopback port, for tests and benchmarks.

    >>> with ServerProcess(["--model", "efficientnet_lite0"]) as server:  # doctest: +SKIP
    ...     httpx.get(server.url + "/health").json()["status"]
    'ok'

The real command, in its own process (uvicorn, the model loaded at start-up, the upload
limits) - not an in-process test client - so what is measured is what users run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (Linux ``/proc``), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


class ServerProcess:
    """``python -m cnnkit serve ARGS --port P`` until ``/health`` answers; stopped on exit."""

    def __init__(
        self, args: Sequence[str] = (), timeout: float = 180.0, log: str | Path | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [*args, "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
        self.timeout = timeout
        self.log_path = Path(log) if log else None
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> ServerProcess:
        log = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cnnkit", "serve", *self.args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text()[-2000:] if self.log_path else ""
                raise RuntimeError(
                    f"cnnkit serve exited with {self.proc.returncode} before answering: {tail}"
                )
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"cnnkit serve did not answer /health within {self.timeout:.0f} s")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()
