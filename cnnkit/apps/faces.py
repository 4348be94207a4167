"""Human face detectors behind one interface: ``detector(image) -> list[Face]``.

* ``"haar"`` - OpenCV's Viola-Jones cascade (Viola & Jones, "Rapid Object Detection using
  a Boosted Cascade of Simple Features", CVPR 2001), ``haarcascade_frontalface_alt.xml``
  as in the seed's dog-breed app (the best of OpenCV's three frontal cascades in
  bench/bench_faces.py). Fast, frontal faces only, and it fires on textures (fur). Its ``score`` is the number of overlapping raw detections that were
  merged into the box (OpenCV's ``numDetections``), not a probability.
* ``"mtcnn"`` - the three-stage CNN cascade of :mod:`cnnkit.apps.mtcnn` (Zhang et al.
  2016) with its real weights; ``score`` is O-Net's face probability.

OpenCV is imported only when the Haar detector is built, so cnnkit works without it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
from PIL import Image

from cnnkit.errors import CnnkitError

FACE_DETECTORS = ("haar", "mtcnn")
OPENCV_HINT = 'pip install "opencv-python-headless<5"'


@dataclass(frozen=True)
class Face:
    """A face box in pixels of the original image: top-left (x, y), width, height, score."""

    x: int
    y: int
    w: int
    h: int
    score: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def crop_box(self, margin: float, width: int, height: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) grown by ``margin`` of the box size, clipped to the image."""
        dx, dy = int(round(self.w * margin)), int(round(self.h * margin))
        return (
            max(0, self.x - dx),
            max(0, self.y - dy),
            min(width, self.x + self.w + dx),
            min(height, self.y + self.h + dy),
        )


class FaceDetector(Protocol):
    name: str

    def __call__(self, image: Image.Image) -> list[Face]: ...


def _cv2() -> Any:
    try:
        import cv2
    except ImportError:
        raise CnnkitError(
            f"the Haar face detector needs OpenCV; {OPENCV_HINT} (or use --face-detector mtcnn)."
        ) from None
    return cv2


class HaarDetector:
    """OpenCV's frontal-face Haar cascade on the grey image (the seed's detector).

    ``min_neighbors`` is how many raw detections must overlap to keep a box (OpenCV's
    default 3, as the seed); ``min_size`` the smallest face in pixels; ``equalize``
    equalises the grey histogram first (the seed does not).
    """

    name = "haar"

    def __init__(
        self,
        cascade: str = "haarcascade_frontalface_alt.xml",
        scale_factor: float = 1.1,
        min_neighbors: int = 3,
        min_size: int = 20,
        equalize: bool = False,
    ) -> None:
        cv2 = _cv2()
        path = cv2.data.haarcascades + cascade
        self.classifier = cv2.CascadeClassifier(path)
        if self.classifier.empty():
            raise CnnkitError(f"OpenCV has no Haar cascade {path}; OpenCV 5 dropped them: {OPENCV_HINT}.")
        self.scale_factor, self.min_neighbors, self.min_size = scale_factor, min_neighbors, min_size
        self.equalize = equalize

    def __call__(self, image: Image.Image) -> list[Face]:
        cv2 = _cv2()
        grey = np.asarray(image.convert("L"))
        if self.equalize:
            grey = cv2.equalizeHist(grey)
        boxes, counts = self.classifier.detectMultiScale2(
            grey,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size),
        )
        faces = [
            Face(int(x), int(y), int(w), int(h), float(n))
            for (x, y, w, h), n in zip(boxes, np.ravel(counts), strict=True)
        ]
        return sorted(faces, key=lambda f: -f.w * f.h)


class MtcnnDetector:
    """MTCNN (P-Net, R-Net, O-Net) keeping faces whose O-Net probability is >= ``min_score``.

    ``min_score=0.95`` was chosen on real photos (bench/bench_faces.py): the same hit rate
    as 0.9 and 0.7 with fewer false positives (the cascade's own 0.7 passes boxes on
    clothing and fur); 0.99 starts missing faces.
    """

    name = "mtcnn"

    def __init__(self, min_score: float = 0.95, min_face_size: float = 20.0) -> None:
        from cnnkit.apps.mtcnn import MTCNN

        self.mtcnn = MTCNN(min_face_size=min_face_size)
        self.min_score = min_score

    def __call__(self, image: Image.Image) -> list[Face]:
        boxes, _ = self.mtcnn(image.convert("RGB"))
        width, height = image.size
        faces = []
        for x1, y1, x2, y2, score in boxes.tolist():
            if score < self.min_score:
                continue
            left, top = max(0, int(round(x1))), max(0, int(round(y1)))
            right, bottom = min(width, int(round(x2)) + 1), min(height, int(round(y2)) + 1)
            if right > left and bottom > top:
                faces.append(Face(left, top, right - left, bottom - top, round(float(score), 4)))
        return sorted(faces, key=lambda f: -f.w * f.h)


def make_face_detector(name: str = "mtcnn", **kwargs: Any) -> HaarDetector | MtcnnDetector:
    """``"haar"`` or ``"mtcnn"`` -> a detector; options go to its constructor."""
    if name == "haar":
        return HaarDetector(**kwargs)
    if name == "mtcnn":
        return MtcnnDetector(**kwargs)
    raise CnnkitError(f"unknown face detector {name!r}; choose one of {', '.join(FACE_DETECTORS)}.")
