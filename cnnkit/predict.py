"""Classify image files with a pretrained or user-trained model: ``predict_images``.

The work is split at one seam so any source of weights plugs in:

* :class:`Preprocessing` - how a file becomes the tensor the weights were trained on
  (size, resampling filter, mean/std, channels);
* :func:`predict_with_model` - model + class names + preprocessing -> top-k per image;
* :func:`load_predictor` - a zoo name (with its shipped weights, or ``weights=PATH`` and
  ``classes=FILE``), or a ``cnnkit train`` run directory (:func:`load_run`: its best
  checkpoint, ``classes.json`` and the preprocessing it trained with) -> those three things.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from PIL import Image, UnidentifiedImageError

from cnnkit.errors import CnnkitError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_RESAMPLE = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST}


@dataclass(frozen=True)
class Preprocessing:
    """File -> normalised (C, H, W) float tensor: decode, convert, resize, ``(x/255 - mean) / std``.

    ``mean``/``std`` are on the [0, 1] scale, one per channel. The whole image is resized
    to ``size`` (no crop), as the EfficientNet-Lite0 weights were evaluated.
    """

    size: tuple[int, int] = (224, 224)  # (H, W)
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    resample: str = "bilinear"
    channels: int = 3

    def load(self, path: str | Path) -> torch.Tensor:
        image = open_image(path).convert("RGB" if self.channels == 3 else "L")
        h, w = self.size
        if image.size != (w, h):
            image = image.resize((w, h), _RESAMPLE[self.resample])
        array = np.asarray(image, dtype=np.float32) / 255.0
        x = torch.from_numpy(array.reshape(h, w, -1)).permute(2, 0, 1)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(-1, 1, 1)
        return (x - mean) / std

    def __call__(self, paths: Sequence[str | Path]) -> torch.Tensor:
        return torch.stack([self.load(p) for p in paths])


# The TensorFlow release of EfficientNet-Lite: bicubic resize, (x - 127) / 128 on [0, 255].
EFFICIENTNET_LITE_PREPROCESSING = Preprocessing(
    size=(224, 224), mean=(127 / 255,) * 3, std=(128 / 255,) * 3, resample="bicubic"
)
# Models whose weights need preprocessing other than the ImageNet default.
MODEL_PREPROCESSING: dict[str, Preprocessing] = {"efficientnet_lite0": EFFICIENTNET_LITE_PREPROCESSING}


def open_image(path: str | Path) -> Image.Image:
    """Open and fully decode an image file; a clear error for missing, non-image or corrupt files."""
    path = Path(path)
    if not path.exists():
        raise CnnkitError(f"image file {path} does not exist. Check the path.")
    if path.is_dir():
        raise CnnkitError(f"{path} is a directory, not an image. Pass image files (e.g. photos/*.jpg).")
    try:
        image = Image.open(path)
        image.load()  # decode now, so a truncated file fails here and not in the model
    except UnidentifiedImageError:
        raise CnnkitError(
            f"cannot read {path} as an image (not a JPEG/PNG/BMP/... file). Pass an image file."
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise CnnkitError(
            f"cannot decode image {path}: {exc}. The file may be truncated or corrupt."
        ) from None
    return image


def read_class_names(path: str | Path) -> list[str]:
    """One class name per line (blank lines ignored), index = line order."""
    path = Path(path)
    if not path.is_file():
        raise CnnkitError(f"class names file {path} does not exist; pass a text file with one name per line.")
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise CnnkitError(f"class names file {path} is empty; write one class name per line.")
    return names


def predict_with_model(
    model: nn.Module,
    class_names: Sequence[str],
    preprocess: Callable[[Sequence[str | Path]], torch.Tensor],
    paths: Sequence[str | Path],
    topk: int = 5,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
) -> list[dict[str, Any]]:
    """Top-k classes of each image: ``[{"image": path, "topk": [{"index", "label", "prob"}, ...]}]``.

    ``image`` is the path as given; probabilities are the softmax of the model's logits.
    Missing files are reported before any work; a file that does not decode fails with its
    name when its batch is read.
    """
    if topk < 1:
        raise CnnkitError(f"topk must be at least 1, got {topk}.")
    if not paths:
        raise CnnkitError("no images given. Pass at least one image file.")
    for p in paths:
        if not Path(p).is_file():
            open_image(p)  # raises the clear error for a missing path or a directory
    model = model.to(device).eval()
    k = min(topk, len(class_names))
    results = []
    with torch.inference_mode():
        for start in range(0, len(paths), batch_size):
            chunk = list(paths[start : start + batch_size])
            logits = model(preprocess(chunk).to(device))
            if logits.shape[1] != len(class_names):
                raise CnnkitError(
                    f"the model has {logits.shape[1]} outputs but {len(class_names)} class names were given; "
                    "pass the class names file the weights were trained with."
                )
            probs, indices = logits.float().softmax(dim=1).topk(k, dim=1)
            for path, prob_row, index_row in zip(chunk, probs.tolist(), indices.tolist(), strict=True):
                top = [
                    {"index": i, "label": class_names[i], "prob": p}
                    for i, p in zip(index_row, prob_row, strict=True)
                ]
                results.append({"image": str(path), "topk": top})
    return results


def load_predictor(
    model: str = "efficientnet_lite0",
    weights: str | Path | None = None,
    classes: str | Path | Sequence[str] | None = None,
    preprocessing: Preprocessing | None = None,
    **model_kwargs: Any,
) -> tuple[nn.Module, list[str], Preprocessing]:
    """A zoo model with weights, its class names and its preprocessing.

    Without ``weights`` the model must ship pretrained weights (``efficientnet_lite0``);
    with ``weights=PATH`` any image architecture loads a state_dict (strict keys). Class
    names come from ``classes`` (a file, or a list), else ImageNet's for 1000 outputs,
    else ``class_0``, ``class_1``, ... Preprocessing: ``preprocessing`` if given, else the
    one the model's shipped weights need (:data:`MODEL_PREPROCESSING`), else a resize to the
    model's default input size with ImageNet mean/std (their average for 1-channel models).
    """
    from cnnkit.imagenet import imagenet_classes
    from cnnkit.models.registry import create_model, list_models, model_info
    from cnnkit.models.weights import load_weights, read_state_dict

    if model not in list_models() and Path(model).exists():
        return load_run(model)
    info = model_info(model)
    if info.kind != "image":
        raise CnnkitError(f"{model} classifies {info.kind}, not images; choose an image model.")
    names = (
        read_class_names(classes)
        if isinstance(classes, (str, Path))
        else (list(classes) if classes else None)
    )
    if weights is None:
        if "pretrained" not in inspect.signature(info.builder).parameters:
            raise CnnkitError(
                f"{model} has no pretrained weights; pass --weights PATH (a state_dict of {model}) and "
                "--classes FILE, or use efficientnet_lite0."
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
    if names is None:
        names = imagenet_classes() if outputs == 1000 else [f"class_{i}" for i in range(outputs)]
    if len(names) != outputs:
        raise CnnkitError(
            f"{len(names)} class names for a model with {outputs} outputs; pass the matching file."
        )
    if preprocessing is None:
        channels, h, w = net.default_input_size
        preprocessing = Preprocessing(size=(h, w), channels=channels)
        if channels == 1:
            preprocessing = Preprocessing(size=(h, w), channels=1, mean=(0.449,), std=(0.226,))
        preprocessing = MODEL_PREPROCESSING.get(model, preprocessing)
    return net, names, preprocessing


def load_run(
    run_dir: str | Path,
) -> tuple[nn.Module, list[str], Callable[[Sequence[str | Path]], torch.Tensor]]:
    """A ``cnnkit train`` run directory -> its best model, class names and preprocessing.

    The preprocessing is exactly the evaluation path of training (same size, resize mode,
    channels and the mean/std measured on the training split), read from
    ``normalization.json``; the weights come from ``best.ckpt`` (else ``last.ckpt``),
    loaded with ``weights_only=True``.
    """
    import json

    from cnnkit.data import preprocess_images
    from cnnkit.models.registry import create_model
    from cnnkit.models.weights import load_weights, read_state_dict

    run = Path(run_dir)
    files = {name: run / name for name in ("config.json", "classes.json", "normalization.json")}
    missing = [name for name, f in files.items() if not f.is_file()]
    if not run.is_dir() or missing:
        raise CnnkitError(
            f"{run} is not a cnnkit run directory (missing {', '.join(missing) or 'the folder'}); "
            "pass a folder written by 'cnnkit train' or a zoo model name."
        )
    config = json.loads(files["config.json"].read_text())
    classes = json.loads(files["classes.json"].read_text())
    norm = json.loads(files["normalization.json"].read_text())
    checkpoint = run / "best.ckpt" if (run / "best.ckpt").is_file() else run / "last.ckpt"
    input_size = tuple(norm["input_size"])
    net = create_model(
        config["model"], num_classes=len(classes), input_size=input_size, **config.get("model_options", {})
    )
    load_weights(net, read_state_dict(checkpoint))

    def preprocess(paths: Sequence[str | Path]) -> torch.Tensor:
        return preprocess_images(
            list(paths), input_size, norm["mean"], norm["std"], norm.get("resize", "stretch")
        )

    return net, list(classes), preprocess


def predict_images(
    paths: Sequence[str | Path] | str | Path,
    model: str = "efficientnet_lite0",
    topk: int = 5,
    weights: str | Path | None = None,
    classes: str | Path | Sequence[str] | None = None,
    preprocessing: Preprocessing | None = None,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    **model_kwargs: Any,
) -> list[dict[str, Any]]:
    """Top-k labels and probabilities for image files; see :func:`predict_with_model` for the format.

    >>> predict_images(["cat.jpg"])[0]["topk"][0]["label"]  # doctest: +SKIP
    'tabby'

    ``model_kwargs`` go to the model builder (e.g. ``tf_padding=False`` for efficientnet_lite0).
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    net, names, preprocess = load_predictor(model, weights, classes, preprocessing, **model_kwargs)
    # (a run directory passed as ``model`` brings its own preprocessing)
    return predict_with_model(net, names, preprocess, list(paths), topk, batch_size, device)
