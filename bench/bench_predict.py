"""CPU inference latency of the offline pretrained backbones, and what Lite0's TF preprocessing is worth.

(a) For every model with offline weights (EfficientNet-Lite0/1/2, MobileNetV2): latency per
    image at its own input size, batch 1 and batch 32, median of ``--repeats`` timed runs
    after warm-up, as a ratio to ResNet-50 (random weights, 224x224) measured in the same
    run; and its top-1 (with probability) on two real photos (scikit-image's chelsea and
    coffee) through its weights record's preprocessing. Also decode + resize + scaling of a
    real JPEG (the part of ``cnnkit predict`` before the model).
(b) ``--check-preprocessing N``: accuracy of the ImageNet weights under each convention we
    reproduce, with one convention switched off at a time: TF 'same' padding vs symmetric,
    (x - 127) / 128 vs ImageNet mean/std, bicubic vs bilinear, BatchNorm eps 1e-3 vs 1e-5.
    Measured on the first N CIFAR-10 test images of 8 classes that map onto groups of
    ImageNet classes (cat -> the 5 domestic cats, dog -> the 118 breeds, ...), upscaled to
    224, as "superclass" top-1 and the mean negative log of the group's probability; plus
    the top-1 of 8 real photos from scikit-image, scikit-learn and matplotlib.

    python bench/bench_predict.py                              # (a): about 1-2 minutes on 2 cores
    python bench/bench_predict.py --check-preprocessing 600    # + (b): about 5 more minutes

One torch thread by default: on a busy 2-core machine two OpenMP threads wait for each other
at every layer, and EfficientNet's ~150 small layers then time erratically (pass --threads 2
to see it on your machine).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import cnnkit
from cnnkit.data.sources import read_cifar_batch
from cnnkit.imagenet import imagenet_classes
from cnnkit.models import get_weights, models_with_weights
from cnnkit.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from cnnkit.shared import shared_path

CIFAR_TEST = shared_path("datasets", "cifar-10-batches-py", "test_batch")


def _span(a: int, b: int) -> list[int]:
    return list(range(a, b + 1))


# CIFAR-10 class -> ImageNet-1k classes that depict it (deer and horse have no clean match).
CIFAR_TO_IMAGENET = {
    0: [404, 895, 908, 405],  # airplane: airliner, warplane, wing, airship
    1: [436, 468, 511, 609, 627, 656, 661, 717, 751, 817, 581, 479],  # automobile: cars, cab, jeep...
    2: _span(7, 24) + _span(80, 100) + _span(127, 146),  # bird
    3: _span(281, 285),  # cat: tabby, tiger, Persian, Siamese, Egyptian
    5: _span(151, 268),  # dog: the breeds
    6: [30, 31, 32],  # frog: bullfrog, tree frog, tailed frog
    8: [510, 628, 724, 780, 484, 554, 625, 814, 871, 913, 403, 576, 693, 833],  # ship
    9: [555, 569, 675, 717, 864, 867, 734],  # truck
}


def median_ms_per_image(
    model: torch.nn.Module, batch: int, repeats: int, side: int = 224, warmup: int = 3
) -> float:
    x = torch.randn(batch, 3, side, side)
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            start = time.perf_counter()
            model(x)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times) / batch


def latency(repeats: int) -> None:
    import skimage.data

    torch.manual_seed(0)
    resnet = cnnkit.create_model("resnet50").eval()
    names = imagenet_classes()
    photos = {"chelsea": skimage.data.chelsea(), "coffee": skimage.data.coffee()}
    print(f"(a) CPU latency, {torch.get_num_threads()} threads, median of {repeats} runs (batch 32: fewer)")
    print(
        f"    {'model':<19} {'input':>5} {'ms b1':>7} {'ms/img b32':>10} {'r50/it b1':>9} {'r50/it b32':>10}  top-1"
    )
    base = {b: median_ms_per_image(resnet, b, repeats if b == 1 else max(3, repeats // 4)) for b in (1, 32)}
    print(
        f"    {'resnet50 (random)':<19} {224:>5} {base[1]:>7.2f} {base[32]:>10.2f} {'1.00x':>9} {'1.00x':>10}"
    )
    for name in models_with_weights():
        record = get_weights(name)
        model = cnnkit.create_model(name, pretrained=True).eval()
        side = record.preprocess.size[0]
        ms = {
            b: median_ms_per_image(model, b, repeats if b == 1 else max(3, repeats // 4), side)
            for b in (1, 32)
        }
        with torch.inference_mode():
            probs = model(record.preprocess(list(photos.values()))).softmax(1)
        top1 = ", ".join(
            f"{photo}: {names[int(p.argmax())]} {float(p.max()):.3f}"
            for photo, p in zip(photos, probs, strict=True)
        )
        print(
            f"    {name:<19} {side:>5} {ms[1]:>7.2f} {ms[32]:>10.2f} {base[1] / ms[1]:>8.2f}x "
            f"{base[32] / ms[32]:>9.2f}x  {top1}"
        )

    with tempfile.TemporaryDirectory() as folder:
        photo = Path(folder) / "chelsea.jpg"
        Image.fromarray(photos["chelsea"]).save(photo, quality=95)
        prep = get_weights("efficientnet_lite0").preprocess
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            prep([photo])
            times.append(time.perf_counter() - start)
    print(
        f"    decode + bicubic resize + scale, 451x300 JPEG: {1000 * statistics.median(times):.2f} ms/image"
    )


def load_cifar(n: int) -> tuple[np.ndarray, np.ndarray]:
    batch = read_cifar_batch(CIFAR_TEST)  # restricted unpickler: builtin types only
    images = batch[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    labels = np.array(batch[b"labels"])
    keep = np.flatnonzero(np.isin(labels, list(CIFAR_TO_IMAGENET)))[:n]
    return images[keep], labels[keep]


def superclass_scores(
    model: torch.nn.Module, prep: Preprocess, images: np.ndarray, labels: np.ndarray
) -> tuple[float, float]:
    """(superclass top-1, mean -log P(group)) of ``model`` on CIFAR images saved as PNGs."""
    correct, nll = 0, 0.0
    with tempfile.TemporaryDirectory() as folder, torch.inference_mode():
        paths = []
        for i, image in enumerate(images):
            paths.append(Path(folder) / f"{i}.png")
            Image.fromarray(image).save(paths[-1])
        for start in range(0, len(paths), 50):
            probs = model(prep(paths[start : start + 50])).softmax(1)
            for p, label in zip(probs, labels[start : start + 50], strict=True):
                group = CIFAR_TO_IMAGENET[int(label)]
                correct += int(int(p.argmax()) in group)
                nll -= float(torch.log(p[group].sum()))
    return correct / len(labels), nll / len(labels)


def real_photos(folder: Path) -> list[Path]:
    import matplotlib.cbook
    import skimage.data
    from sklearn.datasets import load_sample_images

    arrays = {
        "chelsea": skimage.data.chelsea(),
        "coffee": skimage.data.coffee(),
        "astronaut": skimage.data.astronaut(),
        "rocket": skimage.data.rocket(),
        "motorcycle": skimage.data.stereo_motorcycle()[0],
    }
    sklearn_images = load_sample_images().images
    arrays["china"], arrays["flower"] = sklearn_images[0], sklearn_images[1]
    paths = []
    for name, array in arrays.items():
        paths.append(folder / f"{name}.png")
        Image.fromarray(array).save(paths[-1])
    paths.append(Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    return paths


def check_preprocessing(n: int) -> None:
    tf_prep = get_weights("efficientnet_lite0").preprocess
    reference = cnnkit.create_model("efficientnet_lite0", pretrained=True).eval()
    eps_1e5 = cnnkit.create_model("efficientnet_lite0", pretrained=True).eval()
    for m in eps_1e5.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eps = 1e-5
    variants = {
        "all TF conventions": (reference, tf_prep),
        "symmetric padding": (
            cnnkit.create_model("efficientnet_lite0", pretrained=True, tf_padding=False).eval(),
            tf_prep,
        ),
        "ImageNet mean/std": (reference, dataclasses.replace(tf_prep, mean=IMAGENET_MEAN, std=IMAGENET_STD)),
        "bilinear resize": (reference, dataclasses.replace(tf_prep, resample="bilinear")),
        "BatchNorm eps 1e-5": (eps_1e5, tf_prep),
    }
    images, labels = load_cifar(n)
    names = imagenet_classes()
    print(f"\n(b) one convention off at a time: {len(labels)} CIFAR-10 test images (8 classes) and 8 photos")
    with tempfile.TemporaryDirectory() as folder:
        photos = real_photos(Path(folder))
        for title, (model, prep) in variants.items():
            top1, nll = superclass_scores(model, prep, images, labels)
            with torch.inference_mode():
                probs = model(prep(photos)).softmax(1)
            answers = ", ".join(
                f"{p.stem} {names[int(q.argmax())]} {float(q.max()):.2f}"
                for p, q in zip(photos, probs, strict=True)
            )
            print(f"    {title:<20} superclass top-1 {top1:.3f}  NLL {nll:.3f}\n        photos: {answers}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per measurement (default 20)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, see the docstring)")
    parser.add_argument(
        "--check-preprocessing", type=int, default=0, metavar="N", help="CIFAR-10 images for (b)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    latency(args.repeats)
    if args.check_preprocessing:
        check_preprocessing(args.check_preprocessing)


if __name__ == "__main__":
    main()
