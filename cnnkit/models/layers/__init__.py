"""Building blocks shared by the model families; families import from here, never from
each other.

* :mod:`.classifier` - :class:`ClassifierNet`, the base class (trunk/head split, stage metadata),
  :class:`SizedNet` for nets built for one input size, torchvision's fc6-fc8 (:func:`dense_head`)
* :mod:`.init` - torchvision's weight initialisation
* :mod:`.stages` - finding the stages from a meta-device forward pass
* :mod:`.activations` - ``make_act(name)``
* :mod:`.conv` - :class:`ConvBNAct`, :class:`BasicConv2d`, TF-same-padding :class:`Conv2dSame`
* :mod:`.norm` - AlexNet's :class:`LocalResponseNorm`
* :mod:`.drop` - stochastic depth (:func:`drop_path`)
* :mod:`.residual` - ResNet v1/v2 blocks and base class (ImageNet and CIFAR ResNets)
* :mod:`.inception` - pieces shared by Inception v3 / v4 / Inception-ResNet
"""

from cnnkit.models.layers.activations import activation_names, make_act
from cnnkit.models.layers.classifier import FC6_FC7, ClassifierNet, SizedNet, check_min_size, dense_head
from cnnkit.models.layers.conv import BasicConv2d, Conv2dSame, ConvBNAct
from cnnkit.models.layers.drop import drop_path
from cnnkit.models.layers.norm import LocalResponseNorm

__all__ = [
    "BasicConv2d",
    "ClassifierNet",
    "FC6_FC7",
    "Conv2dSame",
    "ConvBNAct",
    "LocalResponseNorm",
    "SizedNet",
    "activation_names",
    "check_min_size",
    "dense_head",
    "drop_path",
    "make_act",
]
