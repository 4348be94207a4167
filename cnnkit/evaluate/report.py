"""``build_report(run)``: one self-contained HTML page about a run - summary, learning curves,
per-class metrics, confusion matrix, calibration, worst errors, the doctor's advice and
Grad-CAM examples - every image inlined as a base64 PNG, so the file can be mailed or opened
anywhere without its folder.
"""

from __future__ import annotations

import base64
import html
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from cnnkit.fileio import read_json, write_text_atomic

CAM_EXAMPLES = 8

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: .5em 0; } td, th { border: 1px solid #ddd; padding: .25em .6em; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; border: 1px solid #eee; } .finding { margin: .6em 0; } .kind { font-weight: bold; }
"""


def _img(path: str | Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def _table(rows: list[list[Any]], header: list[str]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f'<td class="num">{v:.4f}</td>'
        return f'<td class="num">{v}</td>' if isinstance(v, int) else f"<td>{html.escape(str(v))}</td>"

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _cam_grid(run: Any, dm: Any, split: str, path: Path) -> Path:
    """Grad-CAM overlays of the first test images (true / predicted in the titles)."""
    from cnnkit.evaluate.plots import plot_image_grid, to_display
    from cnnkit.evaluate.runs import eval_batches
    from cnnkit.explain.cam import class_activation_map
    from cnnkit.explain.visualize import overlay

    x, y = next(eval_batches(dm, split))
    x, y = x[:CAM_EXAMPLES].float(), y[:CAM_EXAMPLES]
    res = class_activation_map(run.model, x, "gradcam")
    shown, titles = [], []
    for i in range(len(x)):
        image = to_display(x[i].numpy(), run.mean, run.std)
        shown.append(overlay(image, res["cam"][i].numpy()))
        truth, pred = run.classes[int(y[i])], run.classes[res["target"][i]]
        titles.append(f"true {truth} / pred {pred}")
    return plot_image_grid(shown, titles, path, f"Grad-CAM at {res['layer']} ({split})")


def build_report(run_dir: str | Path, out: str | Path | None = None, tta: str = "none") -> Path:
    """Write ``out`` (default ``RUN/report.html``) and return its path."""
    from cnnkit.evaluate.doctor import diagnose
    from cnnkit.evaluate.evaluate import evaluate_run
    from cnnkit.evaluate.runs import open_run, run_datamodule
    from cnnkit.train.plots import plot_curves

    run = open_run(run_dir)
    out = Path(out) if out is not None else run.path / "report.html"
    results = read_json(run.path / "results.json") if (run.path / "results.json").is_file() else {}
    with tempfile.TemporaryDirectory(prefix="cnnkit-report-") as tmp:
        tmp_dir = Path(tmp)
        metrics = evaluate_run(run, tta=tta, out=tmp_dir / "eval")
        findings = diagnose(run.path)
        curves = run.path / "curves.png"
        if not curves.is_file():
            from cnnkit.evaluate.doctor import read_metrics

            curves = tmp_dir / "curves.png"
            plot_curves(read_metrics(run.path / "metrics.csv"), curves)
        dm = run_datamodule(run)
        try:
            cam_png: Path | None = _cam_grid(run, dm, metrics["split"], tmp_dir / "cam.png")
            cam_note = ""
        except Exception as exc:  # a net without conv maps (e.g. an MLP): the page says why
            cam_png, cam_note = None, str(exc)
        page = _page(run, results, metrics, findings, curves, cam_png, cam_note)
    write_text_atomic(out, page)
    return out


def _page(
    run: Any, results: dict, metrics: dict, findings: list, curves: Path, cam_png: Path | None, cam_note: str
) -> str:
    cfg = run.config
    k = metrics["topk"]
    title = f"{cfg.get('model')} on {Path(str(cfg.get('data'))).name} - {run.path.name}"
    summary = [
        ["accuracy (" + metrics["split"] + ")", metrics["accuracy"]],
        [f"rank-{k} accuracy", metrics[f"top{k}"]],
        ["macro F1", metrics["macro"]["f1"]],
        ["ECE (calibration error)", metrics["ece"]],
        ["samples", metrics["n"]],
        ["best validation accuracy", float(results.get("best_val_acc", np.nan))],
        ["epochs", int(results.get("epochs", 0))],
        ["parameters", int(results.get("params", 0))],
        ["training time (s)", float(results.get("train_seconds", np.nan))],
    ]
    options = [[key, cfg.get("resolved", {}).get(key, cfg.get(key))] for key in ("model", "data", "epochs", "batch_size", "optimizer", "lr",
                                                "weight_decay", "schedule", "augment", "seed")]  # fmt: skip
    per_class = [
        [name, row["precision"], row["recall"], row["f1"], row["support"]]
        for name, row in metrics["per_class"].items()
    ]
    per_class += [[f"{avg} avg", *(metrics[avg][m] for m in ("precision", "recall", "f1")), metrics["n"]]
                  for avg in ("macro", "weighted")]  # fmt: skip
    doctor = "".join(
        f'<div class="finding"><span class="kind">{html.escape(f.kind)}</span>: {html.escape(f.summary)}<ul>'
        + "".join(f"<li>{html.escape(a)}</li>" for a in f.advice)
        + "</ul></div>"
        for f in findings
    )
    files = metrics["files"]
    cam = _img(cam_png, "Grad-CAM examples") if cam_png else f"<p>No CAM: {html.escape(cam_note)}</p>"
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
        "<h2>Summary</h2>", _table(summary, ["", "value"]), _table(options, ["option", "value"]),
        "<h2>Learning curves</h2>", _img(curves, "learning curves"),
        "<h2>Training doctor</h2>", doctor,
        "<h2>Per-class metrics</h2>", _table(per_class, ["class", "precision", "recall", "F1", "support"]),
        "<h2>Confusion matrix</h2>", _img(files["confusion_png"], "confusion matrix"),
        "<h2>Calibration</h2>", _img(files["reliability_png"], "reliability diagram"),
        "<h2>Most confident mistakes</h2>", _img(files["mistakes_png"], "most confident mistakes"),
        "<h2>Where the network looks (Grad-CAM)</h2>", cam,
        f"<p><small>cnnkit report of {html.escape(str(run.path))}</small></p></body></html>",
    ]  # fmt: skip
    return "\n".join(parts) + "\n"


def images_in(page: str) -> list[bytes]:
    """The decoded PNG bytes of every inlined image of a report (for checks)."""
    import re

    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]
