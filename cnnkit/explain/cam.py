"""Class activation maps, written with forward/backward hooks (no grad-cam package).

* CAM (Zhou et al., "Learning Deep Features for Discriminative Localization", CVPR 2016):
  for a net whose head is global average pooling + one linear layer, the map of class c is
  ``sum_k w[c, k] * A_k`` over the last feature maps A - no gradients needed.
* Grad-CAM (Selvaraju et al., ICCV 2017): any conv net; channel weights are the spatial
  mean of d score_c / d A_k, map = ReLU(sum_k alpha_k A_k).
* Grad-CAM++ (Chattopadhay et al., WACV 2018): pixel-wise weights
  ``a = g^2 / (2 g^2 + sum(A) g^3)`` on the exponential of the score, which separates
  several instances of a class better.

The target layer defaults to ``model.cam_layer`` (the zoo's stage metadata), else the
outermost module giving the last spatial (N, C, H, W) map of the forward pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnkit.errors import CnnkitError

METHODS = ("cam", "gradcam", "gradcam++")


def layer_names(model: nn.Module, max_depth: int = 3) -> list[str]:
    """Dotted names of modules that hold or are a Conv2d (valid CAM/feature-map layers)."""
    names = []
    for name, module in model.named_modules():
        if not name or name.count(".") >= max_depth:
            continue
        if isinstance(module, nn.Conv2d) or any(isinstance(m, nn.Conv2d) for m in module.modules()):
            names.append(name)
    return names


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """The sub-module ``name``; an unknown name -> one line listing the valid ones."""
    try:
        return model.get_submodule(name)
    except AttributeError:
        valid = layer_names(model, max_depth=2)
        raise CnnkitError(
            f"no layer {name!r} in {type(model).__name__}; valid layers: {', '.join(valid)}"
        ) from None


def default_layer(model: nn.Module, x: torch.Tensor) -> str:
    """``model.cam_layer`` if the model names one, else the outermost module whose output is the
    last spatial 4-D map of a forward pass on ``x``."""
    name = getattr(model, "cam_layer", None)
    if name:
        return str(name)
    seen: list[tuple[str, torch.Tensor]] = []
    hooks = [
        module.register_forward_hook(lambda _m, _i, out, n=n: seen.append((n, out)))
        for n, module in model.named_modules()
        if n
    ]
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        for h in hooks:
            h.remove()
    spatial = [
        (n, t)
        for n, t in seen
        if isinstance(t, torch.Tensor) and t.dim() == 4 and t.shape[-1] * t.shape[-2] > 1
    ]
    if not spatial:
        raise CnnkitError(
            f"{type(model).__name__} has no convolutional feature map to explain; pass --layer."
        )
    last = spatial[-1][1]
    # Hooks fire inner-first: of the modules that returned this very tensor, take the outermost.
    same = [n for n, t in spatial if t.data_ptr() == last.data_ptr() and t.shape == last.shape]
    return min(same, key=lambda n: n.count("."))


@contextmanager
def capture(module: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """Record ``module``'s output (``"act"``) and, after backward, its gradient (``"grad"``)."""
    store: dict[str, torch.Tensor] = {}

    def hook(_m: nn.Module, _i: Any, out: Any) -> None:
        out = out[0] if isinstance(out, (tuple, list)) else out
        store["act"] = out
        if out.requires_grad:
            out.register_hook(lambda g: store.__setitem__("grad", g))

    handle = module.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    return (out[0] if isinstance(out, (tuple, list)) else out).float()


