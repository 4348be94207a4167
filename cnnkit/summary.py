"""Keras-style model summary: every layer's output shape, parameters and MACs.

How the numbers are counted (and why they can be checked by hand):

* Parameters of a row are the layer's *own* parameters. Totals count each parameter
  tensor once, so shared layers are not double counted. Conv: K*F*F*D_in/groups + K.
* MACs (multiply-accumulates) are counted on leaf operations only - Conv and Linear,
  plus any layer that defines ``macs(inputs, output)`` - never on containers, which is
  how other summary tools end up counting a ResNet block twice. This is the convention
  of torchvision's published "GFLOPS" and the ResNet paper's "FLOPs" (true FLOPs are
  about 2x MACs). Pooling, normalisation and activations cost 0 MACs here.
* Output shapes are PyTorch's (N, C, H, W); Keras prints (None, H, W, C).

The pass runs on a weightless copy of the model on PyTorch's *meta* device
(:func:`meta_copy`): shapes are propagated, nothing is computed or allocated, so VGG-19 at
224x224 is summarised in milliseconds and every count stays exact. This module imports
nothing from ``cnnkit.models`` (the models import it, never the reverse).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from cnnkit.errors import CnnkitError


@dataclass
class LayerRow:
    """One line of the summary table."""

    name: str
    type: str
    output_shape: Any  # tuple[int|None, ...] or a list of them for multi-output layers
    params: int
    trainable: int
    macs: int
    depth: int


@dataclass
class ModelSummary:
    """The result of :func:`summary`; ``print()`` it for the table."""

    model_name: str
    input_size: tuple[int, ...]
    rows: list[LayerRow] = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    total_macs: int = 0
    output_shape: Any = None
    shapes: dict[str, Any] = field(default_factory=dict)  # every module that ran -> output shape
    stages: list[dict[str, Any]] = field(default_factory=list)  # feature_info rows, with shapes

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "input_size": list(self.input_size),
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "non_trainable_params": self.non_trainable_params,
            "total_macs": self.total_macs,
            "stages": self.stages,
            "layers": [
                {
                    "name": r.name,
                    "type": r.type,
                    "output_shape": r.output_shape,
                    "params": r.params,
                    "macs": r.macs,
                }
                for r in self.rows
            ],
        }

    def __str__(self) -> str:
        head = ("Layer (type)", "Output Shape", "Param #", "MACs")
        lines = [
            (f"{r.name} ({r.type})", format_shape(r.output_shape), f"{r.params:,}", f"{r.macs:,}")
            for r in self.rows
        ]
        w0 = max([len(head[0])] + [len(a) for a, *_ in lines])
        w1 = max([len(head[1])] + [len(b) for _, b, *_ in lines])
        w2 = max([len(head[2])] + [len(c) for *_, c, _ in lines])
        w3 = max([len(head[3])] + [len(d) for *_, d in lines])
        width = w0 + w1 + w2 + w3 + 6
        out = [f'Model: "{self.model_name}"  input {format_shape((None, *self.input_size))}', "_" * width]
        out.append(f"{head[0]:<{w0}}  {head[1]:<{w1}}  {head[2]:>{w2}}  {head[3]:>{w3}}")
        out.append("=" * width)
        ends = self._stage_ends()
        for row, (a, b, c, d) in zip(self.rows, lines, strict=True):
            out.append(f"{a:<{w0}}  {b:<{w1}}  {c:>{w2}}  {d:>{w3}}")
            for stage in ends.get(row.name, []):
                label = f" end of stage {stage['name']}: {stage['num_chs']} ch, stride {stage['reduction']} "
                out.append(f"{label:-^{width}}")
        out.append("=" * width)
        out.append(f"Total params: {self.total_params:,}")
        out.append(f"Trainable params: {self.trainable_params:,}")
        out.append(f"Non-trainable params: {self.non_trainable_params:,}")
        out.append(f"Total MACs: {self.total_macs:,} ({human_count(self.total_macs)})")
        out.append(f"Params size (MB): {self.total_params * 4 / 2**20:.2f}")
        out.append("_" * width)
        return "\n".join(out)

    def _stage_ends(self) -> dict[str, list[dict[str, Any]]]:
        """Row name after which each stage ends: its module, or the last row inside it."""
        ends: dict[str, list[dict[str, Any]]] = {}
        for stage in self.stages:
            if stage["name"] == "head":
                continue
            module = stage["module"]
            inside = [r.name for r in self.rows if r.name == module or r.name.startswith(module + ".")]
            if inside:
                ends.setdefault(inside[-1], []).append(stage)
        return ends


def human_count(n: float) -> str:
    """1_234_567 -> '1.23 M'; the unit style of papers and torchvision's docs."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:g}"


