"""The dog-breed app: a dog -> its breed; a human -> the breed they resemble; else neither.

``DogApp()(image)`` returns one dict per photo::

    {"image": name, "is_human": bool, "is_dog": bool, "dog_score": float,
     "faces": [{"x", "y", "w", "h", "score"}, ...],   # every human face kept
     "breeds": [{"label", "prob"}, ...],               # top-k, when is_dog
     "resembles": [{"label", "prob"}, ...],            # one per face, when is_human
     "top_class": {"index", "label", "prob"},          # ImageNet top-1 of the whole photo
     "dog_region": {"x", "y", "w", "h"},               # the part of the photo the dog score is from
     "message": "dog: Labrador retriever (81%), ..."}

How the two signals are combined (the seed's Haar detector fires on fur; its reviewer asked
for a better detector and for several subjects per photo):

1. **Faces.** The face detector proposes boxes (MTCNN by default; ``face_detector="haar"``
   for the seed's cascade). Each box is cropped with a margin and scored by the ImageNet
   backbone: a box whose crop puts >= :data:`ANIMAL_FACE_MASS` of its probability on
   ImageNet's animal classes (0-397: dogs, cats, horses, ...) is an animal's face and is
   dropped. A Haar box must also be confirmed by MTCNN on the crop. A person holding a
   dog keeps their face; a cat's face is not a human.
2. **Dog.** The photo's mass on the dog classes (:mod:`cnnkit.apps.dogs`) is at least
   ``dog_threshold``. Independent of the faces: a dog with its owner is a dog *and* a
   human. When a face was kept, the person's body dilutes the dog's share of the whole
   photo, so the two overlapping halves of the photo are scored too and the highest dog
   mass counts (photos without a face are scored whole: halves would raise cats and
   horses as much as dogs).
3. **Breeds.** For a dog, the top-k breeds (ImageNet's, renormalised over the dog classes,
   or the classes of a user's ``--breeds RUN``); for each human face, the breed with the
   highest probability on the face crop. A top breed under :data:`LOW_CONFIDENCE` is
   reported as "not sure: ...".
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from cnnkit.apps.dogs import DEFAULT_BACKBONES, DogScorer, apply_preprocess, dog_views
from cnnkit.apps.dogs import dog_threshold as backbone_threshold
from cnnkit.apps.faces import Face, MtcnnDetector, make_face_detector
from cnnkit.apps.inputs import ImageInput, load_image

ANIMAL_FACE_MASS = 0.5  # a face crop this sure of an ImageNet animal is not a human face
LOW_CONFIDENCE = 0.5  # a top breed below this is "not sure"
FACE_MARGIN = 0.25  # crop margin around a face box, as a fraction of its size


def _pct(entry: dict[str, Any]) -> str:
    return f"{entry['label']} ({entry['prob']:.0%})"


def describe(result: dict[str, Any]) -> str:
    """The one-line message of a result."""
    parts = []
    if result["is_dog"]:
        breeds = ", ".join(_pct(b) for b in result["breeds"])
        sure = result["breeds"] and result["breeds"][0]["prob"] >= LOW_CONFIDENCE
        parts.append(f"dog: {breeds}" if sure else f"dog, breed not sure: {breeds}")
    if result["is_human"]:
        n = len(result["faces"])
        looks = "; ".join(
            f"looks like a {r['label']} ({r['prob']:.0%})"
            if r["prob"] >= LOW_CONFIDENCE
            else f"not sure: looks a little like a {r['label']} ({r['prob']:.0%})"
            for r in result["resembles"]
        )
        parts.append(f"human ({n} face{'s' if n > 1 else ''}): {looks}")
    if not parts:
        top = result["top_class"]
        parts.append(f"neither a dog nor a human (ImageNet sees: {_pct(top)})")
    return " + ".join(parts)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run with ``threads`` torch CPU threads (``None``: leave torch's setting alone)."""
    before = torch.get_num_threads()
    if threads is None or threads == before:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class DogApp:
    """``DogApp(face_detector="mtcnn", topk=3, breeds=None)(image) -> dict`` (see the module doc).

    ``backbones``: ImageNet models whose probabilities are averaged (an ensemble when more
    than one); ``breeds``: a ``cnnkit train`` run directory whose classes name the breeds.
    ``threads``: torch CPU threads while answering (default 1: one photo is a chain of
    small ops - MTCNN's pyramid, 24/48 px crops, a few 224 px forwards - and on a busy
    2-core machine two threads made it 15x slower, 6 s instead of 0.4 s a photo; ``None``
    keeps torch's setting).
    """

    def __init__(
        self,
        face_detector: str = "mtcnn",
        topk: int = 3,
        breeds: str | Path | None = None,
        backbones: Sequence[str] = DEFAULT_BACKBONES,
        dog_threshold: float | None = None,
        threads: int | None = 1,
    ) -> None:
        from cnnkit.errors import CnnkitError

        if topk < 1:
            raise CnnkitError(f"topk must be at least 1, got {topk}.")
        self.detector = make_face_detector(face_detector)
        self.confirm = MtcnnDetector() if face_detector == "haar" else None
        self.scorer = DogScorer(backbones)
        self.head = None
        if breeds is not None:
            from cnnkit.apps.breeds import BreedHead

            self.head = BreedHead(breeds)
        self.dog_threshold = dog_threshold if dog_threshold is not None else backbone_threshold(backbones)
        self.topk, self.threads = topk, threads

    def _confirmed(self, crop: Image.Image) -> bool:
        """MTCNN finds a face in the crop of a Haar box (upscaled so a small face is in range)."""
        if self.confirm is None:
            return True
        if min(crop.size) < 96:
            scale = 96 / min(crop.size)
            crop = crop.resize((round(crop.width * scale), round(crop.height * scale)), Image.BICUBIC)
        return bool(self.confirm(crop))

    def _breeds(self, probs: torch.Tensor, crops: list[Image.Image], k: int) -> list[list[dict[str, Any]]]:
        if self.head is not None:
            return [self.head.topk(p, k) for p in self.head(crops)]
        return [self.scorer.breeds(p, k) for p in probs]

    def __call__(self, image: ImageInput) -> dict[str, Any]:
        with torch_threads(self.threads):
            return self._answer(image)

    def _answer(self, image: ImageInput) -> dict[str, Any]:
        name, photo = load_image(image)
        width, height = photo.size
        boxes = self.detector(photo)
        crops = [photo.crop(f.crop_box(FACE_MARGIN, width, height)) for f in boxes]
        probs = self.scorer([photo, *crops])
        faces: list[Face] = []
        face_crops: list[Image.Image] = []
        face_probs = []
        for face, crop, p in zip(boxes, crops, probs[1:], strict=True):
            if float(self.scorer.animal_mass(p)) >= ANIMAL_FACE_MASS or not self._confirmed(crop):
                continue
            faces.append(face)
            face_crops.append(crop)
            face_probs.append(p)
        whole, view, region = probs[0], photo, (0, 0, width, height)
        if faces:  # a person dilutes a dog's mass: score the two halves of the photo as well
            boxes_ = dog_views(photo)
            halves = [photo.crop(b) for b in boxes_]
            views = torch.cat([whole[None], self.scorer(halves)])
            best = int(self.scorer.dog_mass(views).argmax())
            whole, view, region = views[best], [photo, *halves][best], [region, *boxes_][best]
        dog_score = float(self.scorer.dog_mass(whole))
        is_dog = dog_score >= self.dog_threshold
        result: dict[str, Any] = {
            "image": name,
            "is_human": bool(faces),
            "is_dog": is_dog,
            "dog_score": round(dog_score, 4),
            "faces": [f.to_dict() for f in faces],
            "breeds": self._breeds(whole[None], [view], self.topk)[0] if is_dog else [],
            "resembles": [b[0] for b in self._breeds(torch.stack(face_probs), face_crops, 1)]
            if faces
            else [],
            "top_class": self.scorer.top_class(probs[0]),
            "dog_region": dict(
                zip("xywh", (*region[:2], region[2] - region[0], region[3] - region[1]), strict=True)
            ),
        }
        result["message"] = describe(result)
        return result

    def breed_cam(self, image: ImageInput, result: dict[str, Any]) -> np.ndarray | None:
        """Grad-CAM (Selvaraju et al. 2017) of the top ImageNet breed on the photo, (H, W) in [0, 1].

        ``None`` for a photo without a dog, with a ``--breeds`` run's head, or when
        ``cnnkit.explain`` is not available. Computed on the first backbone.
        """
        if not result.get("is_dog") or self.head is not None or not result["breeds"]:
            return None
        try:
            from cnnkit.explain.cam import class_activation_map
        except ImportError:
            return None
        _, photo = load_image(image)
        r = result["dog_region"]
        view = photo.crop((r["x"], r["y"], r["x"] + r["w"], r["y"] + r["h"]))
        model, pre = self.scorer.models[0]
        target = self.scorer.classes.index(result["breeds"][0]["label"])
        x = apply_preprocess(pre, [view])
        with torch_threads(self.threads):
            cam = class_activation_map(model, x, target=target, layer=getattr(model, "cam_layer", None))[
                "cam"
            ][0]
        full = np.zeros((photo.height, photo.width), dtype=np.float32)
        full[r["y"] : r["y"] + r["h"], r["x"] : r["x"] + r["w"]] = (
            F.interpolate(cam[None, None], size=(r["h"], r["w"]), mode="bilinear")[0, 0].clamp(0, 1).numpy()
        )
        return full

    def run_many(self, images: Sequence[ImageInput]) -> list[dict[str, Any]]:
        """Every image; a bad one gives ``{"image": ..., "error": "..."}`` and the rest go on."""
        from cnnkit.errors import CnnkitError

        out = []
        for image in images:
            try:
                out.append(self(image))
            except CnnkitError as exc:
                out.append(
                    {"image": str(image) if isinstance(image, (str, Path)) else "<input>", "error": str(exc)}
                )
        return out
