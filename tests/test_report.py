"""cnnkit report: one self-contained HTML file, opened in a real headless browser."""

from __future__ import annotations

import io
import re
import subprocess

import pytest
from PIL import Image

import cnnkit
from cnnkit.cli import COMMANDS, main
from cnnkit.evaluate.report import build_report, images_in

PROBE = (
    "<script>window.addEventListener('load', () => { const im = [...document.images];"
    " document.body.setAttribute('data-loaded', im.filter(i => i.complete && i.naturalWidth > 0).length"
    " + '/' + im.length); });</script>"
)


def cli(argv: list[str]) -> int:
    """``cnnkit ARGV``; until 'report' is in cnnkit.cli.COMMANDS, through the module's own parser."""
    if argv[0] in COMMANDS:
        return main(argv)
    import argparse
    import importlib

    parser = argparse.ArgumentParser(prog="cnnkit")
    importlib.import_module(f"cnnkit.cli.{argv[0]}").add_parser(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.run(args) or 0)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "lenet5"
    cnnkit.fit("lenet5", "digits", epochs=2, batch_size=64, out=str(out), verbose=0)
    return out


def test_report_is_one_file_with_every_picture_inlined(run, tmp_path, capsys):
    assert cli(["report", str(run), "--out", str(tmp_path / "r.html")]) == 0
    assert "r.html" in capsys.readouterr().out
    page = (tmp_path / "r.html").read_text()
    for section in ("Summary", "Learning curves", "Training doctor", "Per-class metrics", "Confusion matrix",
                    "Calibration", "Most confident mistakes", "Where the network looks (Grad-CAM)"):  # fmt: skip
        assert f">{section}" in page
    assert not re.search(r'src="(?!data:)', page)  # nothing loaded from outside the file
    pngs = images_in(page)
    assert len(pngs) == 5
    for data in pngs:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            assert image.size[0] >= 400 and image.size[1] >= 300


def test_report_loads_in_headless_chromium_and_shows_its_images(run, tmp_path, chromium):
    page = build_report(run, tmp_path / "report.html").read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"))
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000", "--dump-dom",
         probe.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    assert 'data-loaded="5/5"' in dom
