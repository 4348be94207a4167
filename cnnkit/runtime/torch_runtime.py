"""The PyTorch runtime: a model in eval mode, run the fastest way this CPU allows.

:class:`TorchRuntime` races NCHW / channels_last x eager / three TorchScript graphs on the
first batch (or compiles with ``torch.compile`` when asked) and keeps the winner; see its
docstring and ``python bench/bench_infer.py``.
"""

from __future__ import annotations

import copy
import threading
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from cnnkit.layout import race

# TorchScript graphs the inference race tries: frozen (constants folded), + optimize_for_inference
# (BatchNorm folded into the convolutions, prepacked oneDNN weights), + oneDNN Graph fusion
# (conv + BN + ReLU + add as single oneDNN kernels, ``torch.jit.enable_onednn_fusion``)
GRAPH_KINDS = ("frozen", "frozen+optimized", "frozen+onednn")

# Fewest images a job must have for :func:`cnnkit.runtime.predict_paths` to run the race: it
# costs about as much as this many images save. Measured on 2 cores at batch 16, decoding
# included: the race took 18.0 s for EfficientNet-Lite0 (38 -> 29 ms per image, even after
# 1,950 images) and 9.4 s for ResNet-18 (46 -> 39 ms, after 1,430); a handful of photos
# paid 10-20 s for nothing.
RACE_MIN_IMAGES = 2000


