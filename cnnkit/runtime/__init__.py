"""Inference runtimes behind one interface: ``runtime.predict(batch) -> logits``.

* :class:`TorchRuntime` (:mod:`cnnkit.runtime.torch_runtime`) - a zoo model or a run's model, eval mode, ``torch.inference_mode``,
  in whichever of NCHW / channels_last x eager / frozen TorchScript a timed race on the
  first batch finds fastest on this CPU (the winner differs from one architecture to the next).
* :class:`OnnxRuntime` - a file written by ``cnnkit export --format onnx``, run by
  onnxruntime, with the class names and preprocessing from its JSON sidecar.

:func:`load_runtime` turns what a user types (a zoo name, a run directory, a ``.onnx`` file)
into a runtime + class names + preprocessing (:class:`Loaded`); :func:`predict_paths`
classifies files with decoding and resizing done by a thread pool while the model runs
(PIL releases the GIL while it decodes and resizes, so threads overlap with the forward pass).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn as nn

from cnnkit.errors import CnnkitError
from cnnkit.preprocess import Preprocess
from cnnkit.runtime.images import prepare, to_batch
from cnnkit.runtime.torch_runtime import GRAPH_KINDS as GRAPH_KINDS
from cnnkit.runtime.torch_runtime import RACE_MIN_IMAGES, TorchRuntime

RUNTIMES = ("torch", "onnx")
SIDECAR_SUFFIX = ".json"  # model.onnx -> model.onnx.json


class Runtime(Protocol):
    """Anything that maps a normalised (N, C, H, W) float batch to (N, classes) logits."""

    name: str

    def predict(self, batch: torch.Tensor | np.ndarray) -> np.ndarray: ...


class OnnxRuntime:
    """An exported ONNX model run by onnxruntime on the CPU (thread-safe ``run``)."""

    name = "onnx"

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or torch.get_num_threads()
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for a damaged or foreign file
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise CnnkitError(
                f"cannot load ONNX model {path}: {first}. Re-export it with 'cnnkit export'."
            ) from None
        self.input_name = self.session.get_inputs()[0].name
        self.lock = threading.Lock()

    def predict(self, batch: torch.Tensor | np.ndarray) -> np.ndarray:
        x = batch.numpy() if isinstance(batch, torch.Tensor) else batch
        with self.lock:
            return self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]


@dataclass
class Loaded:
    """A model ready to answer: the runtime, class names, preprocessing and where it came from."""

    runtime: Runtime
    classes: list[str]
    preprocess: Preprocess
    name: str  # architecture
    source: str  # what the user passed (zoo name, run directory, .onnx file)
    info: dict[str, Any] = field(default_factory=dict)

    def topk(self, logits: np.ndarray, k: int = 5) -> list[list[dict[str, Any]]]:
        """Softmax top-``k`` of each row: ``[{"index", "label", "prob"}, ...]`` per image."""
        return topk_rows(logits, self.classes, k)

    def predict_images(self, images: Sequence[Any], k: int = 5) -> list[list[dict[str, Any]]]:
        """Decoded PIL images (or paths/arrays) -> top-k per image."""
        return self.topk(self.runtime.predict(to_batch(images, self.preprocess)), k)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits.astype(np.float64) - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def topk_rows(logits: np.ndarray, classes: Sequence[str], k: int = 5) -> list[list[dict[str, Any]]]:
    if logits.ndim != 2 or logits.shape[1] != len(classes):
        raise CnnkitError(
            f"the model gives {logits.shape[-1]} outputs but has {len(classes)} class names; "
            "re-export the model or pass the matching class names."
        )
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    probs = np.exp(z)
    probs /= probs.sum(axis=1, keepdims=True)
    k = max(1, min(k, len(classes)))
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [
        [{"index": int(i), "label": classes[int(i)], "prob": float(row[i])} for i in idx]
        for row, idx in zip(probs, order, strict=True)
    ]


def load_torch_model(
    spec: str | Path,
    pretrained: bool = True,
    weights: str | Path | None = None,
    classes: str | Path | Sequence[str] | None = None,
) -> tuple[nn.Module, list[str], Preprocess, str]:
    """(model, class names, preprocessing, architecture) for a zoo name or a run directory.

    The same loader as ``cnnkit predict`` (:func:`cnnkit.predict.load_predictor`: a zoo model
    with its weights record's preprocessing, ``weights=PATH`` + ``classes``, or a run's best
    checkpoint and evaluation transform). ``pretrained=False`` builds a randomly initialised
    zoo model (for speed measurements).
    """
    from cnnkit.models.registry import create_model, list_models

    spec = str(spec)
    if not pretrained and weights is None and spec in list_models():
        net = create_model(spec).eval()
        c, h, w = net.default_input_size
        return net, _default_classes(int(net.num_classes)), Preprocess(size=(h, w), channels=c), spec
    from cnnkit.predict import load_predictor

    net, names, pre = load_predictor(spec, weights=weights, classes=classes)
    if not isinstance(pre, Preprocess):
        raise CnnkitError(f"{spec}: the loader gave no Preprocess record; update cnnkit.predict.")
    return net.eval(), list(names), pre, str(getattr(net, "model_name", spec))


def _default_classes(n: int) -> list[str]:
    if n == 1000:
        from cnnkit.imagenet import imagenet_classes

        return list(imagenet_classes())
    return [f"class_{i}" for i in range(n)]


def load_runtime(
    spec: str | Path,
    runtime: str = "torch",
    pretrained: bool = True,
    channels_last: bool | None = None,
    weights: str | Path | None = None,
    classes: str | Path | Sequence[str] | None = None,
    max_image_pixels: int | None = None,
    compile: bool = False,
) -> Loaded:
    """A zoo name, a run directory or an exported ``.onnx`` file -> a :class:`Loaded` model.

    ``compile=True`` compiles the torch model with ``torch.compile`` on its first batch
    (:class:`TorchRuntime`'s ``optimize="compile"``).
    ``runtime="onnx"`` with a zoo name or run directory exports the model to a temporary
    ONNX file first (removed when the process exits; ``cnnkit export`` writes one you keep).
    ``max_image_pixels`` is the decompression-bomb limit given to the preprocessing.
    """
    if runtime not in RUNTIMES:
        raise CnnkitError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}.")
    path = Path(str(spec))
    if path.suffix == ".onnx":
        if runtime != "onnx":
            raise CnnkitError(f"{path} is an ONNX file; run it with --runtime onnx.")
        loaded = load_onnx(path)
    else:
        model, names, pre, arch = load_torch_model(spec, pretrained, weights, classes)
        if runtime == "torch":
            optimize: bool | str = "compile" if compile else True
            loaded = Loaded(TorchRuntime(model, channels_last, optimize), names, pre, arch, str(spec))
        else:
            import atexit
            import shutil
            import tempfile

            from cnnkit.export import export_onnx

            folder = Path(tempfile.mkdtemp(prefix="cnnkit-onnx-"))
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            out = export_onnx(model, folder / f"{arch}.onnx", pre, names, arch=arch, source=str(spec))
            loaded = load_onnx(out)
            loaded.source = str(spec)
            loaded.info["path"] = str(out)
            loaded.info["torch_model"] = model  # kept for heat maps (Grad-CAM needs gradients)
    if max_image_pixels is not None:
        loaded.preprocess = dataclasses.replace(loaded.preprocess, max_image_pixels=max_image_pixels)
    return loaded


def load_onnx(path: str | Path) -> Loaded:
    """An exported ONNX file and its sidecar (``<file>.json``: classes, preprocess, model)."""
    from cnnkit.fileio import read_json

    path = Path(path)
    if not path.is_file():
        raise CnnkitError(
            f"ONNX file {path} does not exist; write one with 'cnnkit export MODEL --format onnx'."
        )
    sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
    if not sidecar.is_file():
        raise CnnkitError(
            f"{path} has no sidecar {sidecar.name} (class names and preprocessing); re-export with 'cnnkit export'."
        )
    meta = read_json(sidecar)
    pre = Preprocess.from_dict(meta["preprocess"])
    return Loaded(
        OnnxRuntime(path), list(meta["classes"]), pre, str(meta.get("model", path.stem)), str(path), meta
    )


def _batches(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _prepare_or_error(item: Any, pre: Preprocess) -> np.ndarray | CnnkitError:
    try:
        return prepare(item, pre)
    except CnnkitError as exc:
        return exc


def predict_paths(
    loaded: Loaded,
    paths: Sequence[str | Path],
    topk: int = 5,
    batch_size: int = 16,
    workers: int | None = None,
    errors: list[tuple[str, str]] | None = None,
    tta: str = "none",
) -> list[dict[str, Any]]:
    """Top-k for image files, ``[{"image": path, "topk": [...]}, ...]`` (``cnnkit predict``'s format).

    ``tta="flip"`` averages the probabilities of each image and its mirror image;
    ``tta="10crop"`` those of the four corner and centre crops of the image before its
    centre crop (else of the image resized to ``size / 0.875``) and their mirrors, as
    ``cnnkit evaluate --tta`` does (which measures what it gains on a split).

    ``workers`` threads decode and resize up to two batches ahead of the model (default:
    the CPU count, at most 8). A :class:`TorchRuntime` races its ways of running the model
    only for a job of at least :data:`RACE_MIN_IMAGES` forward images (TTA counts each
    view); a smaller one runs the eager model, which answers it sooner. A bad image raises
    its one-line CnnkitError, or, when ``errors`` is a list, is appended there as
    ``(image, message)`` and left out.
    """
    if not paths:
        raise CnnkitError("no images given. Pass at least one image file.")
    if batch_size < 1:
        raise CnnkitError(f"batch size must be at least 1, got {batch_size}.")
    if topk < 1:
        raise CnnkitError(f"topk must be at least 1, got {topk}.")
    if tta not in ("none", "flip", "10crop"):
        raise CnnkitError(f"unknown tta {tta!r}; use 'none', 'flip' or '10crop'.")
    workers = workers or min(8, os.cpu_count() or 1)
    pre = loaded.preprocess
    if tta == "10crop":  # decode at the uncropped size; the crops are cut from the batch below
        scaled = pre.scaled_size if pre.scaled_size != pre.size else tuple(round(d / 0.875) for d in pre.size)
        pre = dataclasses.replace(pre, size=scaled, crop_pct=1.0, resize_size=None)
    chunks = list(_batches(list(paths), batch_size))
    views = {"none": 1, "flip": 2, "10crop": 10}[tta]
    run = loaded.runtime.predict
    if isinstance(loaded.runtime, TorchRuntime) and len(paths) * views < RACE_MIN_IMAGES:
        run = functools.partial(loaded.runtime.predict, race=False)
    results: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = [[pool.submit(_prepare_or_error, p, pre) for p in chunk] for chunk in chunks[:2]]
        for n, chunk in enumerate(chunks):
            if n + 2 < len(chunks):
                pending.append([pool.submit(_prepare_or_error, p, pre) for p in chunks[n + 2]])
            kept, arrays = [], []
            for path, future in zip(chunk, pending[n], strict=True):
                out = future.result()
                if isinstance(out, CnnkitError):
                    if errors is None:
                        raise out
                    errors.append((str(path), str(out)))
                else:
                    kept.append(path)
                    arrays.append(out)
            pending[n] = []
            if kept:
                batch = torch.from_numpy(np.stack(arrays))
                if tta == "10crop":
                    from cnnkit.data.preprocess import ten_crop

                    probs = _softmax(run(ten_crop(batch, loaded.preprocess.size).contiguous()))
                    logits = np.log(probs.reshape(len(kept), 10, -1).mean(axis=1))
                else:
                    logits = run(batch)
                if tta == "flip":  # log of the mean probability: topk's softmax gives that mean back
                    mirrored = run(batch.flip(-1).contiguous())
                    logits = np.log((_softmax(logits) + _softmax(mirrored)) / 2)
                rows = loaded.topk(logits, topk)
                results.extend({"image": str(p), "topk": row} for p, row in zip(kept, rows, strict=True))
    return results
