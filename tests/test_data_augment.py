"""Batched augmentation, preprocessing ops and the loader transform on real digits."""

from __future__ import annotations

import pytest
import torch

from cnnkit.data import AugmentConfig, augment_batch, build_datamodule, ten_crop
from cnnkit.data.augment import resolve_augment
from cnnkit.data.transforms import random_crop, rotation_matrix_batch, sampling_grid, warp
from cnnkit.errors import CnnkitError


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    """64 real 8x8 digits upscaled to 32x32, as floats in [0, 1]."""
    from sklearn.datasets import load_digits

    images = torch.from_numpy(load_digits().images[:64] / 16.0).float()[:, None]
    return torch.nn.functional.interpolate(images, size=(32, 32), mode="bilinear", align_corners=False)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_identity_config_leaves_batch_unchanged(digits: torch.Tensor) -> None:
    assert AugmentConfig().is_identity and resolve_augment({}, 1) is None
    assert torch.equal(augment_batch(digits, AugmentConfig(), gen()), digits)


def test_horizontal_flip_flips_about_half(digits: torch.Tensor) -> None:
    out = augment_batch(digits, AugmentConfig(horizontal_flip=True), gen())
    flipped = [torch.equal(o, d.flip(-1)) for o, d in zip(out, digits, strict=True)]
    kept = [torch.equal(o, d) for o, d in zip(out, digits, strict=True)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert 16 < sum(flipped) < 48


def test_rotation_by_90_degrees_is_rot90(digits: torch.Tensor) -> None:
    rotated = warp(digits, rotation_matrix_batch(len(digits), 90.0, (32, 32)), "constant")
    # Positive angles turn the content counter-clockwise on screen, like torch.rot90(k=1).
    assert torch.allclose(rotated, torch.rot90(digits, k=1, dims=(2, 3)), atol=1e-4)
    assert not torch.allclose(rotated, torch.rot90(digits, k=-1, dims=(2, 3)), atol=1e-2)
    back = warp(rotated, rotation_matrix_batch(len(digits), -90.0, (32, 32)), "constant")
    assert torch.allclose(back, digits, atol=1e-4)


def test_sampling_grid_equals_affine_grid() -> None:
    matrices = torch.randn(6, 2, 3, generator=gen())
    for size in ((7, 11), (32, 32)):
        expected = torch.nn.functional.affine_grid(matrices, [6, 1, *size], align_corners=False)
        assert torch.allclose(sampling_grid(matrices, size), expected, atol=1e-6)


def test_shift_moves_content_and_constant_fill_uses_cval(digits: torch.Tensor) -> None:
    config = AugmentConfig(width_shift_range=0.25, fill_mode="constant", cval=0.5)
    out = augment_batch(digits, config, gen())
    assert out.shape == digits.shape and not torch.allclose(out, digits)
    assert (out[..., 0] == 0.5).any() or (out[..., -1] == 0.5).any()  # uncovered columns hold cval


def test_pad_crop_is_a_whole_pixel_shift_without_interpolation(digits: torch.Tensor) -> None:
    out = augment_batch(digits, AugmentConfig(pad_crop=4, fill_mode="constant"), gen())
    padded = torch.nn.functional.pad(digits, (4, 4, 4, 4))
    shifts = []
    for o, p in zip(out, padded, strict=True):  # every output is one exact window of the padded image
        found = [(t, l) for t in range(9) for l in range(9) if torch.equal(o, p[:, t : t + 32, l : l + 32])]
        assert found, "a pad-and-crop output is not an exact window: it was resampled"
        shifts.append(found[0])
    assert len(set(shifts)) > 10  # the windows vary from image to image
    with pytest.raises(CnnkitError, match="whole number of pixels"):
        AugmentConfig(pad_crop=2.5)


def test_random_erasing_erases_the_expected_fraction(digits: torch.Tensor) -> None:
    base = torch.full((400, 3, 32, 32), 2.0)  # outside [0, 1], so every erased pixel shows
    square = AugmentConfig(random_erasing=1.0, erasing_area=(0.25, 0.25), erasing_aspect=1.0)
    out = augment_batch(base, square, gen())
    erased = (out != 2.0).float().mean(dim=(1, 2, 3))
    assert torch.allclose(erased, torch.full_like(erased, 0.25))  # a 16x16 square in 32x32
    values = out[out != 2.0]
    assert values.min() >= 0 and values.max() <= 1 and values.std() > 0.2  # random pixels in [0, 1]
    half = AugmentConfig(random_erasing=0.5)
    touched = (augment_batch(base, half, gen(1)) != 2.0).flatten(1).any(1).float().mean()
    assert 0.4 < touched < 0.6


def test_same_seed_same_batch_and_different_seed_differs(digits: torch.Tensor) -> None:
    config = AugmentConfig.preset("strong", channels=1)
    a = augment_batch(digits, config, gen(7))
    assert torch.equal(a, augment_batch(digits, config, gen(7)))
    assert not torch.equal(a, augment_batch(digits, config, gen(8)))
    dm1 = build_datamodule("digits", batch_size=32, augment="strong", seed=3)
    dm2 = build_datamodule("digits", batch_size=32, augment="strong", seed=3)
    x1, y1 = next(iter(dm1.train_dataloader()))
    x2, y2 = next(iter(dm2.train_dataloader()))
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    x3, _ = next(iter(dm1.train_dataloader()))  # the next epoch: new order and new randomness
    assert not torch.equal(x1, x3)


def test_random_crop_patches_and_center_crop_for_evaluation(digits: torch.Tensor) -> None:
    patches = random_crop(digits, (20, 24), gen())
    assert patches.shape == (64, 1, 20, 24)
    # Each patch is an exact window of its image.
    image, patch = digits[0, 0], patches[0, 0]
    windows = image.unfold(0, 20, 1).unfold(1, 24, 1)
    assert (windows == patch).flatten(2).all(-1).any()
    dm = build_datamodule("digits", image_size=12, augment={"random_crop": 10}, batch_size=16)
    assert dm.input_size == (1, 10, 10)
    assert next(iter(dm.train_dataloader()))[0].shape == (16, 1, 10, 10)
    assert next(iter(dm.val_dataloader()))[0].shape == (16, 1, 10, 10)


def test_ten_crop_shapes_order_and_mirrors(digits: torch.Tensor) -> None:
    crops = ten_crop(digits[:5], 24)
    assert crops.shape == (50, 1, 24, 24)
    per_image = crops.view(5, 10, 1, 24, 24)
    assert torch.equal(per_image[:, 0], digits[:5, :, :24, :24])  # top-left
    assert torch.equal(per_image[:, 2], digits[:5, :, 8:, 8:])  # bottom-right
    assert torch.equal(per_image[:, 4], digits[:5, :, 4:28, 4:28])  # centre
    assert torch.equal(per_image[:, 5:], per_image[:, :5].flip(-1))
    with pytest.raises(CnnkitError, match="larger"):
        ten_crop(digits, 40)


def test_parse_text_presets_and_unknown_knob() -> None:
    config = AugmentConfig.parse(
        "rotation_range=10,horizontal_flip=true,zoom_range=(0.9,1.1),fill_mode=reflect"
    )
    assert config.rotation_range == 10 and config.horizontal_flip and config.zoom_bounds == (0.9, 1.1)
    assert config.fill_mode == "reflect"
    assert AugmentConfig.parse("default", channels=1) == AugmentConfig.preset("default", 1)
    assert not AugmentConfig.preset("default", 1).horizontal_flip  # digits are not mirror-symmetric
    assert AugmentConfig.preset("default", 3).horizontal_flip
    assert AugmentConfig.parse("default,zoom_range=0", channels=1).zoom_bounds == (1.0, 1.0)
    with pytest.raises(CnnkitError, match="unknown augmentation knob 'rotation'.*rotation_range"):
        AugmentConfig.parse("rotation=10")
    with pytest.raises(CnnkitError, match="fill_mode"):
        AugmentConfig(fill_mode="wrap")


def test_device_path_gives_the_same_evaluation_batches() -> None:
    dm = build_datamodule("digits", batch_size=50, augment="default", image_size=16)
    cpu_x, cpu_y = next(iter(dm.val_dataloader()))
    dm.device_transforms = True
    raw_x, raw_y = next(iter(dm.val_dataloader()))
    assert raw_x.dtype == torch.uint8
    x, y = dm.on_after_batch_transfer((raw_x, raw_y), 0)  # no trainer attached = evaluation
    assert torch.allclose(x, cpu_x, atol=1e-6) and torch.equal(y, cpu_y)
    train_x, _ = next(iter(dm.train_dataloader()))
    assert train_x.dtype == torch.uint8