def format_shape(shape: Any) -> str:
    if isinstance(shape, list):
        return ", ".join(format_shape(s) for s in shape)
    if shape is None:
        return "?"
    return "(" + ", ".join("N" if d is None else str(d) for d in shape) + ")"


def leaf_macs(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> int:
    """Multiply-accumulates of one call of a leaf layer, per sample (batch of 1)."""
    custom = getattr(module, "macs", None)
    if callable(custom):
        return int(custom(inputs, output))
    if not isinstance(output, torch.Tensor) or output.dim() == 0:
        return 0
    per_sample = output.numel() // max(output.shape[0], 1)
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return per_sample * (module.in_channels // module.groups) * math.prod(module.kernel_size)
    if isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        x = inputs[0]
        in_per_sample = x.numel() // max(x.shape[0], 1)
        return in_per_sample * (module.out_channels // module.groups) * math.prod(module.kernel_size)
    if isinstance(module, nn.Linear):
        return per_sample * module.in_features
    return 0


def _is_leaf(module: nn.Module) -> bool:
    # A layer with a macs() method counts its children itself, so it is one row.
    return callable(getattr(module, "macs", None)) or not any(True for _ in module.children())


def _shape_of(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return (None, *x.shape[1:])
    if isinstance(x, (list, tuple)):
        shapes = [_shape_of(t) for t in x]
        return [s for s in shapes if s is not None] or None
    return None


def meta_copy(model: nn.Module) -> nn.Module:
    """A weightless copy of ``model`` on the meta device, in eval mode, without hooks.

    Parameters keep their shapes, sharing and ``requires_grad``; normalisation layers
    (shape-keeping, and slow on meta) become the identity. Used for sizes, never values.
    """
    memo: dict[int, Any] = {}
    for p in model.parameters():
        memo[id(p)] = nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)
    for b in model.buffers():
        memo[id(b)] = torch.empty_like(b, device="meta")
    clone = copy.deepcopy(model, memo)
    for m in clone.modules():
        m._forward_hooks.clear()
        m._forward_pre_hooks.clear()
        m._backward_hooks.clear()
        if isinstance(m, _SHAPE_KEEPING):
            m.forward = _identity
    return clone.eval()


_SHAPE_KEEPING = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def summary(
    model: nn.Module,
    input_size: tuple[int, ...] | None = None,
    depth: int | None = None,
    device: str | torch.device | None = None,
    stages: bool = True,
) -> ModelSummary:
    """Run one shape-only forward pass at ``input_size`` (C, H, W) and tabulate every layer.

    ``input_size`` defaults to the size the architecture was registered with.
    ``depth=None`` lists leaf layers (as Keras does); ``depth=1`` folds everything into
    the top-level blocks (e.g. ResNet's ``layer1`` .. ``layer4``), summing their
    parameters and MACs. A model with ``feature_info`` gets its stages marked
    (``stages=False`` skips finding them, for callers that only want the totals).
    ``device`` is accepted for compatibility only: the pass always runs on ``meta``.
    """
    name = getattr(model, "model_name", type(model).__name__)
    default = getattr(model, "default_input_size", None)
    if input_size is None:
        input_size = default
        if input_size is None:
            raise CnnkitError(f"{name}: pass input_size=(C, H, W); the model does not know its default size.")
    input_size = tuple(int(d) for d in input_size)
    if any(d < 1 for d in input_size):
        raise CnnkitError(
            f"input size {input_size} has a dimension below 1; give positive sizes like 3x224x224."
        )

    is_text = len(input_size) == 1
    meta = meta_copy(model)
    x = torch.zeros((1, *input_size), dtype=torch.long if is_text else torch.float32, device="meta")

    names = {m: n for n, m in meta.named_modules()}
    depth_of = {m: (0 if n == "" else n.count(".") + 1) for m, n in names.items()}
    calls: list[dict[str, Any]] = []  # in call-start order
    open_calls: dict[int, list[dict[str, Any]]] = {}
    seen_params: set[int] = set()

    def pre_hook(module: nn.Module, inputs: tuple[Any, ...]) -> None:
        rec = {"module": module, "order": len(calls), "shape": None, "macs": 0}
        calls.append(rec)
        open_calls.setdefault(id(module), []).append(rec)

    def post_hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        rec = open_calls[id(module)].pop()
        rec["shape"] = _shape_of(output)
        if _is_leaf(module):
            rec["macs"] = leaf_macs(module, inputs, output)

    for m in names:
        if m is not meta:
            m.register_forward_pre_hook(pre_hook)
            m.register_forward_hook(post_hook)
    try:
        with torch.no_grad():
            out = meta(x)
    except (RuntimeError, ValueError, IndexError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = f" Its default input size is {'x'.join(map(str, default))}." if default else ""
        raise CnnkitError(
            f"{name} cannot take input {'x'.join(map(str, input_size))}: {first}.{hint}"
        ) from exc

    # Which calls become rows: leaves (depth=None), or modules at `depth` and leaves above it.
    def is_row(m: nn.Module) -> bool:
        d = depth_of[m]
        if depth is None:
            return _is_leaf(m) or _has_own_params(m)
        return d == depth or (d < depth and (_is_leaf(m) or _has_own_params(m)))

    def inside_leaf(m: nn.Module) -> bool:
        # children of a layer that counts its own MACs are not rows of their own
        parts = names[m].split(".")
        for i in range(1, len(parts)):
            parent = meta.get_submodule(".".join(parts[:i]))
            if callable(getattr(parent, "macs", None)):
                return True
        return False

    summ = ModelSummary(model_name=name, input_size=input_size)
    leaf_calls = [c for c in calls if _is_leaf(c["module"]) and not inside_leaf(c["module"])]
    for c in calls:
        m = c["module"]
        summ.shapes.setdefault(names[m], c["shape"])
        if not is_row(m) or inside_leaf(m):
            continue
        if depth is None or _is_leaf(m):
            own = list(m.parameters(recurse=_is_leaf(m)))
            macs = c["macs"]
        else:
            own = list(m.parameters())
            prefix = names[m] + "."
            macs = sum(lc["macs"] for lc in leaf_calls if names[lc["module"]].startswith(prefix))
        fresh = [p for p in own if id(p) not in seen_params]
        seen_params.update(id(p) for p in fresh)
        summ.rows.append(
            LayerRow(
                name=names[m],
                type=type(m).__name__,
                output_shape=c["shape"],
                params=sum(p.numel() for p in fresh),
                trainable=sum(p.numel() for p in fresh if p.requires_grad),
                macs=macs,
                depth=depth_of[m],
            )
        )
    unique = {id(p): p for p in model.parameters()}
    summ.total_params = sum(p.numel() for p in unique.values())
    summ.trainable_params = sum(p.numel() for p in unique.values() if p.requires_grad)
    summ.total_macs = sum(c["macs"] for c in leaf_calls)
    summ.output_shape = _shape_of(out)
    summ.stages = stage_rows(model, summ.shapes) if stages and not is_text else []
    return summ


def stage_rows(model: nn.Module, shapes: dict[str, Any]) -> list[dict[str, Any]]:
    """``feature_info`` rows with the output shape of each stage and its parameters
    (total and trainable), then a ``head`` row; empty for a model without stages."""
    info = getattr(model, "feature_info", None)
    groups = dict(model.param_groups()) if callable(getattr(model, "param_groups", None)) else {}
    if not info:
        return []
    rows = []
    for stage in [*info, {"name": "head", "module": getattr(model, "classifier_path", ""), "num_chs": None}]:
        params = groups.get(stage["name"], [])
        rows.append(
            {
                **stage,
                "output_shape": shapes.get(stage["module"]),
                "params": sum(p.numel() for p in params),
                "trainable": sum(p.numel() for p in params if p.requires_grad),
            }
        )
    return rows


def _has_own_params(m: nn.Module) -> bool:
    return any(True for _ in m.parameters(recurse=False))


def count_params(model: nn.Module) -> int:
    """Number of distinct parameters (shared tensors counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
