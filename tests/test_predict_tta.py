"""``cnnkit predict --tta flip``: each image's probabilities averaged with its mirror image's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from cnnkit.errors import CnnkitError
from cnnkit.runtime import load_runtime, predict_paths


def test_flip_tta_averages_the_photo_and_its_mirror(tmp_path):
    path = tmp_path / "chelsea.jpg"
    Image.fromarray(data.chelsea()).save(path)
    loaded = load_runtime("mobilenet_v2")
    plain = predict_paths(loaded, [path], topk=3)[0]["topk"]
    tta = predict_paths(loaded, [path], topk=3, tta="flip")[0]["topk"]

    x = loaded.preprocess([path])
    probs = [
        torch.from_numpy(loaded.runtime.predict(b, race=False)).double().softmax(1) for b in (x, x.flip(-1))
    ]
    mean = ((probs[0] + probs[1]) / 2)[0].numpy()
    assert tta[0]["label"] == "Egyptian cat" and tta[0]["prob"] == pytest.approx(
        mean[tta[0]["index"]], abs=1e-6
    )
    assert [t["index"] for t in tta] == list(np.argsort(-mean)[:3])
    assert tta[0]["prob"] != pytest.approx(plain[0]["prob"], abs=1e-4)  # the mirror changed something
    with pytest.raises(CnnkitError, match="unknown tta"):
        predict_paths(loaded, [path], tta="5crop")


def test_ten_crop_tta_averages_ten_crops_of_the_uncropped_image(tmp_path):
    path = tmp_path / "chelsea.jpg"
    Image.fromarray(data.chelsea()).save(path)
    loaded = load_runtime("mobilenet_v2")  # resize 256, centre crop 224: crops come from the 256 image
    got = predict_paths(loaded, [path], topk=1, tta="10crop")[0]["topk"][0]

    from dataclasses import replace

    from cnnkit.data.preprocess import ten_crop

    big = replace(loaded.preprocess, size=loaded.preprocess.scaled_size, crop_pct=1.0)([path])
    assert big.shape[-2:] == (256, 256)
    crops = ten_crop(big, (224, 224))
    mean = torch.from_numpy(loaded.runtime.predict(crops, race=False)).double().softmax(1).mean(0)
    assert got["label"] == "Egyptian cat" and got["prob"] == pytest.approx(float(mean.max()), abs=1e-6)
