"""``cnnkit dogapp IMAGE...``: a dog's breed, the breed a human resembles, or neither.

One line per image (``--json``: a JSON list); ``--annotate DIR`` writes a copy of each
photo with its face boxes, labels and, for a dog, the Grad-CAM of its breed. A bad file gets one error line and the batch goes
on; the exit status is 2 at the end if any image failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cnnkit.apps.faces import FACE_DETECTORS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "dogapp",
        help="dog breed of a photo, or the breed a human looks like",
        description="A dog's breed, the breed a human resembles, or neither (one line per image).",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG, BMP, ...)")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of one line per image")
    p.add_argument("--annotate", metavar="OUT_DIR", help="write each photo with its boxes and labels here")
    p.add_argument("--topk", type=int, default=3, help="breeds to list for a dog (default 3)")
    p.add_argument(
        "--face-detector",
        choices=FACE_DETECTORS,
        default="mtcnn",
        help="mtcnn (default: higher hit rate, fewer false positives in bench/bench_faces.py) or haar "
        "(the seed's cascade; each box must then be confirmed by MTCNN)",
    )
    p.add_argument(
        "--breeds", metavar="RUN", help="a 'cnnkit train' run directory whose classes name the breeds"
    )
    p.add_argument(
        "--backbone",
        action="append",
        metavar="MODEL",
        help="ImageNet backbone for the dog score and breeds; repeat for an ensemble, 'all' for all four "
        "(default: efficientnet_lite0 + mobilenet_v2)",
    )
    p.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (default 1, fastest on a busy machine)"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from cnnkit.apps.dogapp import DogApp
    from cnnkit.apps.dogs import ALL_BACKBONES, DEFAULT_BACKBONES

    app = DogApp(
        face_detector=args.face_detector,
        topk=args.topk,
        breeds=args.breeds,
        backbones=ALL_BACKBONES if args.backbone == ["all"] else (args.backbone or DEFAULT_BACKBONES),
        threads=args.threads,
    )
    results = app.run_many(args.images)
    failed, written = 0, set()
    for path, result in zip(args.images, results, strict=True):
        if "error" in result:
            failed += 1
            if not args.json:
                print(f"{path}: error: {result['error']}", flush=True)
            continue
        if args.annotate:
            from cnnkit.apps.annotate import annotate_file

            cam = app.breed_cam(path, result)
            result["annotated"] = str(annotate_file(path, result, Path(args.annotate), written, cam))
        if not args.json:
            print(f"{path}: {result['message']}", flush=True)
    if args.json:
        print(json.dumps(results, indent=2))
    if failed:
        print(f"cnnkit: error: {failed} of {len(results)} images failed (see their lines).", file=sys.stderr)
        return 2
    return 0
