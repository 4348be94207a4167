"""The fast cached-folder path (issue 13): the chunked normalise is the formula, and the
reused output buffers never overwrite a batch someone still holds - checked on a folder of
real CIFAR-10 photos big enough (batch 32 at 112 px, 4.8 MB) for the buffer pool to act."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import need
from PIL import Image

from cnnkit.data import build_datamodule
from cnnkit.data.loaders import BufferPool
from cnnkit.data.sources import load_cifar_data
from cnnkit.preprocess import NORMALIZE_CHUNK, normalize

MEAN, STD = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)


def test_normalize_is_the_formula_in_every_chunking() -> None:
    gen = torch.Generator().manual_seed(0)
    per_image = 3 * 40 * 40
    for n in (1, 3, NORMALIZE_CHUNK // per_image + 5):  # one chunk, and a batch spanning chunks
        x = torch.randint(0, 256, (n, 3, 40, 40), dtype=torch.uint8, generator=gen)
        m, s = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
        expected = (x.double() / 255 - m.double()) / s.double()
        assert torch.allclose(normalize(x, MEAN, STD).double(), expected, atol=1e-5)
        floats = x.float() / 255
        assert torch.allclose(normalize(floats, MEAN, STD, 1.0).double(), expected, atol=1e-5)
        assert torch.equal(floats, x.float() / 255)  # the input is left alone
        out = torch.empty(x.shape)
        assert normalize(x, MEAN, STD, out=out) is out
    single = normalize(x[0], MEAN, STD)  # (C, H, W)
    assert torch.allclose(single.double(), expected[0], atol=1e-5)


def test_buffer_pool_reuses_only_free_buffers() -> None:
    pool = BufferPool(size=3)
    shape = (32, 3, 112, 112)
    a = pool.empty(shape)
    first = a.data_ptr()
    view = a[5]
    del a
    assert pool.empty(shape).data_ptr() != first  # a view still holds it
    del view
    b = pool.empty(shape)
    assert b.data_ptr() == first  # free again: reused
    array = b.numpy()
    del b
    assert pool.empty(shape).data_ptr() != first  # a numpy array of it holds it
    del array
    held = len(pool.storages)
    assert pool.empty((2, 3, 8, 8)).shape == (2, 3, 8, 8)  # below MIN_BYTES: plain allocation
    assert len(pool.storages) == held


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = load_cifar_data(need("datasets", "cifar-10-batches-py"), limit=200)
    x, y = data.splits["train"]
    root = tmp_path_factory.mktemp("photos")
    for i in range(96):
        folder = root / data.classes[int(y[i])]
        folder.mkdir(exist_ok=True)
        Image.fromarray(x[i].permute(1, 2, 0).numpy()).resize((112, 112), Image.BICUBIC).save(
            folder / f"{i}.jpg"
        )
    return root


def test_cached_batches_equal_decoded_and_are_never_overwritten(photo_folder: Path, tmp_path: Path) -> None:
    options = dict(batch_size=32, image_size=112, val_fraction=0.0, test_fraction=0.0, normalize="imagenet")
    decoded = build_datamodule(photo_folder, num_workers=0, **options)
    cached = build_datamodule(photo_folder, cache=True, cache_dir=tmp_path / "cache", **options)
    reference = [x for x, _ in decoded.train_dataloader()]
    loader = cached.train_dataloader()
    assert loader.num_workers == 0  # cached, no CPU augmentation: loaded in the main process
    kept = [(x, x.clone()) for x, _ in loader]  # every batch of epoch 0 held at once
    assert len(kept) == len(reference) >= 3
    for (x, snapshot), ref in zip(kept, reference, strict=True):
        assert torch.equal(x, snapshot)  # not overwritten by a later batch
        assert torch.equal(x, ref)  # the cache serves the decoded pixels, normalised alike
    del kept
    pointers = {x.data_ptr() for _ in range(2) for x, _ in loader}  # batches dropped as they go
    assert len(pointers) <= cached.pipeline.buffers.size  # so the pool reuses its buffers
    augmented = build_datamodule(
        photo_folder, cache=True, cache_dir=tmp_path / "cache", augment="default", **options
    )
    assert augmented.train_dataloader().num_workers == augmented.num_workers  # warps keep workers
