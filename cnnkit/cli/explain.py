"""``cnnkit explain RUN|MODEL IMAGE... [--method cam|gradcam|gradcam++] [--layer NAME] [--class C]``.

Heat maps of where the network looked, overlaid on each image; ``--features LAYER,...`` adds
feature-map grids and ``--filters`` the first layer's kernels. ``--layer list`` prints the
layers that can be explained.
"""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explain", help="CAM / Grad-CAM heat maps, feature maps and filters of a model")
    p.add_argument(
        "model", metavar="RUN|MODEL", help="a 'cnnkit train' run directory or a zoo model with weights"
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    p.add_argument(
        "--method", default="gradcam", choices=("cam", "gradcam", "gradcam++"), help="(default: gradcam)"
    )
    p.add_argument("--layer", default=None, help="target layer (default: the model's last feature stage)")
    p.add_argument(
        "--class", dest="target", default=None, help="class name or index (default: the predicted one)"
    )
    p.add_argument("--features", default="", help="comma-separated layers whose feature maps to draw")
    p.add_argument("--filters", action="store_true", help="also draw the first conv layer's filters")
    p.add_argument(
        "--hypercolumns",
        action="store_true",
        help="also draw each image's hypercolumns over the model's stages",
    )
    p.add_argument("--weights", default=None, help="state_dict file for a zoo MODEL")
    p.add_argument("--classes", default=None, help="class names file for --weights")
    p.add_argument("--out", default="explain", help="output folder (default: ./explain)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from cnnkit.explain import explain_images, layer_names, load_explainable

    ex = load_explainable(args.model, weights=args.weights, classes=args.classes)
    if args.layer == "list":
        print("\n".join(layer_names(ex.model)))
        return 0
    features = [name.strip() for name in args.features.split(",") if name.strip()]
    results = explain_images(
        ex,
        args.images,
        args.method,
        args.layer,
        args.target,
        args.out,
        features=features,
        filters=args.filters,
        hypercolumn=args.hypercolumns,
    )
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        px, py = r["peak"]
        print(
            f"{r['image']}: {r['label']} ({r['prob']:.1%}), {args.method} at {r['layer']}, peak at "
            f"({px:.0%}, {py:.0%}) of width/height -> {r['png']}"
        )
        for png in r["feature_pngs"]:
            print(f"  feature maps -> {png}")
        if "hypercolumns_png" in r:
            print(f"  hypercolumns -> {r['hypercolumns_png']}")
    if args.filters:
        print(f"first-layer filters -> {args.out}/filters.png")
    return 0