class TorchRuntime:
    """A PyTorch model for inference: eval mode, inference_mode, and the fastest of the ways
    to run it on this CPU.

    On the first batch (once) it races (:func:`cnnkit.layout.race`, on one image) the eager
    model in NCHW and in channels_last and, with ``optimize=True`` (the default), the model
    traced and frozen in each layout: as is, through ``torch.jit.optimize_for_inference``
    (BatchNorm folded into the convolutions, oneDNN kernels), and fused by oneDNN Graph
    (:data:`GRAPH_KINDS`; when that one wins, ``torch.jit.enable_onednn_fusion`` stays on for
    the process so that new batch shapes are fused too). A graph counts only if its
    logits match the eager model's, and it must beat the best eager candidate by 5% (a near
    tie keeps the eager model: no trace to maintain); ``optimize="always"`` keeps the fastest
    graph that matches, ``optimize=False`` races the layouts only, and ``channels_last``
    True/False fixes the layout. All pairings matter: layout first and graph second picked
    NHWC + graph for ResNet-18, the slowest of the pairings (``python bench/bench_infer.py``).
    ``optimize="compile"`` races the layouts and then compiles the model with
    ``torch.compile`` (TorchInductor, weights frozen into the graph): the fastest torch path
    here (1.6x eager for ResNet-18/50 and Lite0 at batch 1), but it needs a C++ compiler and
    takes 7-25 s on the first batch, so it is opt-in (``cnnkit predict/serve --compile``).
    The compiled graph is specialised to the first batch's shape: smaller batches are
    padded to it and larger ones split, so a folder compiles once.
    ``self.model`` stays the eager module (in the chosen layout), so Grad-CAM can still run
    backward through it. A lock serialises forward passes so concurrent callers (server
    threads) do not oversubscribe the cores.
    """

    name = "torch"

    def __init__(
        self, model: nn.Module, channels_last: bool | None = None, optimize: bool | str = True
    ) -> None:
        self.model = model.eval()
        self.channels_last = channels_last
        self.optimize = optimize
        self.frozen: Any = None  # the TorchScript graph or compiled module that won, if any
        self.batch: int | None = None  # the one batch size a compiled graph takes
        self.choice = "eager"  # what runs: eager | one of GRAPH_KINDS | compiled
        self.timings: dict[str, float] = {}
        self._tried = False
        if channels_last is not None:
            self.model.to(memory_format=_format(channels_last))
        self.lock = threading.Lock()

    def _trial(self, x: torch.Tensor) -> None:
        """Race the candidates on the first image of the first batch and keep the winner."""
        if self.optimize == "compile":
            self._compile(x)
            return
        layouts = [self.channels_last] if self.channels_last is not None else [False, True]
        if len(layouts) == 1 and not self.optimize:  # nothing to race
            self.channels_last = layouts[0]
            return
        x = x[:1]
        reference = self.model(x)
        nets = {nhwc: copy.deepcopy(self.model).to(memory_format=_format(nhwc)) for nhwc in layouts}
        inputs = {nhwc: x.contiguous(memory_format=_format(nhwc)) for nhwc in layouts}
        eager = {("eager", nhwc): nets[nhwc] for nhwc in layouts}
        graphs = {}
        if self.optimize:
            for nhwc in layouts:
                for kind in GRAPH_KINDS:
                    graph = _graph(nets[nhwc], inputs[nhwc], kind, reference)
                    if graph is not None:
                        graphs[(kind, nhwc)] = graph
        with torch.inference_mode():
            times = race(
                {key: (lambda f=f, k=key: f(inputs[k[1]])) for key, f in {**eager, **graphs}.items()}
            )
        self.timings = {f"{kind} {'nhwc' if nhwc else 'nchw'}": t for (kind, nhwc), t in times.items()}
        best_eager = min(eager, key=times.__getitem__)
        winner = best_eager
        if graphs:
            best_graph = min(graphs, key=times.__getitem__)
            if self.optimize == "always" or times[best_graph] * 1.05 < times[best_eager]:
                winner = best_graph
        self.choice, self.channels_last = winner
        self.model.to(memory_format=_format(self.channels_last))
        self.frozen = graphs.get(winner)
        if self.choice == "frozen+onednn":  # new batch shapes are re-fused only with the flag on
            torch.jit.enable_onednn_fusion(True)

    def _compile(self, x: torch.Tensor) -> None:
        """Race the layouts (eager), then compile in the winner on the whole first batch."""
        self.optimize = False
        self._trial(x)
        self.optimize = "compile"
        x = self._layout(x)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                compiled = torch.compile(copy.deepcopy(self.model), dynamic=False, options={"freezing": True})
                with torch.inference_mode():
                    out, reference = compiled(x), self.model(x)
        except Exception as exc:  # no C++ compiler, or an op Inductor cannot lower
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            warnings.warn(f"torch.compile failed ({first}); running the eager model instead.", stacklevel=3)
            return
        if torch.allclose(out, reference, rtol=1e-3, atol=1e-3 * float(reference.abs().max()) + 1e-5):
            self.frozen, self.batch, self.choice = compiled, len(x), "compiled"

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def predict(self, batch: torch.Tensor | np.ndarray, race: bool = True) -> np.ndarray:
        """Logits of ``batch`` (N, C, H, W). The first call races the candidates; with
        ``race=False`` a call before the race answers with the model as it stands (eager,
        its current layout) and leaves the race to a later call: a small job is answered
        before the race would have finished (:data:`RACE_MIN_IMAGES`)."""
        x = torch.as_tensor(batch, dtype=torch.float32)
        with self.lock:
            if not self._tried and (race or self.optimize == "compile"):
                # no_grad, not inference_mode: the re-laid-out weights must stay usable by
                # autograd (Grad-CAM runs backward through this same model)
                with torch.no_grad():
                    self._trial(x)
                self._tried = True
            return self._forward(x)

    def _forward(self, x: torch.Tensor) -> np.ndarray:
        x = self._layout(x)
        with torch.inference_mode():
            if self.frozen is not None and self.batch is not None:  # compiled for one batch size
                return np.concatenate(
                    [self._fixed_batch(x[i : i + self.batch]) for i in range(0, len(x), self.batch)]
                )
            if self.frozen is not None:
                try:
                    return self.frozen(x).float().numpy()
                except RuntimeError:  # a shape the trace cannot take: eager from now on
                    self.frozen = None
            return self.model(x).float().numpy()

    def _fixed_batch(self, x: torch.Tensor) -> np.ndarray:
        """A chunk of at most ``self.batch`` images through the compiled graph, padded to it."""
        n = len(x)
        if n < self.batch:  # zero images to fill the batch; their logits are dropped
            x = torch.cat([x, x.new_zeros((self.batch - n, *x.shape[1:]))]).contiguous(
                memory_format=_format(bool(self.channels_last))
            )
        return self.frozen(x)[:n].float().numpy()


def _format(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.contiguous_format


def _graph(
    net: nn.Module, x: torch.Tensor, kind: str, reference: torch.Tensor
) -> torch.jit.ScriptModule | None:
    """``net`` traced on ``x`` and frozen, then (``kind``) optimised for inference or fused by
    oneDNN Graph, and warmed up; None when TorchScript cannot trace it or its logits differ
    from ``reference``."""
    fusion = torch.jit.onednn_fusion_enabled()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # TracerWarnings: shapes are fixed by preprocessing
            torch.jit.enable_onednn_fusion(kind == "frozen+onednn")
            graph = torch.jit.freeze(torch.jit.trace(net, x))
            if kind == "frozen+optimized":
                graph = torch.jit.optimize_for_inference(graph)
            for _ in range(3):  # the profiling executor optimises (and fuses) on these calls
                out = graph(x)
    except Exception:  # a model TorchScript cannot trace stays eager
        return None
    finally:
        torch.jit.enable_onednn_fusion(fusion)
    tolerance = 1e-3 * float(reference.abs().max()) + 1e-5
    return graph if torch.allclose(out, reference, rtol=1e-3, atol=tolerance) else None
