"""Image folders made in the test from real CIFAR-10 images: broken files skipped and listed,
splits made and saved, layout errors explained, the memory-mapped cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import need
from PIL import Image
from test_preprocess import png_header

from cnnkit.data import build_datamodule
from cnnkit.data.folder_dataset import DecodeCounter
from cnnkit.data.sources import load_cifar_data
from cnnkit.errors import CnnkitError

CLASSES = ["cat", "dog", "ship"]


@pytest.fixture(scope="module")
def cifar_images() -> dict[str, list[np.ndarray]]:
    data = load_cifar_data(need("datasets", "cifar-10-batches-py"), limit=400)
    x, y = data.splits["train"]
    out: dict[str, list[np.ndarray]] = {name: [] for name in CLASSES}
    for image, label in zip(x, y, strict=True):
        name = data.classes[int(label)]
        if name in out and len(out[name]) < 20:
            out[name].append(image.permute(1, 2, 0).numpy())
    return out


def write_folder(root: Path, images: dict[str, list[np.ndarray]], classes=CLASSES, count: int = 20) -> Path:  # noqa: ANN001
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i, array in enumerate(images[name][:count]):
            ext = "png" if i % 2 else "jpg"
            Image.fromarray(array).save(root / name / f"{name}_{i:03d}.{ext}")
    return root


def test_broken_files_are_skipped_listed_and_split_saved(tmp_path: Path, cifar_images) -> None:  # noqa: ANN001
    root = write_folder(tmp_path / "images", cifar_images)
    (root / "cat" / "zero.jpg").write_bytes(b"")
    big = Image.fromarray(cifar_images["dog"][0]).resize((224, 224))
    big.save(root / "dog" / "whole.jpg", quality=90)
    jpeg = (root / "dog" / "whole.jpg").read_bytes()
    (root / "dog" / "truncated.jpg").write_bytes(jpeg[: len(jpeg) * 6 // 10])
    (root / "ship" / "notes.png").write_text("this is text, not a PNG")
    (root / "ship" / "bomb.png").write_bytes(png_header(12_000, 12_000))  # 1.4e8 px declared, no pixels
    run = tmp_path / "run"
    dm = build_datamodule(root, batch_size=8, run_dir=run, image_size=32, num_workers=0, augment="default")

    skipped = dict(dm.skipped)
    assert set(skipped) == {"cat/zero.jpg", "dog/truncated.jpg", "ship/notes.png", "ship/bomb.png"}
    assert "0 bytes" in skipped["cat/zero.jpg"] and "truncated" in skipped["dog/truncated.jpg"]
    assert "(12000x12000) has more pixels than the limit" in skipped["ship/bomb.png"]
    assert dm.describe()["skipped"] == 4
    listed = (run / "skipped_files.txt").read_text().splitlines()
    assert sorted(line.split("\t")[0] for line in listed) == sorted(skipped)
    assert dm.classes == CLASSES and dm.input_size == (3, 32, 32)
    assert dm.split_sizes() == {"train": 49, "val": 6, "test": 6}  # 61 good images, 10 % + 10 %
    saved = json.loads((run / "split.json").read_text())
    assert sorted(sum(saved["files"].values(), [])) == sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and p.name not in {"zero.jpg", "truncated.jpg", "notes.png", "bomb.png"}
    )
    # Every batch of the training loader is finite and normalised: no broken sample slips in.
    for x, y in dm.train_dataloader():
        assert torch.isfinite(x).all() and x.dtype == torch.float32 and y.max() < 3


def test_given_splits_named_valid_are_used(tmp_path: Path, cifar_images) -> None:  # noqa: ANN001
    write_folder(tmp_path / "train", cifar_images, count=16)
    valid = {k: v[16:] for k, v in cifar_images.items()}
    write_folder(tmp_path / "valid", valid, count=4)
    dm = build_datamodule(tmp_path, batch_size=4, num_workers=0, test_fraction=0.25)
    assert dm.split_sizes() == {"train": 36, "val": 12, "test": 12}


def test_classes_differing_between_splits_is_an_error(tmp_path: Path, cifar_images) -> None:  # noqa: ANN001
    write_folder(tmp_path / "train", cifar_images, count=3)
    write_folder(tmp_path / "val", cifar_images, classes=["cat", "dog"], count=3)
    with pytest.raises(
        CnnkitError, match=r"classes differ between train/ and val/.*only in train: \['ship'\]"
    ):
        build_datamodule(tmp_path)


def test_empty_and_single_class_folders_are_errors(tmp_path: Path, cifar_images) -> None:  # noqa: ANN001
    (tmp_path / "empty").mkdir()
    with pytest.raises(CnnkitError, match="no class sub-folders"):
        build_datamodule(tmp_path / "empty")
    (tmp_path / "noimages" / "cat").mkdir(parents=True)
    (tmp_path / "noimages" / "dog").mkdir(parents=True)
    with pytest.raises(CnnkitError, match="no readable images"):
        build_datamodule(tmp_path / "noimages")
    write_folder(tmp_path / "single", cifar_images, classes=["cat"], count=5)
    with pytest.raises(CnnkitError, match="only one class"):
        build_datamodule(tmp_path / "single")
    with pytest.raises(CnnkitError, match="does not exist"):
        build_datamodule(tmp_path / "missing")


def test_cache_is_read_and_nothing_is_decoded_after_it(tmp_path: Path, cifar_images) -> None:  # noqa: ANN001
    root = write_folder(tmp_path / "images", cifar_images, count=12)
    plain = build_datamodule(root, batch_size=7, image_size=40, num_workers=0)
    decoded_val = torch.cat([x for x, _ in plain.val_dataloader()])
    cached = build_datamodule(
        root, batch_size=7, image_size=40, num_workers=0, cache=True, cache_dir=tmp_path / "cache"
    )
    assert cached.mean == plain.mean  # same pixels in the cache as from decoding
    shutil.rmtree(root)  # the images are gone: only the memmap can serve the epochs now
    before = DecodeCounter.count
    epochs = [torch.cat([x for x, _ in cached.train_dataloader()]) for _ in range(2)]
    assert DecodeCounter.count == before
    assert epochs[0].shape == (28, 3, 40, 40) and not torch.equal(epochs[0], epochs[1])  # reshuffled
    assert torch.equal(torch.cat([x for x, _ in cached.val_dataloader()]), decoded_val)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1  # no temp file left behind


def test_eval_preprocess_matches_the_evaluation_loader(tmp_path: Path, cifar_images) -> None:  # noqa: ANN001
    root = write_folder(tmp_path / "images", cifar_images, count=10)
    for resize in ("stretch", "aspect"):
        dm = build_datamodule(root, batch_size=4, image_size=(48, 40), num_workers=0, resize=resize)
        x, _ = next(iter(dm.val_dataloader()))
        files = [root / rel for rel, _ in dm.files["val"][: len(x)]]
        again = dm.eval_preprocess(files)
        assert again.shape == (len(x), 3, 48, 40) and len(x) >= 3 and dm.eval_preprocess.resize == resize
        assert torch.equal(again, x)


def test_exif_rotated_photos_load_upright(tmp_path: Path, cifar_images) -> None:  # noqa: ANN001
    """Phone photos store pixels sideways plus an EXIF orientation: sizes and pixels are upright."""
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    for kind in ("upright", "sideways"):
        for name in CLASSES:
            (tmp_path / kind / name).mkdir(parents=True)
            for i, array in enumerate(cifar_images[name][:6]):
                wide = Image.fromarray(array).resize((48, 32))  # 48 wide, 32 high
                if kind == "upright":
                    wide.save(tmp_path / kind / name / f"{i}.png")
                else:
                    wide.transpose(Image.ROTATE_90).save(tmp_path / kind / name / f"{i}.png", exif=exif)
    upright, sideways = (
        build_datamodule(tmp_path / k, batch_size=64, num_workers=0) for k in ("upright", "sideways")
    )
    assert upright.input_size == sideways.input_size == (3, 32, 48)
    assert torch.equal(next(iter(sideways.val_dataloader()))[0], next(iter(upright.val_dataloader()))[0])
