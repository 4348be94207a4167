"""Real datasets through the data package: MNIST/Fashion-MNIST IDX, CIFAR-10 batches, the
embedded digits and user arrays."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnkit.data import build_datamodule
from cnnkit.data.sources import FASHION_MNIST_CLASSES, load_cifar_data, load_idx_data
from cnnkit.errors import CnnkitError


def test_mnist_idx_full_sizes_and_first_labels(mnist_raw: Path) -> None:
    data = load_idx_data(mnist_raw)
    x, y = data.splits["train"]
    assert x.shape == (60000, 1, 28, 28) and x.dtype == torch.uint8
    assert data.splits["test"][0].shape == (10000, 1, 28, 28)
    assert y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert data.splits["test"][1][:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert data.classes == [str(i) for i in range(10)]


def test_mnist_datamodule_from_dataset_folder_computes_stats(mnist_raw: Path) -> None:
    # The dataset folder (parent of raw/) works too; MNIST stats are computed, not assumed.
    dm = build_datamodule(mnist_raw.parent, batch_size=64, limit=6000, val_fraction=0.1)
    assert dm.split_sizes() == {"train": 5400, "val": 600, "test": 6000}
    assert dm.input_size == (1, 28, 28) and dm.has_test
    assert dm.mean[0] == pytest.approx(0.1237, abs=0.01) and dm.std[0] == pytest.approx(0.302, abs=0.01)
    x, y = next(iter(dm.val_dataloader()))
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape == (64, 1, 28, 28)


def test_dataset_names_resolve_to_the_shared_folders(
    mnist_raw: Path, fashion_raw: Path, cifar10_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--data MNIST`` as the issue types it: names map to ../shared/datasets."""
    from cnnkit.data.sources import detect_format, resolve_dataset

    assert Path(resolve_dataset("MNIST")).samefile(mnist_raw)
    assert Path(resolve_dataset("fashion-mnist")).samefile(fashion_raw)
    assert Path(resolve_dataset("CIFAR10")).samefile(cifar10_dir)
    assert [detect_format(n) for n in ("mnist", "FashionMNIST", "cifar-10")] == ["idx", "idx", "cifar"]
    assert build_datamodule("MNIST", batch_size=64).format == "idx"
    (tmp_path / "MNIST").mkdir()  # a folder of that name here wins over the shared dataset
    monkeypatch.chdir(tmp_path)
    assert resolve_dataset("MNIST") == "MNIST"
    monkeypatch.setenv("CNNKIT_SHARED", str(tmp_path / "nowhere"))
    with pytest.raises(CnnkitError, match="CNNKIT_SHARED"):
        resolve_dataset("cifar10")


def test_fashion_mnist_class_names(fashion_raw: Path) -> None:
    data = load_idx_data(fashion_raw.parent, limit=20)
    assert data.classes == FASHION_MNIST_CLASSES
    assert data.classes[9] == "Ankle boot" and data.splits["train"][1][:5].tolist() == [9, 0, 0, 3, 0]


def test_cifar10_classes_labels_and_training_mean(cifar10_dir: Path) -> None:
    data = load_cifar_data(cifar10_dir, limit=10000)  # first batch only: fast
    x, y = data.splits["train"]
    assert data.classes[:3] == ["airplane", "automobile", "bird"] and len(data.classes) == 10
    assert y[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert x.shape == (10000, 3, 32, 32)
    dm = build_datamodule(cifar10_dir, limit=10000, val_fraction=0.0)
    assert dm.mean == pytest.approx((0.4914, 0.4822, 0.4465), abs=0.005)
    assert dm.input_size == (3, 32, 32) and dm.split_sizes()["train"] == 10000


def test_digits_default_source_and_saved_split(tmp_path: Path) -> None:
    dm = build_datamodule("digits", batch_size=32, run_dir=tmp_path)
    sizes = dm.split_sizes()
    assert sum(sizes.values()) == 1797 and sizes["val"] == pytest.approx(180, abs=3)
    assert dm.num_classes == 10 and dm.input_size == (1, 8, 8) and dm.has_test
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (32, 1, 8, 8) and x.dtype == torch.float32
    assert (tmp_path / "split.json").is_file()
    # A second module with the same run_dir reuses the saved split even with another seed.
    again = build_datamodule("digits", run_dir=tmp_path, seed=123)
    assert torch.equal(again.splits["val"][1], dm.splits["val"][1])
    assert torch.equal(again.splits["val"][0], dm.splits["val"][0])


def test_arrays_nhwc_float_and_channel_forcing() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((60, 12, 10, 3)).astype(np.float32)
    y = np.arange(60) % 3
    dm = build_datamodule((x, y), classes=["a", "b", "c"], in_chans=1, image_size=(16, 16), batch_size=8)
    assert dm.classes == ["a", "b", "c"] and dm.input_size == (1, 16, 16)
    xb, yb = next(iter(dm.train_dataloader()))
    assert xb.shape == (8, 1, 16, 16) and yb.dtype == torch.int64
    gray = build_datamodule((torch.from_numpy((x[..., 0] * 255).astype(np.uint8)), y), in_chans=3)
    assert gray.input_size == (3, 12, 10)


@pytest.mark.parametrize(
    "data, message",
    [
        (("/no/such/folder"), "does not exist"),
        ((np.ones((4, 8, 8), np.float32) * 2, np.zeros(4)), "in [0, 1]"),
        ((np.zeros((4, 8, 8), np.uint8), np.zeros(3)), "4 images but 3 labels"),
    ],
)
def test_clear_errors(data: object, message: str) -> None:
    with pytest.raises(CnnkitError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build_datamodule(data)


def test_missing_path_error_is_one_line() -> None:
    with pytest.raises(CnnkitError) as info:
        build_datamodule(Path("/no/such/images"))
    assert "\n" not in str(info.value) and "Pass" in str(info.value)


class _Hostile:
    """Unpickling this calls ``os.system`` - what a poisoned ``data_batch_1`` would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        import os

        return (os.system, (f"touch {self.marker}",))


def test_hostile_cifar_pickle_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    folder = tmp_path / "cifar"
    folder.mkdir()
    payload = {b"data": _Hostile(marker), b"labels": [0, 1]}
    (folder / "data_batch_1").write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(CnnkitError) as info:
        build_datamodule(folder)
    message = str(info.value)
    assert "data_batch_1" in message and "posix system" in message and "\n" not in message
    assert not marker.exists()
    # The same refusal for a pickle that reaches for builtins (eval) instead
    (folder / "data_batch_1").write_bytes(
        b"\x80\x02cbuiltins\neval\nq\x00X\x0b\x00\x00\x00print('hi')q\x01\x85q\x02Rq\x03."
    )
    with pytest.raises(CnnkitError, match="builtins eval"):
        load_cifar_data(folder)


def test_real_cifar_batches_pass_the_restricted_unpickler(cifar10_dir: Path) -> None:
    from cnnkit.data.sources import read_cifar_batch

    batch = read_cifar_batch(cifar10_dir / "data_batch_1")
    assert batch[b"data"].shape == (10000, 3072) and batch[b"data"].dtype == np.uint8
    assert read_cifar_batch(cifar10_dir / "batches.meta")[b"label_names"][0] == b"airplane"
