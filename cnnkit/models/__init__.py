"""The model zoo. Importing this package registers every architecture family."""

from importlib import import_module

from cnnkit.models.pretrained import Weights
from cnnkit.models.registry import (
    ModelInfo,
    create_model,
    get_weights,
    list_models,
    model_info,
    models_with_weights,
    register_model,
)

# One module per family; importing it registers its models.
FAMILIES = (
    "lenet",
    "alexnet",
    "vgg",
    "nin",
    "maxout",
    "highway",
    "prelu_net",
    "teaching",
    "small_cnn",
    "resnet",
    "cifar_resnet",
    "inception_v1",
    "bn_inception",
    "inception_v3",
    "inception_v4",
    "inception_resnet",
    "efficientnet_lite",
    "mobilenet",
    "text_cnn",
)

for _family in FAMILIES:
    try:
        import_module(f"cnnkit.models.{_family}")
    except ModuleNotFoundError as _exc:  # a family still being written
        if _exc.name != f"cnnkit.models.{_family}":
            raise

__all__ = [
    "FAMILIES",
    "ModelInfo",
    "Weights",
    "create_model",
    "get_weights",
    "list_models",
    "model_info",
    "models_with_weights",
    "register_model",
]
