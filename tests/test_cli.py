"""The command line as a user runs it: real subprocesses, one-line errors, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys


def cnnkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cnnkit", *args], capture_output=True, text=True, timeout=300
    )


def test_models_lists_exact_counts_as_json() -> None:
    out = cnnkit("models", "lenet*", "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["lenet5"]["params"] == 44_426
    assert rows["lenet5"]["macs"] == 281_640


def test_summary_table_and_custom_input_size() -> None:
    out = cnnkit("summary", "lenet5", "--input-size", "1x32x32")
    assert out.returncode == 0, out.stderr
    assert "Total params: 61,706" in out.stdout
    assert "(N, 16, 5, 5)" in out.stdout


def test_unknown_model_is_one_line() -> None:
    out = cnnkit("summary", "lenet6")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0
    assert "unknown model 'lenet6'" in out.stderr and "lenet5" in out.stderr


def test_bad_input_size_text_is_one_line() -> None:
    out = cnnkit("summary", "lenet5", "--input-size", "big")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "CxHxW" in out.stderr


def test_no_command_prints_help() -> None:
    out = cnnkit()
    assert out.returncode == 0
    assert "models" in out.stdout and "summary" in out.stdout
