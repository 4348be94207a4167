"""The parts of the training engine on real digits: every optimizer learns, every
schedule shapes the learning rate as documented, auxiliary-head losses are added with
the network's weight, and early stopping ends a run that stops improving."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import cnnkit
from cnnkit.data import build_datamodule
from cnnkit.errors import CnnkitError
from cnnkit.train import TrainConfig
from cnnkit.train.config import OPTIMIZERS, parse_image_size, parse_max_time
from cnnkit.train.module import ClassifierModule, EpochMetrics
from cnnkit.train.optim import DEFAULT_LR, build_optimizer, build_scheduler, learning_rate


@pytest.fixture(scope="module")
def digits_batch() -> tuple[torch.Tensor, torch.Tensor]:
    dm = build_datamodule("digits", batch_size=128, image_size=(28, 28), augment=None)
    return next(iter(dm.train_dataloader()))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_lowers_the_loss_on_real_digits(name: str, digits_batch: tuple) -> None:
    x, y = digits_batch
    torch.manual_seed(0)
    model = cnnkit.create_model("lenet5", num_classes=10)
    optimizer = build_optimizer(model.parameters(), TrainConfig(optimizer=name, schedule="none"))
    assert optimizer.param_groups[0]["lr"] == DEFAULT_LR[name]
    first = F.cross_entropy(model(x), y).item()
    for _ in range(20):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    # Plain SGD at Keras' 0.01 moves slowly from LeNet's initial weights; the adaptive ones fast.
    assert F.cross_entropy(model(x), y).item() < first - (
        0.001 if name in ("sgd", "momentum", "nesterov") else 0.5
    )


def test_sgd_variants_and_rmsprop_use_the_classic_settings() -> None:
    params = list(torch.nn.Linear(2, 2).parameters())
    groups = {
        name: build_optimizer(params, TrainConfig(optimizer=name)).param_groups[0] for name in OPTIMIZERS
    }
    assert (groups["sgd"]["momentum"], groups["momentum"]["momentum"]) == (0.0, 0.9)
    assert groups["nesterov"]["nesterov"] and not groups["momentum"]["nesterov"]
    assert groups["rmsprop"]["alpha"] == 0.9  # Keras' rho


def lr_trace(schedule: str, epochs: int = 12, steps_per_epoch: int = 5, **options: object) -> list[float]:
    """Learning rate in use at each epoch (stepping like Lightning: per step or per epoch)."""
    config = TrainConfig(
        optimizer="momentum", lr=0.1, schedule=schedule, epochs=epochs, schedule_options=options
    )
    optimizer = build_optimizer(torch.nn.Linear(2, 2).parameters(), config)
    spec = build_scheduler(optimizer, config, epochs * steps_per_epoch)
    trace = []
    for _ in range(epochs):
        trace.append(optimizer.param_groups[0]["lr"])
        for _ in range(steps_per_epoch):
            optimizer.step()
            if spec and spec["interval"] == "step":
                spec["scheduler"].step()
        if spec and spec["interval"] == "epoch":
            spec["scheduler"].step(1.0) if schedule == "plateau" else spec["scheduler"].step()
    return trace


def test_schedules_follow_their_documented_shapes() -> None:
    assert lr_trace("none") == [0.1] * 12
    step = lr_trace("step")  # /10 every third of the run
    assert step[:4] == [0.1] * 4 and step[4] == pytest.approx(0.01) and step[8] == pytest.approx(0.001)
    multi = lr_trace("multistep", milestones=[3, 9])
    assert multi[2] == 0.1 and multi[3] == pytest.approx(0.01) and multi[9] == pytest.approx(0.001)
    expo = lr_trace("exponential")
    assert all(b < a for a, b in zip(expo, expo[1:], strict=False)) and expo[-1] > 0.001
    cosine = lr_trace("cosine")
    assert (
        cosine[0] == 0.1
        and all(b < a for a, b in zip(cosine, cosine[1:], strict=False))
        and cosine[-1] < 0.01
    )
    cycle = lr_trace("onecycle")  # warm up from lr/25 to lr over 25% of the run, then anneal
    assert cycle[0] == pytest.approx(0.004) and max(cycle) == pytest.approx(0.1, rel=0.05)
    assert cycle.index(max(cycle)) == 3 and cycle[-1] < 0.01
    plateau = lr_trace("plateau", patience=2)  # the metric never changes: /10 after 3 flat epochs
    assert plateau[:4] == [0.1] * 4 and plateau[4] == pytest.approx(0.01)
    with pytest.raises(
        CnnkitError, match="schedule 'step' has no option gama; its options: step_size, gamma"
    ):
        lr_trace("step", gama=0.5)


def test_default_learning_rates() -> None:
    assert learning_rate(TrainConfig(optimizer="adam", schedule="none")) == 1e-3  # Keras' default
    assert learning_rate(TrainConfig(optimizer="adam", schedule="onecycle")) == pytest.approx(1e-2)  # peak
    assert learning_rate(TrainConfig(optimizer="momentum", lr=0.05)) == 0.05


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")  # no Trainer: the step alone
def test_aux_head_losses_are_added_with_the_networks_weight(digits_batch: tuple) -> None:
    x, y = digits_batch
    x, y = F.interpolate(x[:16], size=(32, 32)), y[:16]
    torch.manual_seed(0)
    model = cnnkit.create_model(
        "googlenet", num_classes=10, in_chans=1, input_size=(1, 32, 32), aux_logits=True
    )
    module = ClassifierModule(model, TrainConfig(label_smoothing=0.1))
    torch.manual_seed(1)  # the aux heads use dropout: same seed, same masks
    loss = module.training_step((x, y), 0)
    torch.manual_seed(1)
    logits, (aux1, aux2) = model(x)
    main = F.cross_entropy(logits, y, label_smoothing=0.1)
    aux = F.cross_entropy(aux1, y, label_smoothing=0.1) + F.cross_entropy(aux2, y, label_smoothing=0.1)
    assert model.aux_weight == 0.3 and aux.item() > 1.0
    assert loss.item() == pytest.approx((main + 0.3 * aux).item(), rel=1e-5)
    model.eval()
    with torch.no_grad():
        module.validation_step((x, y), 0)  # eval mode: logits only, plain cross-entropy
    assert module.val_metrics.compute()["loss"] > 0


def test_epoch_metrics_weight_a_smaller_last_batch_exactly() -> None:
    metrics = EpochMetrics(6)
    classes = torch.arange(6.0)
    logits = -(classes[None, :] - classes[:, None]).abs()  # sample i: class i first, far classes last
    metrics.update(torch.tensor(1.0), logits[:4], torch.tensor([0, 1, 2, 0]))  # 3 of 4 right
    metrics.update(torch.tensor(4.0), logits[4:], torch.tensor([4, 5]))  # 2 of 2 right
    result = metrics.compute()
    assert result["acc"] == pytest.approx(5 / 6) and result["loss"] == pytest.approx((4 * 1 + 2 * 4) / 6)
    assert result["top5"] == pytest.approx(5 / 6)  # sample 3 ranks class 0 last (6th)


def test_early_stopping_ends_a_run_that_stops_improving(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    data = (
        torch.from_numpy(digits.images[:400] * 16).to(torch.uint8)[:, None],
        torch.from_numpy(digits.target[:400]),
    )
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        history = cnnkit.fit(
            "lenet5",
            data,
            epochs=8,
            patience=1,
            min_delta=0.5,
            schedule="plateau",
            out=str(tmp_path),
            verbose=0,
        )
    finally:
        torch.set_num_threads(before)
    # Epoch 0 sets the best; epoch 1 cannot beat it by 0.5: patience 1 is used up.
    assert history.epoch == [1, 2] and history.results["stopped_early"] is True
    assert history.results["epochs"] == 2
    assert history.history["lr"] == [1e-3, 1e-3]  # Adam's default; the plateau schedule had no time to act
    # The stopper's state travels in the checkpoint, which still loads as plain data.
    checkpoint = torch.load(tmp_path / "last.ckpt", map_location="cpu", weights_only=True)
    assert any(key.startswith("EarlyStopping") for key in checkpoint["callbacks"])


def test_option_parsers() -> None:
    assert parse_image_size("32") == (32, 32) and parse_image_size("1x28x28") == (28, 28)
    assert (
        parse_max_time("90s").total_seconds() == 90 and parse_max_time("00:01:30:00").total_seconds() == 5400
    )
    assert math.isclose(parse_max_time("1.5h").total_seconds(), 5400)
    with pytest.raises(CnnkitError, match="image size"):
        parse_image_size("0x5")


def test_channels_last_rule_on_cpu(tmp_path: Path) -> None:
    """The CPU memory-layout rule (backed by bench/bench_channels_last.py): with AVX-512, NHWC
    for depthwise nets and CIFAR-sized inputs, NCHW for LeNet-sized nets and wide ImageNet
    nets at 64 px; with AVX2 kernels, NHWC for every convolutional net; the model is
    untouched; the decision is recorded and a resume keeps it."""
    from cnnkit.models import create_model
    from cnnkit.runs import Run
    from cnnkit.train.engine import cpu_channels_last

    cases = {
        ("cifar_resnet20", (3, 32, 32)): True,
        ("nin", (3, 32, 32)): True,
        ("mobilenet_v2", (3, 64, 64)): True,
        ("lenet5", (1, 28, 28)): False,
        ("resnet18", (3, 64, 64)): False,
    }
    for (name, size), want in cases.items():
        model = create_model(name, input_size=size)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        assert cpu_channels_last(model, size, capability="AVX512") is want, name
        assert cpu_channels_last(model, size, capability="AVX2") is True, name
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    for capability in ("AVX2", "AVX512"):  # nothing to decide for text
        assert cpu_channels_last(create_model("text_cnn"), capability=capability) is False

    out = tmp_path / "run"
    cnnkit.fit("lenet5", "digits", epochs=1, image_size=(28, 28), out=str(out), verbose=0, schedule="none")
    config = json.loads((out / "config.json").read_text())
    assert isinstance(config["resolved"]["channels_last"], bool)
    config["resolved"]["channels_last"] = flipped = not config["resolved"]["channels_last"]
    (out / "config.json").write_text(json.dumps(config))
    cnnkit.fit(resume=str(out), epochs=2, verbose=0)
    assert Run.load(out).config["resolved"]["channels_last"] is flipped  # resumed with its own layout
    pinned = tmp_path / "pinned"
    cnnkit.fit(
        "lenet5", "digits", epochs=1, image_size=(28, 28), out=str(pinned), verbose=0, channels_last=True
    )
    assert Run.load(pinned).config["resolved"]["channels_last"] is True
