"""Applications built on cnnkit: the dog-breed app (``cnnkit dogapp``).

>>> from cnnkit.apps import DogApp
>>> DogApp()("photo.jpg")["message"]  # doctest: +SKIP
'dog: Labrador retriever (81%), golden retriever (9%), Chesapeake Bay retriever (3%)'
"""

from cnnkit.apps.dogapp import DogApp, describe
from cnnkit.apps.faces import FACE_DETECTORS, Face, HaarDetector, MtcnnDetector, make_face_detector

__all__ = [
    "FACE_DETECTORS",
    "DogApp",
    "Face",
    "HaarDetector",
    "MtcnnDetector",
    "describe",
    "make_face_detector",
]
