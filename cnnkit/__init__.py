"""cnnkit: classic CNNs for image classification, real, fast and understandable.

>>> import cnnkit
>>> model = cnnkit.create_model("resnet18", num_classes=10)
>>> print(cnnkit.summary(model, (3, 224, 224)))

The names below the models and the summary are loaded on first use, so ``import cnnkit``
stays cheap (no Lightning, no OpenCV) until a name that needs them is touched.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_getattr(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) for ``package``: ``exports`` maps a name to the
    module that defines it, imported on first access and then cached in the package.
    Defined before the imports below, so subpackages (``cnnkit.evaluate``) can use it."""
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> Any:
        if name in exports:
            namespace[name] = value = getattr(import_module(exports[name]), name)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


from cnnkit.errors import CnnkitError  # noqa: E402
from cnnkit.models import create_model, get_weights, list_models, model_info, models_with_weights  # noqa: E402
from cnnkit.summary import summary  # noqa: E402
from cnnkit.train import fit  # noqa: E402  (cheap: Lightning is imported only when training starts)

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

__getattr__ = lazy_getattr(__name__, _LAZY)


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
