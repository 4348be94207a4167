"""``explain_images``: heat maps (and optionally feature maps and filters) for image files, from a
training run directory or a zoo model with weights - what ``cnnkit explain`` runs."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from cnnkit.errors import CnnkitError
from cnnkit.evaluate.plots import to_display
from cnnkit.explain.cam import centre_of_mass, class_activation_map, default_layer, peak
from cnnkit.explain.visualize import (
    feature_maps,
    hypercolumns,
    save_feature_grid,
    save_filter_grid,
    save_hypercolumns,
    save_overlay,
)


@dataclass
class Explainable:
    """A model with its class names and the preprocessing its weights expect."""

    model: nn.Module
    classes: list[str]
    preprocess: Callable[[Sequence[str | Path]], torch.Tensor]
    mean: tuple[float, ...]
    std: tuple[float, ...]


def load_explainable(spec: str | Path, weights: str | Path | None = None, classes: Any = None) -> Explainable:
    """A run directory (best checkpoint, its preprocessing) or a zoo name (shipped or ``weights``)."""
    if Path(spec).is_dir():
        from cnnkit.runs import Run

        run = Run.load(spec)
        pre = run.preprocess  # exactly the run's evaluation transform (a random-crop run's centre crop)
        if pre is None:
            raise CnnkitError(f"{spec} is a text run; explain takes image models.")
        return Explainable(run.load_model(), list(run.classes), pre, tuple(pre.mean), tuple(pre.std))
    from cnnkit.predict import load_predictor

    net, names, preprocessing = load_predictor(str(spec), weights=weights, classes=classes)
    return Explainable(
        net.eval(), list(names), preprocessing, tuple(preprocessing.mean), tuple(preprocessing.std)
    )


def resolve_class(target: int | str | None, classes: Sequence[str]) -> int | None:
    """A class index from an index or a name (case-insensitive); None = the predicted class."""
    if target is None:
        return None
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        index = int(target)
        if not 0 <= index < len(classes):
            raise CnnkitError(f"class {index} is out of range: the model has {len(classes)} classes.")
        return index
    lowered = [c.lower() for c in classes]
    if target.lower() in lowered:
        return lowered.index(target.lower())
    close = [c for c in classes if target.lower() in c.lower()][:5]
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise CnnkitError(f"unknown class {target!r}.{hint} Pass a class name or index.")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:60]


def explain_images(
    spec: str | Path | Explainable,
    images: Sequence[str | Path],
    method: str = "gradcam",
    layer: str | None = None,
    target: int | str | None = None,
    out: str | Path = "explain",
    features: Sequence[str] = (),
    filters: bool = False,
    hypercolumn: bool = False,
) -> list[dict[str, Any]]:
    """One overlay PNG per image (``out/<image>_<method>.png``); ``features``: a feature-map grid
    PNG per named layer and image; ``filters``: the first conv layer's kernels (``filters.png``);
    ``hypercolumn``: each image's hypercolumns over the model's stages (``<image>_hypercolumns.png``).

    Returns one record per image: ``image``, ``label``, ``class``, ``prob``, ``layer``,
    ``peak`` and ``centre`` ((x, y) fractions of the width/height), ``png``, ``feature_pngs``.
    """
    if not images:
        raise CnnkitError("no images given. Pass at least one image file.")
    ex = spec if isinstance(spec, Explainable) else load_explainable(spec)
    out = Path(out)
    cls = resolve_class(target, ex.classes)
    results = []
    for path in images:
        x = ex.preprocess([path])
        name = layer or default_layer(ex.model, x)
        res = class_activation_map(ex.model, x, method, name, cls)
        c = res["target"][0]
        cam = res["cam"][0]
        shown = to_display(x[0].numpy(), ex.mean, ex.std)
        prob = float(res["probs"][0, c])
        stem = _slug(Path(path).stem)
        png = save_overlay(
            shown,
            cam.numpy(),
            out / f"{stem}_{method.replace('++', 'pp')}.png",
            f"{method} at {res['layer']}: {ex.classes[c]} ({prob:.1%})",
        )
        record: dict[str, Any] = {
            "image": str(path),
            "class": c,
            "label": ex.classes[c],
            "prob": prob,
            "layer": res["layer"],
            "peak": peak(cam),
            "centre": centre_of_mass(cam),
            "png": str(png),
            "feature_pngs": [],
        }
        for lname, act in feature_maps(ex.model, x, list(features)).items():
            fpng = save_feature_grid(
                act, out / f"{stem}_features_{_slug(lname)}.png", f"{lname}: {tuple(act.shape)}"
            )
            record["feature_pngs"].append(str(fpng))
        if hypercolumn:
            record["hypercolumns_png"] = str(
                save_hypercolumns(hypercolumns(ex.model, x), shown, out / f"{stem}_hypercolumns.png", stem)
            )
        results.append(record)
    if filters:
        save_filter_grid(ex.model, out / "filters.png")
    return results
