"""cnnkit: classic CNNs for image classification, real, fast and understandable.

>>> import cnnkit
>>> model = cnnkit.create_model("resnet18", num_classes=10)
>>> print(cnnkit.summary(model, (3, 224, 224)))

The names below the models and the summary are loaded on first use, so ``import cnnkit``
stays cheap (no Lightning, no OpenCV) until a name that needs them is touched.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from cnnkit.errors import CnnkitError
from cnnkit.models import create_model, get_weights, list_models, model_info, models_with_weights
from cnnkit.summary import summary
from cnnkit.train import fit  # cheap: Lightning is imported only when training starts

__version__ = "0.1.0"

# name -> module that defines it, imported on first access (PEP 562).
_LAZY = {
    "predict_images": "cnnkit.predict",
    "Preprocess": "cnnkit.preprocess",
    "Run": "cnnkit.runs",
    "extract_features": "cnnkit.features",
    "fit_head": "cnnkit.features",
    "Features": "cnnkit.features",
    "evaluate_run": "cnnkit.evaluate",
    "diagnose": "cnnkit.evaluate",
    "find_leaks": "cnnkit.evaluate",
    "DogApp": "cnnkit.apps",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cnnkit' has no attribute {name!r}")


__all__ = [
    "CnnkitError",
    "create_model",
    "fit",
    "get_weights",
    "list_models",
    "model_info",
    "models_with_weights",
    "summary",
    "__version__",
    *_LAZY,
]
