"""Classify images with a pretrained or user-trained model: ``predict_images``.

The work is split at one seam so any source of weights plugs in:

* :class:`~cnnkit.preprocess.Preprocess` - how an image becomes the tensor the weights were
  trained on (the one preprocessing path of cnnkit);
* :func:`predict_with_model` - model + class names + preprocessing -> top-k per image;
* :func:`load_predictor` - a zoo name (its weights record: ``cnnkit.models.get_weights``), or
  ``weights=PATH`` with ``classes=FILE``, or a ``cnnkit train`` run directory
  (:class:`cnnkit.runs.Run`: best checkpoint, classes, the exact evaluation transform)
  -> those three things.

No Lightning is imported here: a server or a script pays only for torch and PIL.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from cnnkit.errors import CnnkitError
from cnnkit.preprocess import IMAGENET_MEAN, IMAGENET_STD, ImageInput, Preprocess, normalization

Preprocessing = Preprocess  # the name before cnnkit.preprocess existed

__all__ = [
    "IMAGENET_MEAN",  # re-exported for older callers; defined in cnnkit.preprocess
    "IMAGENET_STD",
    "Preprocess",
    "Preprocessing",
    "default_preprocess",
    "load_predictor",
    "load_run",
    "predict_images",
    "predict_with_model",
    "read_class_names",
]


def read_class_names(path: str | Path) -> list[str]:
    """One class name per line (blank lines ignored), index = line order."""
    path = Path(path)
    if not path.is_file():
        raise CnnkitError(f"class names file {path} does not exist; pass a text file with one name per line.")
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise CnnkitError(f"class names file {path} is empty; write one class name per line.")
    return names


def _label(image: Any) -> str:
    return str(image) if isinstance(image, (str, Path)) else f"<{type(image).__name__}>"


def predict_with_model(
    model: nn.Module,
    class_names: Sequence[str],
    preprocess: Preprocess,
    images: Sequence[ImageInput],
    topk: int = 5,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    errors: list[tuple[str, str]] | None = None,
) -> list[dict[str, Any]]:
    """Top-k classes of each image: ``[{"image": path, "topk": [{"index", "label", "prob"}, ...]}]``.

    ``image`` is the path as given; probabilities are the softmax of the model's logits.
    A bad image (missing, not an image, truncated, too many pixels) raises its one-line
    :class:`CnnkitError`, or, when ``errors`` is a list, is appended there as
    ``(image, message)`` and left out of the results.
    """
    if topk < 1:
        raise CnnkitError(f"topk must be at least 1, got {topk}.")
    if len(images) == 0:
        raise CnnkitError("no images given. Pass at least one image file.")
    model = model.to(device).eval()
    k = min(topk, len(class_names))
    results: list[dict[str, Any]] = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            chunk, tensors = [], []
            for image in images[start : start + batch_size]:
                try:
                    tensors.append(preprocess.load_one(image))
                except CnnkitError as exc:
                    if errors is None:
                        raise
                    errors.append((_label(image), str(exc)))
                    continue
                chunk.append(image)
            if not chunk:
                continue
            logits = model(torch.stack(tensors).to(device))
            if logits.shape[1] != len(class_names):
                raise CnnkitError(
                    f"the model has {logits.shape[1]} outputs but {len(class_names)} class names were given; "
                    "pass the class names file the weights were trained with."
                )
            probs, indices = logits.float().softmax(dim=1).topk(k, dim=1)
            for image, prob_row, index_row in zip(chunk, probs.tolist(), indices.tolist(), strict=True):
                top = [
                    {"index": i, "label": class_names[i], "prob": p}
                    for i, p in zip(index_row, prob_row, strict=True)
                ]
                results.append({"image": _label(image), "topk": top})
    return results


def default_preprocess(net: nn.Module) -> Preprocess:
    """A resize to the model's default input size with ImageNet mean/std (gray: their average)."""
    channels, h, w = net.default_input_size
    mean, std = normalization("imagenet", channels)  # type: ignore[misc]  # never None for a preset
    return Preprocess(size=(h, w), channels=channels, mean=mean, std=std)


def _weights_record(model: str) -> Any:
    """The model's default weights record (``cnnkit.models.get_weights``), None when it has none."""
    from cnnkit.models import get_weights, model_info

    return get_weights(model) if model_info(model).weights else None


def __getattr__(name: str) -> Any:
    if name == "EFFICIENTNET_LITE_PREPROCESSING":  # old name of get_weights("efficientnet_lite0").preprocess
        return _weights_record("efficientnet_lite0").preprocess
    raise AttributeError(f"module 'cnnkit.predict' has no attribute {name!r}")


