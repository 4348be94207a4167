"""The dog app against the seed's recipe, on every real labelled photo available offline.

(1) **Dog threshold.** The dog score is the ImageNet mass on the 118 dog classes. On the
    first ``--select`` CIFAR-10 *test* images of dog, cat, bird, deer, frog and horse
    (upscaled 32 -> 224, bicubic), sweep the threshold and print dog recall and the
    false-positive rate on cats and on the other animals; the chosen threshold maximises
    balanced accuracy (dog recall + non-dog specificity) / 2. The seed's rule (top-1
    class is a dog) is scored on the same images.
(2) **The app vs the seed** on held-out photos (none of them chose the threshold):
    portraits (astronaut, grace_hopper, camera), 100 LFW face patches, 100 LFW non-face
    patches, 12 non-face sample photos, CIFAR-10 test images past the selection ones
    (dogs, cats, other animals, vehicles), and "dog with owner" composites (a portrait
    and a CIFAR-10 dog side by side: both a human and a dog). Accuracy of the answer
    human / dog / both / neither per group. The seed's recipe: OpenCV's
    haarcascade_frontalface_alt + "top-1 ImageNet class is a dog", dog first, then human
    (it can never answer "both"); its backbone here is the app's (the seed used Keras'
    ResNet-50, whose ImageNet weights are not offline), so only the rules differ.
(3) **Breeds**: top-1 / top-3 on CIFAR-10 test dogs whose Tiny Images search term (kept in
    the file name) is an ImageNet breed - Pekinese, Maltese, Chihuahua, Japanese spaniel,
    Blenheim spaniel (noisy web labels, 32x32 photos). The app: top breeds renormalised
    over the dog classes; the seed: its top-1 class when that is a dog (else no breed).
(4) ``--compare-backbones A,B,...`` (instead of 1-3): each backbone and every average of
    them - best balanced accuracy as in (1) and breed top-1/top-3 as in (3).

    python bench/bench_dogapp.py                 # about 12 minutes on 2 busy cores (load ~15)
    python bench/bench_dogapp.py --select 60 --eval 30 --breeds 100   # about 5 minutes
    python bench/bench_dogapp.py --compare-backbones efficientnet_lite0,mobilenet_v2 --select 50
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from PIL import Image

from cnnkit.apps import DogApp
from cnnkit.apps.dogs import DEFAULT_BACKBONES, DOG_CLASSES, DogScorer, top_breeds
from cnnkit.apps.faces import HaarDetector
from cnnkit.apps.photos import SAMPLE_PHOTOS, cifar10_dog_breeds, cifar10_photos, lfw_patches, sample_photo

OTHER_ANIMALS = ("bird", "deer", "frog", "horse")
VEHICLES = ("airplane", "automobile", "ship", "truck")


def choose_threshold(scorer: DogScorer, per_class: int) -> float:
    photos = cifar10_photos(("dog", "cat", *OTHER_ANIMALS), per_class)
    probs = scorer([im for im, _ in photos])
    mass = scorer.dog_mass(probs).numpy()
    top1_dog = np.isin(probs.argmax(dim=1).numpy(), list(DOG_CLASSES))
    labels = np.array([c for _, c in photos])
    dog, cat, other = labels == "dog", labels == "cat", np.isin(labels, OTHER_ANIMALS)
    print(f"(1) dog threshold on CIFAR-10 test, first {per_class} per class ({len(photos)} photos)")
    print(f"{'rule':<22}{'dog recall':>11}{'cat FP':>8}{'other FP':>9}{'balanced':>9}")

    def line(name: str, yes: np.ndarray) -> float:
        neg = ~dog
        balanced = (yes[dog].mean() + 1 - yes[neg].mean()) / 2
        print(
            f"{name:<22}{yes[dog].mean():>11.1%}{yes[cat].mean():>8.1%}{yes[other].mean():>9.1%}{balanced:>9.1%}"
        )
        return balanced

    line("seed: top-1 is a dog", top1_dog)
    best, best_t = -1.0, 0.0
    for t in np.arange(0.05, 0.96, 0.05):
        b = line(f"dog mass >= {t:.2f}", mass >= t)
        if b > best:
            best, best_t = b, float(t)
    print(f"best balanced accuracy {best:.1%} at {best_t:.2f}\n")
    return best_t


def composites(per_portrait: int, offset: int) -> list[Image.Image]:
    dogs = [im for im, _ in cifar10_photos(("dog",), per_portrait, size=384, offset=offset)]
    out = []
    for name in ("astronaut", "grace_hopper", "camera"):
        person = sample_photo(name)
        for dog in dogs:
            photo = Image.new("RGB", (person.width + dog.width, max(person.height, dog.height)), "white")
            photo.paste(person, (0, 0))
            photo.paste(dog, (person.width, photo.height - dog.height))
            out.append(photo)
    return out


def held_out(select: int, n: int) -> dict[str, tuple[list[Image.Image], str]]:
    faces, non_faces = lfw_patches(size=100, pad=25)
    groups = {
        "portraits": ([sample_photo(p) for p in ("astronaut", "grace_hopper", "camera")], "human"),
        "lfw faces": (faces, "human"),
        "lfw non-faces": (non_faces, "neither"),
        "sample photos": (
            [sample_photo(p) for p, label in SAMPLE_PHOTOS.items() if label == "neither"],
            "neither",
        ),
        "cifar dog": ([im for im, _ in cifar10_photos(("dog",), n, offset=select)], "dog"),
        "cifar cat": ([im for im, _ in cifar10_photos(("cat",), n, offset=select)], "neither"),
        "cifar animals": ([im for im, _ in cifar10_photos(OTHER_ANIMALS, n // 2, offset=select)], "neither"),
        "cifar vehicles": ([im for im, _ in cifar10_photos(VEHICLES, n // 4, offset=select)], "neither"),
        "dog + owner": (composites(4, select + n), "both"),
    }
    return groups


def app_answer(result: dict) -> str:
    return {(True, True): "both", (True, False): "human", (False, True): "dog"}.get(
        (result["is_human"], result["is_dog"]), "neither"
    )


def seed_answer(scorer: DogScorer, haar: HaarDetector, photo: Image.Image) -> str:
    top1 = int(scorer([photo])[0].argmax())
    if top1 in DOG_CLASSES:
        return "dog"
    return "human" if haar(photo) else "neither"


def compare(app: DogApp, groups: dict, haar: HaarDetector) -> None:
    print("(2) answer accuracy (human / dog / both / neither) on held-out photos")
    print(f"{'group':<16}{'truth':>8}{'n':>5}{'app':>8}{'seed':>8}   app's wrong answers")
    totals = {"app": [], "seed": []}
    start = time.perf_counter()
    for name, (photos, truth) in groups.items():
        ours = [app_answer(app(p)) for p in photos]
        seed = [seed_answer(app.scorer, haar, p) for p in photos]
        a, s = [x == truth for x in ours], [x == truth for x in seed]
        totals["app"] += a
        totals["seed"] += s
        wrong = {w: ours.count(w) for w in set(ours) if w != truth}
        print(f"{name:<16}{truth:>8}{len(photos):>5}{np.mean(a):>8.1%}{np.mean(s):>8.1%}   {wrong or ''}")
    n = len(totals["app"])
    print(f"{'all':<16}{'':>8}{n:>5}{np.mean(totals['app']):>8.1%}{np.mean(totals['seed']):>8.1%}")
    print(f"({time.perf_counter() - start:.0f} s)\n")


def breeds(app: DogApp, skip: int, limit: int) -> None:
    photos = cifar10_dog_breeds(skip=skip)[:limit]
    probs = app.scorer([im for im, _ in photos])
    top1 = top3 = seed1 = 0
    for p, (_, truth) in zip(probs, photos, strict=True):
        ranked = [b["label"] for b in app.scorer.breeds(p, 3)]
        top1 += ranked[0] == truth
        top3 += truth in ranked
        seed1 += app.scorer.top_class(p)["label"] == truth
    n = len(photos)
    print(f"(3) breeds on {n} CIFAR-10 test dogs labelled by search term (5 breeds; noisy, 32x32)")
    print(f"app top-1 {top1 / n:.1%}  top-3 {top3 / n:.1%}   seed top-1 {seed1 / n:.1%} (seed has no top-3)")


def compare_backbones(names: list[str], per_class: int, n_breeds: int) -> None:
    """(4) Each backbone and their averages: best balanced accuracy (threshold chosen as in (1))
    on the selection photos, and breed top-1/top-3 on the breed-labelled dogs."""
    from itertools import combinations

    photos = cifar10_photos(("dog", "cat", *OTHER_ANIMALS), per_class)
    labelled = cifar10_dog_breeds(skip=per_class)[:n_breeds]
    images = [im for im, _ in photos] + [im for im, _ in labelled]
    probs = {}
    for name in names:
        start = time.perf_counter()
        probs[name] = DogScorer((name,))(images)
        print(f"  {name}: {time.perf_counter() - start:.0f} s for {len(images)} photos")
    dog = np.array([c == "dog" for _, c in photos])
    print(f"(4) backbones: {per_class} selection photos per class, {len(labelled)} breed-labelled dogs")
    print(f"{'backbones':<58}{'balanced':>9}{'at':>6}{'top-1':>7}{'top-3':>7}")
    sets = [(n,) for n in names] + [c for k in range(2, len(names) + 1) for c in combinations(names, k)]
    for combo in sets:
        p = sum(probs[n] for n in combo) / len(combo)
        mass = DogScorer.dog_mass(p[: len(photos)]).numpy()
        best = max(
            ((mass[dog] >= t).mean() + (mass[~dog] < t).mean(), t) for t in np.arange(0.05, 0.96, 0.05)
        )
        top1 = top3 = 0
        for row, (_, truth) in zip(p[len(photos) :], labelled, strict=True):
            ranked = [b["label"] for b in top_breeds(row, 3)]
            top1, top3 = top1 + (ranked[0] == truth), top3 + (truth in ranked)
        n = max(1, len(labelled))
        print(f"{' + '.join(combo):<58}{best[0] / 2:>9.1%}{best[1]:>6.2f}{top1 / n:>7.1%}{top3 / n:>7.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--select", type=int, default=100, help="CIFAR-10 test images per class that choose the threshold"
    )
    parser.add_argument("--eval", type=int, default=60, help="held-out CIFAR-10 test images per class")
    parser.add_argument("--breeds", type=int, default=200, help="breed-labelled CIFAR-10 dogs to score")
    parser.add_argument("--backbone", action="append", help="backbone(s) of the app; repeat for an ensemble")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--compare-backbones",
        metavar="A,B,...",
        help="only (4): each backbone and every average of them, e.g. efficientnet_lite0,mobilenet_v2",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.compare_backbones:
        compare_backbones(args.compare_backbones.split(","), args.select, args.breeds)
        return
    app = DogApp(backbones=args.backbone or DEFAULT_BACKBONES)
    print(f"backbones: {', '.join(app.scorer.names)}; face detector: {app.detector.name}\n")
    chosen = choose_threshold(app.scorer, args.select)
    if chosen != app.dog_threshold:
        print(f"(parts 2 and 3 use the chosen {chosen:.2f}, not the app's {app.dog_threshold})\n")
        app.dog_threshold = chosen
    haar = HaarDetector("haarcascade_frontalface_alt.xml")
    compare(app, held_out(args.select, args.eval), haar)
    breeds(app, args.select, args.breeds)


if __name__ == "__main__":
    main()