def class_activation_map(
    model: nn.Module,
    x: torch.Tensor,
    method: str = "gradcam",
    layer: str | None = None,
    target: int | None = None,
) -> dict[str, Any]:
    """Heat maps for a batch ``x`` (N, C, H, W): ``{"cam": (N, H, W) in [0, 1], "layer",
    "target": [class per image], "probs": (N, K)}``. ``target=None`` explains each image's
    predicted class. Maps are upsampled (bilinear) to the input size."""
    if method not in METHODS:
        raise CnnkitError(f"unknown method {method!r}; use one of {', '.join(METHODS)}.")
    model.eval()
    name = layer or default_layer(model, x)
    module = get_layer(model, name)
    with torch.enable_grad(), capture(module) as store:
        x = x.detach().requires_grad_(method != "cam")
        logits = _logits(model, x)
        if "act" not in store:
            raise CnnkitError(f"layer {name!r} did not run in the forward pass; choose another --layer.")
        k = logits.shape[1]
        if target is not None and not 0 <= target < k:
            raise CnnkitError(f"class {target} is out of range: the model has {k} classes (0..{k - 1}).")
        targets = logits.argmax(1) if target is None else torch.full((len(x),), target, dtype=torch.long)
        act = store["act"]
        if act.dim() != 4:
            raise CnnkitError(
                f"layer {name!r} outputs shape {tuple(act.shape)}, not a feature map; choose a conv layer."
            )
        if method == "cam":
            cam = _cam(model, act.detach(), logits.detach(), targets, name)
        else:
            score = logits.gather(1, targets[:, None]).sum()
            model.zero_grad(set_to_none=True)
            score.backward()
            grad = store.get("grad")
            if grad is None:
                raise CnnkitError(
                    f"no gradient reached layer {name!r}; choose a layer before the classifier."
                )
            cam = _gradcam(act.detach(), grad, logits.detach().gather(1, targets[:, None]), method)
    cam = F.interpolate(cam[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return {
        "cam": _normalise(cam),
        "layer": name,
        "target": targets.tolist(),
        "probs": logits.detach().softmax(1),
    }


def _cam(
    model: nn.Module, act: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor, name: str
) -> torch.Tensor:
    """Zhou et al.'s CAM; checks that the head really is global average pooling + linear."""
    fc = model.get_classifier() if hasattr(model, "get_classifier") else None
    if not isinstance(fc, nn.Linear) or fc.in_features != act.shape[1]:
        raise CnnkitError(
            f"CAM needs a global-average-pooling net whose linear classifier reads layer {name!r}; "
            "use --method gradcam for this model."
        )
    pooled = fc(act.mean(dim=(2, 3)))
    if not torch.allclose(pooled, logits, rtol=1e-3, atol=1e-3 * float(logits.abs().max()) + 1e-4):
        raise CnnkitError(
            f"layer {name!r} is not the map that the classifier pools (its pooled scores differ from the "
            "model's); use the last feature layer or --method gradcam."
        )
    weights = fc.weight[targets]  # (N, C)
    return torch.einsum("nc,nchw->nhw", weights, act).detach().clamp_min(0)


def _gradcam(act: torch.Tensor, grad: torch.Tensor, score: torch.Tensor, method: str) -> torch.Tensor:
    if method == "gradcam":
        weights = grad.mean(dim=(2, 3), keepdim=True)
    else:
        # Grad-CAM++ with Y = exp(S): dY/dA = exp(S) g, the higher orders are exp(S) g^2, exp(S) g^3;
        # exp(S) cancels in alpha, and multiplies the positive part of the first derivative.
        g2, g3 = grad.pow(2), grad.pow(3)
        denom = 2 * g2 + act.sum(dim=(2, 3), keepdim=True) * g3
        alpha = g2 / torch.where(denom != 0, denom, torch.ones_like(denom))
        weights = (alpha * F.relu(score.exp().view(-1, 1, 1, 1) * grad)).sum(dim=(2, 3), keepdim=True)
    return F.relu((weights * act).sum(dim=1))


def _normalise(cam: torch.Tensor) -> torch.Tensor:
    flat = cam.flatten(1)
    low, high = flat.min(1, keepdim=True)[0], flat.max(1, keepdim=True)[0]
    return ((flat - low) / (high - low).clamp_min(1e-12)).view_as(cam)


def peak(cam: torch.Tensor) -> tuple[float, float]:
    """(x, y) of a map's maximum, as fractions of its width and height."""
    h, w = cam.shape[-2:]
    i = int(cam.flatten().argmax())
    return (i % w + 0.5) / w, (i // w + 0.5) / h


def centre_of_mass(cam: torch.Tensor) -> tuple[float, float]:
    """(x, y) of a map's centre of mass, as fractions of its width and height."""
    h, w = cam.shape[-2:]
    total = cam.sum().clamp_min(1e-12)
    ys = (torch.arange(h, dtype=cam.dtype) + 0.5) / h
    xs = (torch.arange(w, dtype=cam.dtype) + 0.5) / w
    return float((cam.sum(0) * xs).sum() / total), float((cam.sum(1) * ys).sum() / total)
