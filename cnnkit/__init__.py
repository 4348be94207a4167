"""cnnkit: classic CNNs for image classification, real, fast and understandable.

>>> import cnnkit
>>> model = cnnkit.create_model("resnet18", num_classes=10)
>>> print(cnnkit.summary(model, (3, 224, 224)))
"""

from cnnkit.errors import CnnkitError
from cnnkit.models.registry import create_model, list_models, model_info
from cnnkit.predict import predict_images
from cnnkit.summary import summary
from cnnkit.train import fit  # cheap: Lightning is imported only when training starts

__version__ = "0.1.0"

__all__ = [
    "CnnkitError",
    "create_model",
    "fit",
    "list_models",
    "model_info",
    "predict_images",
    "summary",
    "__version__",
]