def load_run(run_dir: str | Path) -> tuple[nn.Module, list[str], Preprocess]:
    """A ``cnnkit train`` run directory -> its best model (eval mode), class names and exactly
    its evaluation preprocessing; see :class:`cnnkit.runs.Run` for everything else in it."""
    from cnnkit.runs import Run

    run = Run.load(run_dir)
    if run.preprocess is None:
        raise CnnkitError(
            f"{run.path} is a {run.kind} run; cnnkit predict classifies images with image runs."
        )
    return run.load_model(), run.classes, run.preprocess


def load_predictor(
    model: str = "efficientnet_lite0",
    weights: str | Path | None = None,
    classes: str | Path | Sequence[str] | None = None,
    preprocessing: Preprocess | None = None,
    **model_kwargs: Any,
) -> tuple[nn.Module, list[str], Preprocess]:
    """A model with weights, its class names and its preprocessing.

    ``model`` is a run directory (:class:`cnnkit.runs.Run`) or a zoo name. Without
    ``weights`` a zoo model must have a weights record (``cnnkit models`` lists them), which
    brings its class names and preprocessing; with ``weights=PATH`` any image architecture
    loads a state_dict (strict keys). Class names: ``classes`` (a file, or a list), else the
    record's, else ImageNet's for 1000 outputs, else ``class_0``, ``class_1``, ...
    Preprocessing: ``preprocessing``, else the record's, else :func:`default_preprocess`.
    """
    from cnnkit.imagenet import imagenet_classes
    from cnnkit.models.registry import create_model, list_models, model_info
    from cnnkit.models.weights import load_weights, read_state_dict

    if model not in list_models() and Path(model).exists():
        net, names, preprocess = load_run(model)
        return net, names, preprocessing or preprocess
    info = model_info(model)
    if info.kind != "image":
        raise CnnkitError(f"{model} classifies {info.kind}, not images; choose an image model.")
    names = (
        read_class_names(classes)
        if isinstance(classes, (str, Path))
        else (list(classes) if classes else None)
    )
    record = None
    if weights is None:
        record = _weights_record(model)
        if record is None:
            from cnnkit.models import models_with_weights

            raise CnnkitError(
                f"{model} has no pretrained weights; pass --weights PATH (a state_dict of {model}) and "
                f"--classes FILE, or use one of {', '.join(models_with_weights())}."
            )
        net = create_model(model, pretrained=True, **model_kwargs)
    else:
        state = read_state_dict(weights)
        net = create_model(model, **model_kwargs)
        # The file's classifier says how many classes it was trained for.
        head = state.get(f"{net.classifier_path}.weight")
        if head is not None and head.shape[0] != net.num_classes:
            net.reset_classifier(int(head.shape[0]))
        load_weights(net, state)
    outputs = int(net.num_classes)
    if names is None and record is not None and outputs == len(record.class_names()):
        names = list(record.class_names())
    if names is None:
        names = imagenet_classes() if outputs == 1000 else [f"class_{i}" for i in range(outputs)]
    if len(names) != outputs:
        raise CnnkitError(
            f"{len(names)} class names for a model with {outputs} outputs; pass the matching file."
        )
    if preprocessing is None:
        preprocessing = record.preprocess if record is not None else default_preprocess(net)
    return net, names, preprocessing


def predict_images(
    paths: Sequence[ImageInput] | ImageInput,
    model: str = "efficientnet_lite0",
    topk: int = 5,
    weights: str | Path | None = None,
    classes: str | Path | Sequence[str] | None = None,
    preprocessing: Preprocess | None = None,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    max_image_pixels: int | None = None,
    errors: list[tuple[str, str]] | None = None,
    **model_kwargs: Any,
) -> list[dict[str, Any]]:
    """Top-k labels and probabilities for images; see :func:`predict_with_model` for the format.

    >>> predict_images(["cat.jpg"])[0]["topk"][0]["label"]  # doctest: +SKIP
    'tabby'

    ``paths``: image files (or bytes, PIL images, arrays). ``model``: a zoo name or a run
    directory. ``max_image_pixels``: refuse images with more pixels (default
    ``$CNNKIT_MAX_IMAGE_PIXELS``, else Pillow's 89,478,485). ``errors``: collect bad images
    there instead of raising. ``model_kwargs`` go to the model builder (e.g.
    ``tf_padding=False`` for efficientnet_lite0).
    """
    if isinstance(paths, (str, Path, bytes)) or not isinstance(paths, Sequence):
        paths = [paths]  # type: ignore[list-item]
    net, names, preprocess = load_predictor(model, weights, classes, preprocessing, **model_kwargs)
    if max_image_pixels is not None:
        preprocess = dataclasses.replace(preprocess, max_image_pixels=max_image_pixels)
    return predict_with_model(net, names, preprocess, list(paths), topk, batch_size, device, errors)
