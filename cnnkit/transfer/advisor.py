"""``--regime auto``: pick a transfer regime from two measurements of the data.

The seeds' 2x2 matrix (CS231n's "Transfer Learning" notes; Yosinski et al. 2014):

===============  =====================  =====================
                 similar to ImageNet    different
===============  =====================  =====================
small dataset    features               truncate (mid-level)
large dataset    finetune               full
===============  =====================  =====================

(a) **Size**: training images per class; *large* from :data:`LARGE_PER_CLASS` (1,000 - the
    order of ImageNet's ~1,300 per class; the seeds' "small" examples have a few hundred).
(b) **Similarity**, on :data:`SAMPLE` validation images resized to the weights' own input
    size (224 px for EfficientNet-Lite0: the statistics below hold there; at 64 px the
    network is over-confident on anything):

    * ``feature_shift``: the mean over channels of the Gaussian KL divergence between the
      data's activation statistics at the backbone's last BatchNorm layer and that layer's
      running statistics - which *are* ImageNet's statistics at that depth (the layer
      tracked them during pretraining). 0 means ImageNet-like activations.
    * ``confidence``: the mean max-probability of the pretrained 1000-class head, and
      ``entropy`` its mean entropy over log(1000) (reported; natural photos get confident
      answers, digits and textures do not).
    * ``pixel_distance``: the L2 distance between the data's per-channel pixel mean/std
      and ImageNet's (reported).

    *similar* when ``feature_shift <= SIMILAR_MAX_SHIFT`` (0.18) and ``pixel_distance <=
    SIMILAR_MAX_PIXEL_DISTANCE`` (0.25). Set on ``bench/bench_transfer_advisor.py`` with
    EfficientNet-Lite0 and 64 images: feature shift / pixel distance / confidence were
    CIFAR-10 0.12 / 0.06 / 0.25, Fashion-MNIST 0.22 / 0.36 / 0.24, MNIST 0.42 / 0.57 / 0.14.
    The confidence does not separate CIFAR-10 from Fashion-MNIST, so it is reported, not used.
    Checked end to end by ``python bench/bench_transfer_advisor.py --datasets cifar10 fashion
    --images 2000 --size 128 --budget 60`` (all four regimes, 60 s of training each, 2,000
    images): CIFAR-10 (shift 0.13, distance 0.13) -> features, which won (test 0.750 vs
    truncate 0.680, finetune 0.675, full 0.635); Fashion-MNIST (0.26, 0.33) -> truncate, which
    won (0.845 vs features 0.810, finetune 0.800, full 0.700).

For ``truncate`` the cut is the deepest stage with a stride of at most 16 that is not the
last stage (mid-level features transfer best to different data, Yosinski et al. 2014).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from cnnkit.preprocess import IMAGENET_MEAN, IMAGENET_STD

LARGE_PER_CLASS = 1000
SIMILAR_MAX_SHIFT = 0.18
SIMILAR_MAX_PIXEL_DISTANCE = 0.25
SAMPLE = 64
MAX_CUT_REDUCTION = 16


@dataclass
class Advice:
    """The measurements, the chosen regime (and cut) and why, as printed and saved (advice.json)."""

    regime: str
    cut: str | None
    images_per_class: float
    feature_shift: float
    confidence: float
    entropy: float
    pixel_distance: float
    large: bool
    similar: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["thresholds"] = {
            "large_per_class": LARGE_PER_CLASS,
            "similar_max_shift": SIMILAR_MAX_SHIFT,
            "similar_max_pixel_distance": SIMILAR_MAX_PIXEL_DISTANCE,
        }
        return out


def _last_batchnorm(model: nn.Module) -> nn.Module | None:
    last = None
    for module in model.modules():
        if (
            isinstance(module, nn.BatchNorm2d)
            and module.track_running_stats
            and module.running_mean is not None
        ):
            last = module
    return last


def gaussian_kl(
    mean: torch.Tensor, var: torch.Tensor, ref_mean: torch.Tensor, ref_var: torch.Tensor
) -> float:
    """Mean over channels of KL(N(mean, var) || N(ref_mean, ref_var))."""
    var, ref_var = var.clamp_min(1e-6), ref_var.clamp_min(1e-6)
    kl = 0.5 * (torch.log(ref_var / var) + (var + (mean - ref_mean) ** 2) / ref_var - 1)
    return float(kl.mean())


@torch.no_grad()
def measure_similarity(
    source_model: nn.Module, x: torch.Tensor, mean: Any, std: Any, size: tuple[int, int] | None = None
) -> dict[str, float]:
    """feature_shift, confidence, entropy, pixel_distance of normalised images ``x`` for the
    pretrained network ``source_model`` (with its ImageNet head), at ``size`` - the weights'
    own input size, where the BatchNorm statistics and the head's calibration hold;
    ``mean``/``std`` undo the normalisation for the pixel statistics."""
    source_model.eval()
    pixels_in = x
    if size is not None and tuple(x.shape[-2:]) != tuple(size):
        x = torch.nn.functional.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)
    bn = _last_batchnorm(source_model)
    captured: dict[str, torch.Tensor] = {}
    handle = None
    if bn is not None:
        handle = bn.register_forward_pre_hook(lambda m, args: captured.__setitem__("x", args[0].detach()))
    try:
        logits = source_model(x)
    finally:
        if handle is not None:
            handle.remove()
    probs = logits.float().softmax(dim=1)
    confidence = float(probs.max(dim=1).values.mean())
    entropy = float((-(probs * probs.clamp_min(1e-12).log()).sum(dim=1)).mean() / math.log(probs.shape[1]))
    shift = math.nan
    if "x" in captured:
        a = captured["x"].float()
        dims = (0, 2, 3) if a.dim() == 4 else (0,)
        shift = gaussian_kl(a.mean(dims), a.var(dims), bn.running_mean.float(), bn.running_var.float())
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    pixels = pixels_in.float() * s + m
    if pixels.shape[1] == 1:
        pixels = pixels.repeat(1, 3, 1, 1)
    pm, ps = pixels.mean(dim=(0, 2, 3)), pixels.std(dim=(0, 2, 3))
    ref = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    pixel_distance = float(torch.cat([pm - ref[0], ps - ref[1]]).norm())
    return {
        "feature_shift": shift,
        "confidence": confidence,
        "entropy": entropy,
        "pixel_distance": pixel_distance,
    }


def pick_cut(feature_info: list[dict[str, Any]]) -> str | None:
    """The deepest stage with stride <= 16 that is not the last one."""
    candidates = [f for f in feature_info[:-1] if int(f.get("reduction", 1)) <= MAX_CUT_REDUCTION]
    return str(candidates[-1]["name"]) if candidates else None


def advise(
    images_per_class: float, similarity: dict[str, float], feature_info: list[dict[str, Any]]
) -> Advice:
    """The regime for data of this size and similarity (rules in the module docstring)."""
    large = images_per_class >= LARGE_PER_CLASS
    shift, confidence, pixels = (
        similarity["feature_shift"],
        similarity["confidence"],
        similarity["pixel_distance"],
    )
    similar = (math.isnan(shift) or shift <= SIMILAR_MAX_SHIFT) and pixels <= SIMILAR_MAX_PIXEL_DISTANCE
    regime = {(False, True): "features", (False, False): "truncate", (True, True): "finetune"}.get(
        (large, similar), "full"
    )
    cut = pick_cut(feature_info) if regime == "truncate" else None
    if regime == "truncate" and cut is None:
        regime = "features"
    size = (
        f"{images_per_class:.0f} training images per class is {'large' if large else 'small'} "
        f"({'>=' if large else '<'} {LARGE_PER_CLASS})"
    )
    look = (
        f"the pretrained features see them as {'similar to' if similar else 'different from'} ImageNet "
        f"(feature shift {shift:.2f} {'<=' if shift <= SIMILAR_MAX_SHIFT else '>'} {SIMILAR_MAX_SHIFT}, "
        f"pixel-statistics distance {pixels:.2f} {'<=' if pixels <= SIMILAR_MAX_PIXEL_DISTANCE else '>'} "
        f"{SIMILAR_MAX_PIXEL_DISTANCE}; ImageNet-head confidence {confidence:.2f}, entropy "
        f"{similarity['entropy']:.2f})"
    )
    why = {
        "features": "a frozen backbone with a new head uses the pretrained features without overfitting them",
        "truncate": f"mid-level features (cut at {cut}) transfer better than the source-specific top stages, "
        "and a small dataset cannot retrain them",
        "finetune": "there is enough data to adapt the pretrained features: warm up the head, then unfreeze "
        "the backbone at a lower learning rate",
        "full": "there is enough data to retrain every layer; the pretrained weights are only a start",
    }[regime]
    reason = f"{size}, and {look}: regime {regime} - {why}."
    return Advice(
        regime, cut, float(images_per_class), shift, confidence, similarity["entropy"],
        similarity["pixel_distance"], large, similar, reason,
    )  # fmt: skip


def sample_images(loader: Any, n: int = SAMPLE) -> torch.Tensor:
    """Up to ``n`` images from an evaluation loader (normalised float batches)."""
    parts, have = [], 0
    for x, _ in loader:
        parts.append(x.float())
        have += x.shape[0]
        if have >= n:
            break
    return torch.cat(parts)[:n]
