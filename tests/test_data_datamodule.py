"""The datamodule contract the training engine relies on: normalisation modes, attributes,
CIFAR-100 layout, and a real Lightning fit on both transform paths."""

from __future__ import annotations

import pickle
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

import cnnkit
from cnnkit.data import IMAGENET_MEAN, CnnkitDataModule, build_datamodule
from cnnkit.data.sources import load_cifar_data
from cnnkit.errors import CnnkitError


def test_normalize_modes_on_digits() -> None:
    raw = build_datamodule("digits", normalize="none", batch_size=64)
    x, _ = next(iter(raw.val_dataloader()))
    assert raw.mean == (0.0,) and x.min() >= 0 and x.max() <= 1
    tf = build_datamodule("digits", normalize="tf", batch_size=64)
    x_tf, _ = next(iter(tf.val_dataloader()))
    assert torch.allclose(x_tf, (x * 255 - 127) / 128, atol=1e-5)
    assert build_datamodule("digits", normalize="imagenet", in_chans=3).mean == IMAGENET_MEAN
    custom = build_datamodule("digits", normalize=((0.5,), (0.25,)), in_chans=3)
    assert custom.mean == (0.5, 0.5, 0.5) and custom.std == (0.25, 0.25, 0.25)
    data = build_datamodule("digits", batch_size=2000)
    x_all, _ = next(iter(data.val_dataloader()))
    assert abs(float(x_all.mean())) < 0.15  # training-set stats roughly centre held-out data too
    with pytest.raises(CnnkitError, match="unknown normalize"):
        build_datamodule("digits", normalize="zscore")


def test_contract_attributes_and_describe(tmp_path: Path) -> None:
    dm = CnnkitDataModule("digits", batch_size=16, image_size=28, augment="light", run_dir=tmp_path)
    assert dm.num_classes == 10  # attributes set the module up on first use
    dm.setup("fit")  # idempotent
    assert dm.input_size == (1, 28, 28) and dm.has_test and dm.skipped == []
    info = dm.describe()
    assert info["format"] == "digits" and info["augment"]["width_shift_range"] == 0.1
    assert info["splits"] == dm.split_sizes() and info["mean"] == list(dm.mean)
    no_test = build_datamodule("digits", test_fraction=0.0)
    assert not no_test.has_test
    with pytest.raises(CnnkitError, match="no test split"):
        no_test.test_dataloader()


def test_cifar100_layout_with_fine_labels(tmp_path: Path, cifar10_dir: Path) -> None:
    # CIFAR-100's python layout (train/test/meta, fine labels), filled with real CIFAR-10 pixels.
    source = load_cifar_data(cifar10_dir, limit=300)
    x, y = source.splits["train"]
    for name, part in (("train", slice(0, 200)), ("test", slice(200, 300))):
        batch = {b"data": x[part].reshape(-1, 3072).numpy(), b"fine_labels": y[part].tolist()}
        (tmp_path / name).write_bytes(pickle.dumps(batch))
    names = [n.encode() for n in source.classes]
    (tmp_path / "meta").write_bytes(pickle.dumps({b"fine_label_names": names}))
    dm = build_datamodule(tmp_path, batch_size=20)
    assert dm.format == "cifar" and dm.classes == source.classes
    assert dm.split_sizes() == {"train": 180, "val": 20, "test": 100}


class TinyTask(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = cnnkit.create_model("lenet5", num_classes=10)
        self.train_inputs: list[torch.Tensor] = []

    def training_step(self, batch, batch_idx):  # noqa: ANN001, ANN201
        x, y = batch
        self.train_inputs.append(x)
        return torch.nn.functional.cross_entropy(self.net(x), y)

    def validation_step(self, batch, batch_idx):  # noqa: ANN001, ANN201
        x, y = batch
        assert x.dtype == torch.float32 and x.shape[1:] == (1, 28, 28)
        self.log("val_loss", torch.nn.functional.cross_entropy(self.net(x), y))

    def configure_optimizers(self):  # noqa: ANN201
        return torch.optim.SGD(self.parameters(), lr=0.05)


@pytest.mark.parametrize("on_device", [False, True])
def test_lightning_fit_gets_normalised_augmented_floats(on_device: bool) -> None:
    dm = build_datamodule("digits", batch_size=32, image_size=28, augment="default")
    dm.device_transforms = on_device
    task = TinyTask()
    trainer = L.Trainer(
        max_epochs=2, limit_train_batches=3, limit_val_batches=2, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
    )  # fmt: skip
    trainer.fit(task, dm)
    assert len(task.train_inputs) == 6
    assert all(x.dtype == torch.float32 and x.shape == (32, 1, 28, 28) for x in task.train_inputs)
    assert abs(float(torch.cat(task.train_inputs).mean())) < 0.5  # normalised, not raw 0..255
    assert not torch.equal(task.train_inputs[0], task.train_inputs[3])  # epoch 2 differs
    assert np.isfinite(float(trainer.callback_metrics["val_loss"]))
