"""The base class of every zoo model and the interface the rest of cnnkit relies on.

``forward_features`` (the convolutional trunk, unpooled), ``forward_head`` (pooling +
classifier), ``get_classifier`` / ``reset_classifier`` so transfer learning can put a new
head on; and the stage metadata that freezing, cutting, discriminative learning rates and
CAM read: ``feature_info`` (timm's convention), ``cam_layer``, ``param_groups()`` and
``forward_intermediate(x, stage)``. Stages are found from the model's own forward pass
(:mod:`cnnkit.models.layers.stages`), so a new family gets them without declaring any.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from cnnkit.errors import CnnkitError
from cnnkit.models.layers.activations import make_act
from cnnkit.models.layers.stages import StageLayout, _Stop, analyse, partition


class ClassifierNet(nn.Module):
    """Base class of every zoo model: ``forward(x) = forward_head(forward_features(x))``.

    Subclasses set ``classifier_path`` to the dotted name of their last (classifying)
    layer, e.g. ``"fc"`` for ResNet or ``"classifier.6"`` for VGG, as torchvision names
    them, and ``head_path`` to the modules that run, in order, between the trunk and that
    layer (pooling, flatten, hidden dense layers, dropout). Most nets then need no
    ``forward_head`` of their own, and none a ``forward_features`` when the trunk is one
    ``features`` module (torchvision's layout). A subclass may set ``default_cam_layer``
    when the last stage is not the best CAM target.
    """

    classifier_path: str = "fc"
    head_path: tuple[str, ...] = ()
    default_cam_layer: str | None = None
    num_classes: int
    num_features: int  # width of the representation that enters the classifier

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The convolutional trunk, unpooled: the ``features`` module unless overridden."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """The ``head_path`` modules in order, then the classifier (not with ``pre_logits``)."""
        for name in self.head_path:
            x = self.get_submodule(name)(x)
        return x if pre_logits else self.get_classifier()(x)

    def forward(self, x: torch.Tensor) -> Any:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        """The final classifying layer (a Linear, or a 1x1 Conv for all-conv nets)."""
        return self.get_submodule(self.classifier_path)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final layer with a freshly initialised one for ``num_classes``."""
        old = self.get_classifier()
        if isinstance(old, nn.Linear):
            new: nn.Module = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
        elif isinstance(old, nn.Conv2d):
            new = nn.Conv2d(
                old.in_channels,
                num_classes,
                old.kernel_size,
                old.stride,
                old.padding,
                bias=old.bias is not None,
            )
        else:
            raise TypeError(f"cannot reset a classifier of type {type(old).__name__}")
        parent_name, _, child = self.classifier_path.rpartition(".")
        parent = self.get_submodule(parent_name) if parent_name else self
        setattr(parent, child, new)
        self.num_classes = num_classes

    # --- stage metadata -------------------------------------------------------------

    def _input_size(self) -> tuple[int, ...]:
        size = getattr(self, "default_input_size", None)
        if size is None:  # built without create_model: the stem's channels at 224x224
            conv = next((m for m in self.modules() if isinstance(m, nn.Conv2d)), None)
            size = (conv.in_channels if conv else 3, 224, 224)
        return tuple(size)

    def _layout(self) -> StageLayout:
        size = self._input_size()
        cached = self.__dict__.get("_stage_layout")
        if cached is None or cached[0] != size:
            layout = analyse(self, size) if len(size) == 3 else StageLayout((), ())
            self.__dict__["_stage_layout"] = cached = (size, layout)
        return cached[1]

    @property
    def feature_info(self) -> list[dict[str, Any]]:
        """Stages from input to output: ``{"name", "module", "num_chs", "reduction"}`` each."""
        return [dict(row) for row in self._layout().feature_info]

    def stage_names(self) -> list[str]:
        return [row["name"] for row in self._layout().feature_info]

    @property
    def cam_layer(self) -> str | None:
        """Dotted name of the default CAM / Grad-CAM target: the last conv stage."""
        if self.default_cam_layer:
            return self.default_cam_layer
        info = self._layout().feature_info
        return info[-1]["module"] if info else None

    def param_groups(self) -> list[tuple[str, list[nn.Parameter]]]:
        """``(stage name, parameters)`` from input to head (the last group is ``"head"``).

        Every parameter appears exactly once; a stage without parameters (a pool) has an
        empty list. Freezing the first K stages is ``param_groups()[:K]``.
        """
        layout = self._layout()
        if not layout.groups:
            return [("head", list(self.parameters()))]
        return partition(self, layout.groups)

    def stage_module(self, stage: str) -> str:
        """The dotted module name of ``stage``; a clear error listing the valid names."""
        for row in self._layout().feature_info:
            if row["name"] == stage:
                return row["module"]
        names = ", ".join(self.stage_names()) or "none (this model has no convolutional stages)"
        model = getattr(self, "model_name", type(self).__name__)
        raise CnnkitError(f"{model} has no stage {stage!r}; its stages are: {names}.")

    def forward_intermediate(self, x: torch.Tensor, stage: str) -> torch.Tensor:
        """The feature map output by ``stage``; the rest of the network is not run."""
        module = self.get_submodule(self.stage_module(stage))

        def stop(mod: nn.Module, inputs: Any, output: Any) -> None:
            raise _Stop(output)

        handle = module.register_forward_hook(stop)
        try:
            self.forward_features(x)
        except _Stop as done:
            return done.output
        finally:
            handle.remove()
        raise CnnkitError(f"stage {stage!r} did not run in forward_features; the model was changed.")

    def summary(self, input_size: tuple[int, ...] | None = None, **kwargs: Any) -> Any:
        """Keras-style table of layers, output shapes, parameters and MACs (printable)."""
        from cnnkit.summary import summary

        return summary(self, input_size, **kwargs)


class SizedNet(ClassifierNet):
    """A net whose dense head is sized by its input (a flatten head, as Keras builds one), so
    it is built for one input: ``in_chans`` x ``input_size`` (H, W), kept as attributes. That
    is the size the model is registered with, unless ``create_model(..., input_size=...)``
    asks for another.

    The arguments every such net takes are handled here once; a subclass implements
    :meth:`build`, whose keyword arguments are the architecture's options (``act``,
    ``drop_rate``, ...), as a Keras layer is built once its input shape is known.
    """

    def __init__(self, num_classes: int, in_chans: int, input_size: tuple[int, int], **options: Any) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.build(**options)

    def build(self, **options: Any) -> None:
        """Add the layers for ``self.in_chans`` x ``self.input_size`` inputs; set ``num_features``."""
        raise NotImplementedError


def check_min_size(name: str, input_size: tuple[int, int], minimum: int, hint: str = "") -> None:
    """One clear line, at build time, when ``input_size`` (H, W) is below ``minimum`` pixels:
    the nets whose dense head is sized by the input would otherwise fail in a shape error."""
    if min(input_size) < minimum:
        raise CnnkitError(
            f"{name} needs at least {minimum}x{minimum} input, got {input_size[0]}x{input_size[1]}{hint}."
        )


# torchvision's ``classifier`` before its last Linear (fc6 and fc7 with their activations
# and dropouts): the ``head_path`` of AlexNet, VGG and the MSRA PReLU nets.
FC6_FC7 = tuple(f"classifier.{i}" for i in range(6))


def dense_head(
    in_features: int, num_classes: int, act: str, drop_rate: float, drop_first: bool = False
) -> nn.Sequential:
    """fc6-fc7-fc8 in torchvision's order: (Linear 4096, act, Dropout) x 2, Linear classes
    (VGG, PReLU nets); ``drop_first`` puts each Dropout before its Linear (AlexNet)."""
    layers: list[nn.Module] = []
    for width in (in_features, 4096):
        unit = [nn.Linear(width, 4096), make_act(act, 4096)]
        layers += [nn.Dropout(drop_rate), *unit] if drop_first else [*unit, nn.Dropout(drop_rate)]
    return nn.Sequential(*layers, nn.Linear(4096, num_classes))
