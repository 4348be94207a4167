"""``cnnkit export``: a zoo model or a training run -> an ONNX or TorchScript file you can ship.

Beside the model goes a JSON sidecar (``<file>.json``) with everything inference needs and
a graph cannot say: the class names, the preprocessing record (size, resize, filter,
mean/std, channels), the architecture and the source. Both files are written atomically
(:mod:`cnnkit.fileio`). The batch dimension is dynamic; so are height and width for every
network that accepts any input size.

TF-padded EfficientNets pad each strided conv from the input size at run time
(:class:`~cnnkit.models.efficientnet_lite.Conv2dSame`). Traced as is, that padding would be
frozen at the example input's size and the graph would be wrong at any other size, so for
export those layers compute their padding with tensor ops on the input's shape
(:class:`TraceableConv2dSame`), which the tracer records as ``Shape -> ... -> Pad`` nodes.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnkit.errors import CnnkitError
from cnnkit.fileio import atomic_path, write_json_atomic
from cnnkit.preprocess import Preprocess

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
OPSET = 17


def _same_pad(
    size: torch.Tensor, kernel: int, stride: int, dilation: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """TensorFlow's 'same' padding (before, after) of one dimension, as tensor arithmetic."""
    out = (size + stride - 1) // stride
    total = torch.clamp((out - 1) * stride + (kernel - 1) * dilation + 1 - size, min=0)
    return total // 2, total - total // 2


try:
    from cnnkit.models.efficientnet_lite import Conv2dSame
except ImportError:  # pragma: no cover - the family is always there, but export must not depend on it
    Conv2dSame = None


if Conv2dSame is not None:

    class TraceableConv2dSame(Conv2dSame):
        """Conv2dSame whose padding stays a function of the input shape when traced."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            shape = torch._shape_as_tensor(x)
            top, bottom = _same_pad(shape[2], self.kernel_size[0], self.stride[0], self.dilation[0])
            left, right = _same_pad(shape[3], self.kernel_size[1], self.stride[1], self.dilation[1])
            x = F.pad(x, [left, right, top, bottom])
            return self._conv_forward(x, self.weight, self.bias)


def exportable(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode whose run-time padding survives tracing."""
    model = copy.deepcopy(model).eval()
    if Conv2dSame is not None:
        for module in model.modules():
            if type(module) is Conv2dSame:
                module.__class__ = TraceableConv2dSame
    return model


def _accepts_any_size(model: nn.Module, example: torch.Tensor) -> bool:
    """Whether the network runs at a larger input than ``example`` (no size-bound dense head)."""
    bigger = example.new_zeros(1, example.shape[1], example.shape[2] + 32, example.shape[3] + 32)
    try:
        with torch.inference_mode():
            model(bigger)
    except (RuntimeError, ValueError, CnnkitError):
        return False
    return True


def _example(pre: Preprocess) -> torch.Tensor:
    h, w = pre.size
    return torch.randn(2, pre.channels, h, w, generator=torch.Generator().manual_seed(0))


def _sidecar(
    out: Path, fmt: str, pre: Preprocess, classes: list[str], arch: str, source: str, dynamic: bool
) -> dict:
    import cnnkit

    return {
        "format": fmt,
        "model": arch,
        "source": source,
        "file": out.name,
        "classes": list(classes),
        "preprocess": pre.to_dict(),
        "input": {
            "name": "input",
            "layout": "NCHW",
            "dtype": "float32",
            "dynamic": ["batch", "height", "width"] if dynamic else ["batch"],
        },
        "output": {"name": "logits", "meaning": "unnormalised class scores; softmax gives probabilities"},
        "cnnkit_version": cnnkit.__version__,
        "torch_version": torch.__version__,
    }


def export_onnx(
    model: nn.Module,
    out: str | Path,
    pre: Preprocess,
    classes: list[str],
    arch: str = "",
    source: str = "",
    opset: int = OPSET,
) -> Path:
    """Write ``model`` as ONNX (dynamic batch; dynamic H, W when the net allows) + its sidecar."""
    out = Path(out)
    net = exportable(model)
    example = _example(pre)
    dynamic = _accepts_any_size(net, example)
    axes = {0: "batch", 2: "height", 3: "width"} if dynamic else {0: "batch"}
    with atomic_path(out) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape arithmetic are expected here
        torch.onnx.export(
            net,
            (example,),
            str(tmp),
            dynamo=False,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": axes, "logits": {0: "batch"}},
            opset_version=opset,
            do_constant_folding=True,
        )
    meta = _sidecar(out, "onnx", pre, classes, arch, source, dynamic)
    meta["opset"] = opset
    meta["check"] = _check_onnx(out, model, example)
    write_json_atomic(out.with_name(out.name + ".json"), meta)
    return out


def _check_onnx(path: Path, model: nn.Module, example: torch.Tensor) -> dict[str, Any]:
    """onnxruntime vs PyTorch on the example batch: the export is refused if they disagree."""
    from cnnkit.runtime import OnnxRuntime

    got = OnnxRuntime(path).predict(example)
    with torch.inference_mode():
        want = model.eval()(example).float().numpy()
    diff = float(np.abs(got - want).max())
    scale = float(np.abs(want).max()) or 1.0
    if diff > 1e-3 * max(1.0, scale):
        path.unlink(missing_ok=True)
        raise CnnkitError(
            f"the ONNX graph disagrees with PyTorch by {diff:.3g} on a test batch; "
            "this architecture does not export faithfully - use --format torchscript."
        )
    return {"max_abs_diff_vs_torch": diff, "example_shape": list(example.shape)}


def export_torchscript(
    model: nn.Module, out: str | Path, pre: Preprocess, classes: list[str], arch: str = "", source: str = ""
) -> Path:
    """Write ``model`` traced to TorchScript (shape arithmetic kept dynamic) + its sidecar."""
    out = Path(out)
    net = exportable(model)
    example = _example(pre)
    dynamic = _accepts_any_size(net, example)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(net, example, check_trace=False)
    with atomic_path(out) as tmp:
        torch.jit.save(traced, str(tmp))
    write_json_atomic(
        out.with_name(out.name + ".json"), _sidecar(out, "torchscript", pre, classes, arch, source, dynamic)
    )
    return out


def default_out(spec: str, fmt: str) -> Path:
    """``<run>/model.onnx`` for a run directory, ``./<name>.onnx`` for a zoo name."""
    path = Path(spec)
    if path.is_dir():
        return path / f"model{FORMATS[fmt]}"
    return Path(f"{spec}{FORMATS[fmt]}")


def export(
    spec: str | Path,
    fmt: str = "onnx",
    out: str | Path | None = None,
    pretrained: bool = True,
    weights: str | Path | None = None,
    classes: str | Path | None = None,
) -> Path:
    """Export a zoo model (shipped weights, or ``weights=PATH`` + ``classes``) or a run directory.

    Returns the model file; its sidecar is ``<file>.json``.
    """
    from cnnkit.runtime import load_torch_model

    if fmt not in FORMATS:
        raise CnnkitError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}.")
    out = Path(out) if out is not None else default_out(str(spec), fmt)
    if out.is_dir():
        raise CnnkitError(
            f"--out {out} is a directory; give a file name such as {out / ('model' + FORMATS[fmt])}."
        )
    model, names, pre, arch = load_torch_model(spec, pretrained, weights, classes)
    writer = export_onnx if fmt == "onnx" else export_torchscript
    return writer(model, out, pre, names, arch=arch, source=str(spec))
