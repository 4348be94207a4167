"""Is there a dog, and which breed: ImageNet probability mass on the 118 dog classes.

The seed's app called a photo a dog when the top-1 ImageNet class was a dog breed
(indices 151-268). That misses a dog of a breed ImageNet lacks (its mass spreads over
several breeds, and a wolf or a dingo can win top-1). Here the *sum* of the softmax over
the dog classes is the dog score: wolves (269-272), foxes (277-280), cats (281-285) and
every other animal sit outside 151-268, so their mass does not count.

The threshold is chosen on real data, per backbone set (:data:`DOG_THRESHOLDS`): the
first 100 CIFAR-10 *test* images of dog, cat, bird, deer, frog and horse, upscaled
32 -> 224; of the thresholds 0.05, 0.10, ..., 0.95 the one with the best balanced accuracy
of dog vs non-dog (``bench/bench_dogapp.py`` prints the sweep). The default pair
efficientnet_lite0 + mobilenet_v2: 0.45 (85.4%: dog recall 80%, cats called dogs 14%,
other animals 8%); efficientnet_lite0 alone: 0.30 (84.9%: 85%, 26%, 12.5%); the seed's
top-1 rule on the same photos: 83.6% (79%, 22%, 9%). Photos that small are hard; a real
cat photo (scikit-image's chelsea) scores 0.002.

Breeds are the dog-class probabilities renormalised to sum to one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from cnnkit.errors import CnnkitError
from cnnkit.preprocess import Preprocess

DOG_CLASSES = range(151, 269)  # Chihuahua .. Mexican hairless
ANIMAL_CLASSES = range(0, 398)  # tench .. puffer: every ImageNet-1k animal
ALL_BACKBONES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "mobilenet_v2")
DEFAULT_BACKBONES = ("efficientnet_lite0", "mobilenet_v2")
# Dog-score threshold per backbone set, each chosen as described above (bench/bench_dogapp.py).
DOG_THRESHOLDS = {
    ("efficientnet_lite0",): 0.30,
    DEFAULT_BACKBONES: 0.45,
    ALL_BACKBONES: 0.40,  # chosen on the first 50 per class (bench_dogapp.py --compare-backbones)
}
DOG_THRESHOLD = DOG_THRESHOLDS[DEFAULT_BACKBONES]


def dog_threshold(backbones: Sequence[str]) -> float:
    """The chosen threshold of a backbone set; 0.40 (the middle of the chosen ones) for others."""
    return DOG_THRESHOLDS.get(tuple(backbones), 0.40)


def backbone_preprocess(name: str) -> Preprocess:
    """The preprocessing a backbone's ImageNet weights were evaluated with (its weights record):
    EfficientNet-Lite: bicubic stretch, TensorFlow's (x - 127) / 128; MobileNetV2: torchvision's
    resize 256 / centre-crop 224, ImageNet mean/std."""
    from cnnkit.models import get_weights

    return get_weights(name).preprocess


def apply_preprocess(pre: Preprocess, images: Sequence[Image.Image]) -> torch.Tensor:
    """(N, C, H, W) input of ``images`` through ``pre`` (``cnnkit.preprocess.Preprocess``)."""
    return pre(list(images))


def top_breeds(probs: torch.Tensor, k: int = 3) -> list[dict[str, Any]]:
    """Top-k dog breeds of one image's 1000 probabilities, renormalised over the dog classes."""
    from cnnkit.imagenet import imagenet_classes

    dogs = probs[DOG_CLASSES.start : DOG_CLASSES.stop]
    dogs = dogs / dogs.sum().clamp_min(1e-12)
    values, index = dogs.topk(min(k, len(dogs)))
    names = imagenet_classes()
    return [
        {"label": names[DOG_CLASSES.start + i], "prob": round(float(p), 4)}
        for p, i in zip(values.tolist(), index.tolist(), strict=True)
    ]


def dog_views(photo: Image.Image, overlap: float = 0.6) -> list[tuple[int, int, int, int]]:
    """Boxes (left, top, right, bottom) of the two overlapping halves of a photo along its
    long side (each ``overlap`` of it).

    A classifier trained on one-object ImageNet photos dilutes a dog's mass when a person
    fills half the frame; the half that holds the dog scores it like a photo of its own.
    """
    w, h = photo.size
    if w >= h:
        cut = round(w * overlap)
        return [(0, 0, cut, h), (w - cut, 0, w, h)]
    cut = round(h * overlap)
    return [(0, 0, w, cut), (0, h - cut, w, h)]


class DogScorer:
    """ImageNet-1k probabilities of photos, averaged over one or more backbones.

    ``DogScorer(("efficientnet_lite0",))(images) -> (N, 1000)``; :meth:`dog_mass`,
    :meth:`animal_mass` and :meth:`breeds` read what the app needs from them.
    """

    def __init__(self, backbones: Sequence[str] = DEFAULT_BACKBONES, batch_size: int = 16) -> None:
        from cnnkit.imagenet import imagenet_classes
        from cnnkit.models.registry import create_model

        if not backbones:
            raise CnnkitError("no backbone given; name at least one ImageNet model, e.g. efficientnet_lite0.")
        self.names = list(backbones)
        self.models = []
        for name in self.names:
            model = create_model(name, pretrained=True).eval()
            if getattr(model, "num_classes", 1000) != 1000:
                raise CnnkitError(f"backbone {name} does not have the 1000 ImageNet outputs.")
            self.models.append((model, backbone_preprocess(name)))
        self.classes = imagenet_classes()
        self.batch_size = batch_size

    @torch.inference_mode()
    def __call__(self, images: Sequence[Image.Image]) -> torch.Tensor:
        total = torch.zeros(len(images), 1000)
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            for model, pre in self.models:
                total[start : start + len(chunk)] += (
                    model(apply_preprocess(pre, chunk)).float().softmax(dim=1)
                )
        return total / len(self.models)

    @staticmethod
    def dog_mass(probs: torch.Tensor) -> torch.Tensor:
        return probs[..., DOG_CLASSES.start : DOG_CLASSES.stop].sum(dim=-1)

    @staticmethod
    def animal_mass(probs: torch.Tensor) -> torch.Tensor:
        return probs[..., ANIMAL_CLASSES.start : ANIMAL_CLASSES.stop].sum(dim=-1)

    def breeds(self, probs: torch.Tensor, k: int = 3) -> list[dict[str, Any]]:
        return top_breeds(probs, k)

    def top_class(self, probs: torch.Tensor) -> dict[str, Any]:
        """The top-1 ImageNet class of one image (the seed's rule looks only at this)."""
        p, i = probs.max(dim=-1)
        return {"index": int(i), "label": self.classes[int(i)], "prob": round(float(p), 4)}
