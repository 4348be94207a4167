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


def test_models_shows_which_have_weights() -> None:
    out = cnnkit("models", "*net*_v2", "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["mobilenet_v2"]["weights"] == ["imagenet"] and rows["mobilenet_v2"]["params"] == 3_504_872
    assert rows["inception_resnet_v2"]["weights"] == []
    table = cnnkit("models", "efficientnet_lite*")
    assert table.returncode == 0, table.stderr
    assert "weights" in table.stdout.splitlines()[0]
    assert all("imagenet" in line for line in table.stdout.splitlines()[2:5])


def test_stages_table_and_summary_marks_them() -> None:
    out = cnnkit("stages", "resnet18", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["cam_layer"] == "layer4"
    rows = {r["name"]: r for r in result["stages"]}
    assert list(rows) == ["relu", "layer1", "layer2", "layer3", "layer4", "head"]
    assert rows["layer3"]["output_shape"] == [None, 256, 14, 14] and rows["layer3"]["reduction"] == 16
    assert rows["layer1"]["trainable"] == 147_968 and rows["head"]["params"] == 513_000
    table = cnnkit("stages", "resnet18", "--input-size", "3x64x64").stdout
    assert "layer4" in table and "(N, 512, 2, 2)" in table
    summary = cnnkit("summary", "resnet18", "--depth", "1").stdout
    assert "end of stage layer2: 128 ch, stride 8" in summary
    bad = cnnkit("stages", "highway_mlp")
    assert bad.returncode == 2 and "no convolutional stages" in bad.stderr and "Traceback" not in bad.stderr
