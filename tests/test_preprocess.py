"""The one preprocessing path (cnnkit.preprocess) on real photos: every input kind gives the
same tensor, EXIF orientation and odd modes are handled, the resize/crop geometry is the
documented one, and every bad image is one clear line - decompression bombs included."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.errors import CnnkitError
from cnnkit.preprocess import (
    DEFAULT_MAX_IMAGE_PIXELS,
    IMAGENET_MEAN,
    MAX_PIXELS_ENV,
    TF_MEAN,
    TF_STD,
    Preprocess,
    normalization,
)

skimage_data = pytest.importorskip("skimage.data")


def png_header(width: int, height: int) -> bytes:
    """A real PNG signature + IHDR chunk (valid CRC) declaring ``width`` x ``height`` RGB, no pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def chelsea() -> np.ndarray:
    return skimage_data.chelsea()  # 300 x 451 RGB, a real photo of a cat


def test_importing_prediction_does_not_import_lightning() -> None:
    code = (
        "import sys, cnnkit.preprocess, cnnkit.predict, cnnkit.runs, cnnkit.data.sources\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning', 'torchmetrics')]\n"
        "print(heavy)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_paths_bytes_pil_and_arrays_give_the_same_tensor(tmp_path: Path, chelsea: np.ndarray) -> None:
    path = tmp_path / "chelsea.png"
    Image.fromarray(chelsea).save(path)
    prep = Preprocess(size=(160, 200), resize="aspect")
    from_path = prep(path)
    assert from_path.shape == (1, 3, 160, 200) and from_path.dtype == torch.float32
    for other in (str(path), path.read_bytes(), Image.open(path), chelsea, chelsea.transpose(2, 0, 1)):
        assert torch.equal(prep(other), from_path)
    assert torch.equal(prep.load_one(path), from_path[0])
    floats = chelsea.astype(np.float32) / 255  # float arrays in [0, 1]
    assert torch.equal(prep(floats), from_path)


def test_exif_orientation_is_applied(tmp_path: Path, chelsea: np.ndarray) -> None:
    # A camera stores the pixels sideways and says "rotate 90 degrees clockwise" in EXIF.
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(chelsea).transpose(Image.ROTATE_90).save(tmp_path / "sideways.png", exif=exif)
    Image.fromarray(chelsea).save(tmp_path / "upright.png")
    prep = Preprocess(size=(300, 451))
    assert torch.equal(prep(tmp_path / "sideways.png"), prep(tmp_path / "upright.png"))


def test_modes_palette_alpha_cmyk_16bit_gray(tmp_path: Path, chelsea: np.ndarray) -> None:
    rgb = Image.fromarray(chelsea)
    prep = Preprocess(size=(64, 64), mean=(0, 0, 0), std=(1, 1, 1))
    base = prep(rgb)
    rgba = rgb.copy()
    rgba.putalpha(128)
    rgba.save(tmp_path / "rgba.png")
    assert torch.equal(prep(tmp_path / "rgba.png"), base)  # alpha dropped, colours kept
    rgb.quantize(256).save(tmp_path / "palette.png")
    assert (prep(tmp_path / "palette.png") - base).abs().mean() < 0.03  # 256 colours: close
    rgb.convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    assert (prep(tmp_path / "cmyk.jpg") - base).abs().mean() < 0.03
    camera = skimage_data.camera()  # 512 x 512 gray, 8 bits
    Image.fromarray(camera.astype(np.uint16) * 257).save(tmp_path / "camera16.png")
    assert Image.open(tmp_path / "camera16.png").mode == "I;16"
    gray = Preprocess(size=(64, 64), channels=1, mean=(0,), std=(1,))
    assert torch.equal(gray(tmp_path / "camera16.png"), gray(camera))  # scaled, not clipped to white
    as_rgb = prep(camera)  # gray to three equal channels
    assert as_rgb.shape == (1, 3, 64, 64) and torch.equal(as_rgb[:, 0], as_rgb[:, 2])
    assert gray(rgb).shape == (1, 1, 64, 64)


def test_resize_modes_and_centre_crop_geometry(chelsea: np.ndarray) -> None:
    image = Image.fromarray(chelsea)  # 451 wide, 300 high
    raw = dict(mean=(0, 0, 0), std=(1, 1, 1))
    # torchvision's "resize shorter side to 256, centre crop 224", written with crop_pct
    timm = Preprocess(size=(224, 224), resize="aspect", crop_pct=0.875, **raw)
    assert timm.scaled_size == (256, 256)
    by_hand = image.resize((385, 256), Image.BILINEAR, reducing_gap=3.0).crop((80, 16, 304, 240))
    expected = torch.from_numpy(np.asarray(by_hand).transpose(2, 0, 1).copy()).float() / 255
    assert torch.allclose(timm(image)[0], expected, atol=1e-6)
    # stretch to 64x48 then the centre 56x40 (a run trained with random_crop)
    crop = Preprocess(size=(56, 40), resize_size=(64, 48), **raw)
    full = Preprocess(size=(64, 48), **raw)(image)[0]
    assert torch.equal(crop(image)[0], full[:, 4:60, 4:44])
    with pytest.raises(CnnkitError, match="must be positive and fit inside"):
        Preprocess(size=(80, 80), resize_size=(64, 64))


def test_constants_normalisation_and_the_json_record(tmp_path: Path) -> None:
    pixels = np.zeros((8, 8, 3), dtype=np.uint8)
    pixels[..., 1], pixels[..., 2] = 127, 255
    tf = Preprocess(size=(8, 8), mean=TF_MEAN, std=TF_STD, resample="bicubic")
    assert torch.allclose(tf(pixels)[0].mean(dim=(1, 2)), torch.tensor([-127 / 128, 0.0, 1.0]), atol=1e-6)
    assert normalization("imagenet", 3) == (IMAGENET_MEAN, (0.229, 0.224, 0.225))
    assert normalization("imagenet", 1) == ((0.449,), (0.226,))
    assert normalization("tf", 1) == ((127 / 255,), (128 / 255,)) and normalization("dataset", 3) is None
    prep = Preprocess(size=(200, 180), resize="aspect", resample="bicubic", crop_pct=0.9, max_image_pixels=10)
    record = json.loads(json.dumps(prep.to_dict()))
    assert "max_image_pixels" not in record and record["size"] == [200, 180]
    assert Preprocess.from_dict({**record, "from_a_future_version": 1}) == prep
    for bad, message in (
        (dict(resize="fill"), "unknown resize mode"),
        (dict(resample="cubic"), "unknown resample filter"),
        (dict(channels=2), "channels=2"),
        (dict(channels=1), "mean/std need 1 values"),
        (dict(crop_pct=1.5), "crop_pct=1.5"),
    ):
        with pytest.raises(CnnkitError, match=message):
            Preprocess(**bad)


def test_every_bad_image_is_one_clear_line(
    tmp_path: Path, chelsea: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    Image.fromarray(chelsea).save(tmp_path / "whole.jpg", quality=90)
    jpeg = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (tmp_path / "zero.png").write_bytes(b"")
    (tmp_path / "notes.jpg").write_text("a text file, not a photo\n")
    (tmp_path / "warns.png").write_bytes(png_header(10_000, 10_000))  # 1e8 px: Pillow only warns
    (tmp_path / "bomb.png").write_bytes(png_header(100_000, 100_000))  # 1e10 px: Pillow raises
    (tmp_path / "folder").mkdir()
    prep = Preprocess()
    cases = {
        "missing.jpg": "does not exist",
        "folder": "is a directory",
        "zero.png": "is empty (0 bytes)",
        "notes.jpg": "cannot read",
        "truncated.jpg": "cannot decode image",
        "warns.png": "(10000x10000) has more pixels than the limit of 89,478,485",
        "bomb.png": "has more pixels than the limit of 89,478,485",
    }
    for name, message in cases.items():
        with pytest.raises(CnnkitError) as info:
            prep(tmp_path / name)
        text = str(info.value)
        assert message in text and name in text and "\n" not in text, text
    with pytest.raises(CnnkitError, match=r"upload.png \(10000x10000\) has more pixels"):
        prep.load_one(png_header(10_000, 10_000), name="upload.png")
    with pytest.raises(CnnkitError, match=r"<0 bytes> is empty"):
        prep(b"")
    # The limit is an option: per record, or for the process through the environment.
    small = Preprocess(size=(32, 32), max_image_pixels=100_000)
    with pytest.raises(CnnkitError, match=r"\(451x300\) has more pixels than the limit of 100,000"):
        small(chelsea_path := tmp_path / "whole.jpg")
    monkeypatch.setenv(MAX_PIXELS_ENV, "135299")
    with pytest.raises(CnnkitError, match="limit of 135,299"):
        Preprocess(size=(32, 32))(chelsea_path)
    monkeypatch.setenv(MAX_PIXELS_ENV, "135300")  # exactly 451 x 300 is allowed
    assert Preprocess(size=(32, 32))(chelsea_path).shape == (1, 3, 32, 32)
    assert DEFAULT_MAX_IMAGE_PIXELS == 89_478_485
