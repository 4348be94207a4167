"""Face detectors on real photos: hit rate on faces, false-positive rate on non-faces.

Detectors: OpenCV's Haar cascades (``frontalface_alt`` - the seed's, ``alt2`` and
``default``; OpenCV's defaults scaleFactor 1.1, minNeighbors 3) and cnnkit's MTCNN with the
real weights, at several O-Net score thresholds. Which one is ``cnnkit dogapp``'s default
follows from this table.

Photos (all offline, all real):

* faces: scikit-image ``lfw_subset`` (100 25x25 LFW face patches, upscaled to 100x100 and
  framed by a 25 px edge border), ``astronaut``, matplotlib's ``grace_hopper``, the
  ``camera`` man (three-quarter view);
* non-faces: the 100 ``lfw_subset`` non-face patches (same treatment), 12 scikit-image /
  scikit-learn sample photos (chelsea the cat, coffee, rocket, ...), and the first
  ``--per-class`` CIFAR-10 test images of each animal class (bird, cat, deer, dog, frog,
  horse) upscaled to 224x224.

A face photo is a hit when the detector returns at least one box; for the three portraits
the box must also overlap the face (its centre inside the largest detection). A non-face
photo is a false positive when any box comes back.

    python bench/bench_faces.py                  # about 1-2 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import time

import torch

from cnnkit.apps.faces import HaarDetector, MtcnnDetector
from cnnkit.apps.photos import CIFAR10_ANIMALS, SAMPLE_PHOTOS, cifar10_photos, lfw_patches, sample_photo

# Where the face is in each portrait (x, y) - its centre, read off the photos.
PORTRAIT_CENTRES = {"astronaut": (222, 115), "grace_hopper": (260, 230), "camera": (225, 155)}


def photos(per_class: int) -> tuple[dict[str, list], dict[str, list]]:
    faces, non_faces = lfw_patches(size=100, pad=25)
    positives = {"lfw faces": [(im, None) for im in faces]}
    positives["portraits"] = [(sample_photo(n), PORTRAIT_CENTRES[n]) for n in PORTRAIT_CENTRES]
    negatives = {"lfw non-faces": non_faces}
    negatives["sample photos"] = [sample_photo(n) for n, label in SAMPLE_PHOTOS.items() if label == "neither"]
    for name in CIFAR10_ANIMALS:
        negatives[f"cifar {name}"] = [im for im, _ in cifar10_photos((name,), per_class)]
    return positives, negatives


def hit(faces: list, centre: tuple[int, int] | None) -> bool:
    if centre is None:
        return bool(faces)
    return any(f.x <= centre[0] <= f.x + f.w and f.y <= centre[1] <= f.y + f.h for f in faces)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=50, help="CIFAR-10 test images per animal class")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    positives, negatives = photos(args.per_class)
    detectors = {
        "haar alt (seed)": HaarDetector("haarcascade_frontalface_alt.xml"),
        "haar alt2": HaarDetector("haarcascade_frontalface_alt2.xml"),
        "haar default": HaarDetector("haarcascade_frontalface_default.xml"),
    }
    mtcnn = MtcnnDetector(min_score=0.0)
    scores = (0.7, 0.9, 0.95, 0.99)
    groups = list(positives) + list(negatives)
    print(
        f"{'detector':<18}"
        + "".join(f"{g:>15}" for g in groups)
        + f"{'hit rate':>10}{'FP rate':>9}{'s/img':>7}"
    )

    def row(name: str, found: dict[str, list[bool]], seconds: float) -> None:
        pos = [x for g in positives for x in found[g]]
        neg = [x for g in negatives for x in found[g]]
        cells = "".join(f"{sum(found[g]):>11}/{len(found[g]):<3}" for g in groups)
        n = len(pos) + len(neg)
        print(f"{name:<18}{cells}{sum(pos) / len(pos):>10.1%}{sum(neg) / len(neg):>9.1%}{seconds / n:>7.3f}")

    for name, det in detectors.items():
        start = time.perf_counter()
        found = {g: [hit(det(im), c) for im, c in positives[g]] for g in positives}
        found.update({g: [bool(det(im)) for im in negatives[g]] for g in negatives})
        row(name, found, time.perf_counter() - start)
    start = time.perf_counter()
    raw = {g: [(mtcnn(im), c) for im, c in positives[g]] for g in positives}
    raw.update({g: [(mtcnn(im), None) for im in negatives[g]] for g in negatives})
    seconds = time.perf_counter() - start
    for s in scores:
        found = {}
        for g, items in raw.items():
            kept = [([f for f in faces if f.score >= s], c) for faces, c in items]
            found[g] = [hit(f, c) if g in positives else bool(f) for f, c in kept]
        row(f"mtcnn >= {s}", found, seconds)
    print("hit: a face photo with a box (on the face, for the portraits); FP: a non-face photo with any box.")


if __name__ == "__main__":
    main()
