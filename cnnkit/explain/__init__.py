"""Seeing what a CNN learned: CAM / Grad-CAM / Grad-CAM++ heat maps (hooks, no grad-cam
package), feature maps of chosen layers and first-layer filters.

    >>> from cnnkit.explain import explain_images
    >>> out = explain_images("efficientnet_lite0", ["cat.jpg"], method="gradcam")  # doctest: +SKIP
    >>> out[0]["label"], out[0]["peak"], out[0]["png"]  # doctest: +SKIP
"""

from cnnkit.explain.cam import METHODS, centre_of_mass, class_activation_map, default_layer, layer_names, peak
from cnnkit.explain.explain import explain_images, load_explainable
from cnnkit.explain.visualize import feature_maps, overlay, save_feature_grid, save_filter_grid

__all__ = [
    "METHODS",
    "centre_of_mass",
    "class_activation_map",
    "default_layer",
    "explain_images",
    "feature_maps",
    "layer_names",
    "load_explainable",
    "overlay",
    "peak",
    "save_feature_grid",
    "save_filter_grid",
]
