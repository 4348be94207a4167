"""Real labelled photos available offline, for the dog app's tests and benchmarks.

Nothing here downloads: the photos ship inside installed packages (scikit-image,
matplotlib, scikit-learn) or sit in the shared CIFAR-10 folder
(``cnnkit.shared.shared_path("datasets", "cifar-10-batches-py")``).

Labels are what each photo shows: ``"human"`` (a frontal human face), ``"dog"``,
``"neither"`` (cats, other animals, objects, scenes).
"""

from __future__ import annotations

import pickle
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from cnnkit.errors import CnnkitError
from cnnkit.shared import shared_path

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_ANIMALS = ("bird", "cat", "deer", "dog", "frog", "horse")

# name -> (where it comes from, label). "camera" is the cameraman (a face in three-quarter view).
SAMPLE_PHOTOS: dict[str, str] = {
    "astronaut": "human",
    "grace_hopper": "human",
    "camera": "human",
    "chelsea": "neither",
    "coffee": "neither",
    "rocket": "neither",
    "motorcycle_left": "neither",
    "hubble_deep_field": "neither",
    "coins": "neither",
    "brick": "neither",
    "grass": "neither",
    "gravel": "neither",
    "retina": "neither",
    "china": "neither",
    "flower": "neither",
}


def sample_photo_path(name: str) -> Path:
    """The file of one of :data:`SAMPLE_PHOTOS` inside its package."""
    if name not in SAMPLE_PHOTOS:
        raise CnnkitError(f"unknown sample photo {name!r}; choose one of {', '.join(SAMPLE_PHOTOS)}.")
    if name == "grace_hopper":
        import matplotlib.cbook

        return Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    if name in ("china", "flower"):
        import sklearn.datasets

        return Path(sklearn.datasets.__file__).parent / "images" / f"{name}.jpg"
    import skimage

    folder = Path(skimage.__file__).parent / "data"
    return next(p for p in (folder / f"{name}.png", folder / f"{name}.jpg") if p.is_file())


def sample_photo(name: str) -> Image.Image:
    """One of :data:`SAMPLE_PHOTOS` as an RGB PIL image."""
    with Image.open(sample_photo_path(name)) as image:
        return image.convert("RGB")


def lfw_patches(size: int = 100, pad: int = 0) -> tuple[list[Image.Image], list[Image.Image]]:
    """scikit-image's ``lfw_subset``: 100 face and 100 non-face 25x25 grey patches, upscaled.

    Each patch is resized to ``size`` (bicubic) and, with ``pad`` > 0, framed by a border of
    its own edge pixels so the whole face (not just its inside) is in view. Returns
    (faces, non_faces) as RGB images.
    """
    import skimage.data

    patches = skimage.data.lfw_subset()  # (200, 25, 25) float in [0, 1]; first 100 are faces
    images = []
    for patch in patches:
        image = Image.fromarray((patch * 255).round().astype(np.uint8)).resize((size, size), Image.BICUBIC)
        array = np.asarray(image)
        if pad:
            array = np.pad(array, pad, mode="edge")
        images.append(Image.fromarray(array).convert("RGB"))
    return images[:100], images[100:]


@lru_cache(maxsize=2)
def _cifar_batch(split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    folder = shared_path("datasets", "cifar-10-batches-py")
    path = folder / ("test_batch" if split == "test" else "data_batch_1")
    if not path.is_file():
        raise CnnkitError(f"CIFAR-10 is not at {folder}; set CNNKIT_SHARED to the shared folder.")
    with open(path, "rb") as fh:
        batch = pickle.load(fh, encoding="bytes")
    images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, np.asarray(batch[b"labels"]), [n.decode() for n in batch[b"filenames"]]


def cifar10_photos(
    classes: tuple[str, ...], per_class: int, split: str = "test", size: int = 224, offset: int = 0
) -> list[tuple[Image.Image, str]]:
    """The first ``per_class`` (after ``offset``) images of each class, upscaled bicubically.

    ``split="test"`` is CIFAR-10's test batch; ``"train"`` its first training batch. Returns
    (image, class name) pairs, class by class.
    """
    images, labels, _ = _cifar_batch(split)
    out = []
    for name in classes:
        index = np.flatnonzero(labels == CIFAR10_CLASSES.index(name))[offset : offset + per_class]
        out.extend((Image.fromarray(images[i]).resize((size, size), Image.BICUBIC), name) for i in index)
    return out


# CIFAR-10's dog images keep the Tiny Images search term in their file names; these
# terms name an ImageNet-1k breed (noisy labels: the search engine's, not an expert's).
CIFAR_BREED_TERMS = {
    "chihuahua": "Chihuahua",
    "japanese_spaniel": "Japanese spaniel",
    "maltese": "Maltese dog",
    "maltese_dog": "Maltese dog",
    "pekinese": "Pekinese",
    "pekingese": "Pekinese",
    "peke": "Pekinese",
    "blenheim_spaniel": "Blenheim spaniel",
}


def cifar10_dog_breeds(split: str = "test", size: int = 224, skip: int = 0) -> list[tuple[Image.Image, str]]:
    """CIFAR-10 dogs whose file name names an ImageNet breed: (upscaled image, breed).

    ``skip`` leaves out the first ``skip`` dog images of the split (those that chose the
    dog threshold).
    """
    images, labels, names = _cifar_batch(split)
    dogs = np.flatnonzero(labels == CIFAR10_CLASSES.index("dog"))[skip:]
    out = []
    for i in dogs:
        term = re.sub(r"_s_\d+\.png$", "", names[i])
        if term in CIFAR_BREED_TERMS:
            out.append(
                (Image.fromarray(images[i]).resize((size, size), Image.BICUBIC), CIFAR_BREED_TERMS[term])
            )
    return out
