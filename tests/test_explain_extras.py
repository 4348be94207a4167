"""Hypercolumns and the architecture diagram, on real models and a real photo."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import torch
from PIL import Image
from skimage import data

import cnnkit
from cnnkit.cli import main
from cnnkit.explain.diagram import save_architecture
from cnnkit.explain.visualize import hypercolumns


def test_hypercolumns_stack_every_stage_at_the_input_size(tmp_path):
    model = cnnkit.create_model("mobilenet_v2", pretrained=True).eval()
    x = cnnkit.get_weights("mobilenet_v2").preprocess([Image.fromarray(data.chelsea())])
    columns = hypercolumns(model, x)
    assert columns.shape == (sum(f["num_chs"] for f in model.feature_info), 224, 224)
    assert torch.isfinite(columns).all() and columns.std() > 0

    photo = tmp_path / "chelsea.jpg"
    Image.fromarray(data.chelsea()).save(photo)
    assert main(["explain", "mobilenet_v2", str(photo), "--hypercolumns", "--out", str(tmp_path / "ex")]) == 0
    with Image.open(tmp_path / "ex" / "chelsea_hypercolumns.png") as png:
        assert png.size[0] >= 600 and png.size[1] >= 300


def test_architecture_diagram_draws_every_top_level_block(tmp_path):
    model = cnnkit.create_model("resnet18")
    svg = ET.parse(save_architecture(model, tmp_path / "resnet18.svg")).getroot().itertext()
    text = " ".join(svg)
    for block in ("conv1", "layer1", "layer4", "fc", "11,689,512"):
        assert block in text
    assert main(["summary", "lenet5", "--diagram", str(tmp_path / "lenet5.png")]) == 0
    with Image.open(tmp_path / "lenet5.png") as png:
        assert png.size[0] >= 500
