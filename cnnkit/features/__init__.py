"""Cached bottleneck features: embed a dataset once with a frozen backbone, train heads on it.

    >>> from cnnkit.features import extract_features, fit_head
    >>> feats = extract_features("efficientnet_lite0", "digits")   # (1797, 1280) CNN codes, cached
    >>> result = fit_head(feats, head="linear", epochs=30)          # seconds, no backbone pass
    >>> result.test_acc

``extract_features`` takes a zoo model with weights, a ``cnnkit train`` run directory or an
``nn.Module``, and any data source of ``cnnkit.data``; ``cut=STAGE`` gives pooled features of
an earlier stage; ``views=K`` caches K augmented views. The cache (``cnnkit.features.cache``)
is keyed by model, weights, cut, preprocessing, views and the data's content. ``cnnkit
features MODEL|RUN DATA --out feats.npz`` is the same from the command line.
"""

from cnnkit.features.backbone import Backbone, embedder, load_backbone, stage_names
from cnnkit.features.cache import CACHE_ENV, default_cache_dir
from cnnkit.features.extract import extract_features
from cnnkit.features.head import HEADS, FeatureClassifier, HeadResult, fit_head, make_head
from cnnkit.features.record import Features

__all__ = [
    "CACHE_ENV",
    "HEADS",
    "Backbone",
    "FeatureClassifier",
    "Features",
    "HeadResult",
    "default_cache_dir",
    "embedder",
    "extract_features",
    "fit_head",
    "load_backbone",
    "make_head",
    "stage_names",
]
