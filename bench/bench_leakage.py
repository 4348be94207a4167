"""Leakage check on CIFAR-10: time for the 50,000 train + 10,000 test images, and how many
near-duplicate train/test pairs it finds (Barz & Denzler 2020 report 3.3% of the test images).

    python bench/bench_leakage.py [--threads 2] [--repeats 3]

Prints the load / hash+search times (median of ``--repeats``), with and without the crop
variants, the pair counts, and the hashing speed against ``imagehash.phash`` (the usual
per-image library) on the same 2,000 images, as a ratio measured in this run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch


def median_time(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    from cnnkit.evaluate.leakage import find_leaks, hashes
    from cnnkit.evaluate.leakage_io import load_source
    from cnnkit.shared import shared_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = shared_path("datasets", "cifar-10-batches-py")
    if not root.exists():
        raise SystemExit(f"{root} is missing; set CNNKIT_SHARED")

    t_load, splits = median_time(lambda: load_source(root), args.repeats)
    n = {k: len(v.ids) for k, v in splits.items()}
    print(f"CIFAR-10 {n}, {args.threads} threads, median of {args.repeats}")
    print(f"load + thumbnails + digests: {t_load:7.2f} s")
    for crops in (False, True):
        t, pairs = median_time(lambda c=crops: find_leaks(None, crops=c, splits=splits), args.repeats)
        exact = sum(p["kind"] == "exact" for p in pairs)
        tests = len({p["b"] for p in pairs})
        print(
            f"hash + search ({'with' if crops else 'no  '} crops): {t:7.2f} s   pairs {len(pairs):5d} "
            f"(exact {exact}, near {len(pairs) - exact}); test images with a train duplicate: {tests} "
            f"({tests / n['test']:.2%})"
        )

    # Hashing speed against imagehash.phash on the same images (the 32x32 gray thumbnails).
    import imagehash
    from PIL import Image

    sample = splits["test"].thumbs[:2000]
    images = [Image.fromarray(t) for t in sample]
    t_lib, _ = median_time(lambda: [imagehash.phash(im) for im in images], args.repeats)

    class Part:
        thumbs = sample

    t_ours, _ = median_time(lambda: hashes(Part, crops=False), args.repeats)  # type: ignore[arg-type]
    print(
        f"pHash of 2,000 images: imagehash {t_lib * 1e3:7.1f} ms, cnnkit (batched DCT) {t_ours * 1e3:6.1f} ms "
        f"-> {t_lib / t_ours:5.1f}x faster"
    )
    agree = np.mean(
        [
            str(imagehash.phash(im)) == format(int(h), "016x")
            for im, h in zip(images[:200], hashes(Part, crops=False)["full"][:200], strict=False)
        ]
    )
    print(f"bit-identical to imagehash.phash on {agree:.0%} of 200 of these thumbnails")


if __name__ == "__main__":
    main()
