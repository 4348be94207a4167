"""Transfer regimes on a real pretrained backbone (EfficientNet-Lite0, ImageNet weights) and
real images (scikit-learn's handwritten digits, upscaled to 64 px): each regime freezes
exactly the stage groups it says, BatchNorm statistics of frozen stages do not move, a
short run trains, and bad input is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import cnnkit
from cnnkit.errors import CnnkitError
from cnnkit.train import TrainConfig
from cnnkit.transfer import TransferNet, backbone_groups, build_network, trainable_by_group

MODEL = "efficientnet_lite0"
SIZE = (3, 64, 64)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy((d.images[:160] * 16).clip(0, 255)).to(torch.uint8)[:, None]
    return x, torch.from_numpy(d.target[:160])


def plan_for(**options: object) -> tuple[torch.nn.Module, object]:
    config = TrainConfig(model=MODEL, pretrained=True, **options)
    return build_network(config, 10, 3, SIZE)


def group_sizes(plan: object) -> dict[str, int]:
    return {row["group"]: row["params"] for row in plan.describe()}


def bn_params(plan: object, group: str) -> int:
    return sum(p.numel() for m in plan.bn[group] for p in m.parameters(recurse=False))


def test_features_and_truncate_train_only_the_new_head() -> None:
    model, plan = plan_for(regime="features")
    counts = trainable_by_group(plan)
    assert counts.pop("head") == 1280 * 10 + 10 and set(counts.values()) == {0}
    assert plan.names[:-1] == [f["name"] for f in model.feature_info]  # stage groups, input -> output

    mlp, plan = plan_for(regime="features", head="mlp", head_hidden=32)
    assert isinstance(mlp, TransferNet) and trainable_by_group(plan)["head"] == 1280 * 32 + 32 + 32 * 10 + 10
    assert sum(p.numel() for p in mlp.parameters() if p.requires_grad) == 1280 * 32 + 32 + 32 * 10 + 10

    cut, plan = plan_for(regime="truncate", cut="stages.2")
    counts = trainable_by_group(plan)
    assert list(counts) == ["stages.0", "stages.1", "stages.2", "head"]  # later stages never run
    assert counts["head"] == 40 * 10 + 10 and sum(counts.values()) == 410
    with torch.no_grad():
        assert cut(torch.zeros(2, *SIZE)).shape == (2, 10)


def test_finetune_warms_up_then_unfreezes_with_a_lower_backbone_rate() -> None:
    _, plan = plan_for(regime="finetune", warmup_epochs=1, lr=1e-3)
    sizes = group_sizes(plan)
    plan.apply(1)
    assert [g for g, n in trainable_by_group(plan).items() if n] == ["head"]
    plan.apply(2)
    assert trainable_by_group(plan) == sizes  # everything trains after the warm-up
    groups = plan.param_groups(TrainConfig(lr=1e-3))
    assert [(g["name"], g["lr"]) for g in groups] == [("backbone", pytest.approx(1e-4)), ("head", 1e-3)]

    _, plan = plan_for(regime="finetune", warmup_epochs=0, freeze=2)
    plan.apply(1)
    counts = trainable_by_group(plan)
    assert counts["stages.0"] == counts["stages.1"] == 0 and counts["stages.2"] == sizes["stages.2"]


def test_gradual_unfreezing_opens_one_group_from_the_top_per_listed_epoch() -> None:
    _, plan = plan_for(regime="finetune", unfreeze_at=[2, 4])
    opened = {}
    for epoch in (1, 2, 3, 4):
        plan.apply(epoch)
        opened[epoch] = [g for g, n in trainable_by_group(plan).items() if n]
    assert opened == {
        1: ["head"],
        2: ["conv_head", "head"],
        3: ["conv_head", "head"],
        4: ["stages.4", "conv_head", "head"],
    }


def test_train_bn_makes_batchnorm_trainable_in_frozen_stages_and_full_trains_all() -> None:
    _, plan = plan_for(regime="features", train_bn=True)
    counts = trainable_by_group(plan)
    for group in plan.names[:-1]:
        assert counts[group] == bn_params(plan, group) > 0  # BN affine only, convs stay frozen
    _, plan = plan_for(regime="full")
    assert trainable_by_group(plan) == group_sizes(plan)
    assert plan.param_groups(TrainConfig(lr=1e-3))[0]["lr"] == 1e-3  # full: one rate


def running_stats(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if "running" in k}


def test_features_run_trains_the_head_on_cached_features_and_batchnorm_stats_do_not_move(
    digits: tuple[torch.Tensor, torch.Tensor], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CNNKIT_FEATURES_CACHE", str(tmp_path / "cache"))
    before = running_stats(cnnkit.create_model(MODEL, pretrained=True))
    common = dict(
        pretrained=True, regime="features", epochs=8, image_size=64, augment=None, batch_size=32, verbose=0
    )
    history = cnnkit.fit(MODEL, digits, out=str(tmp_path / "run"), **common)
    after = running_stats(history.model)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert history.results["regime"] == "features" and history.epoch == list(range(1, 9))
    assert history.history["train_loss"][-1] < history.history["train_loss"][0]
    # Measured end to end on the test images (not on the cache): well above chance (0.1).
    assert history.results["test_acc"] >= 0.4
    config = (tmp_path / "run" / "config.json").read_text()
    assert '"transfer_groups"' in config and '"regime": "features"' in config
    entries = sorted((tmp_path / "cache").rglob("meta.json"))
    assert len(entries) == 2  # train and val embedded once each, kept for the next run
    # The run's network is rebuilt from config.json alone and takes its checkpoint.
    from cnnkit.models.weights import load_weights, read_state_dict
    from cnnkit.transfer import network_for_run

    net = network_for_run(json.loads(config), 10, (3, 64, 64))
    load_weights(net, read_state_dict(tmp_path / "run" / "best.ckpt"))
    probe = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(net(probe), history.model.eval()(probe), atol=1e-5)
        # ... and so does Run.load, which predict, evaluate, export and serve go through.
        from cnnkit.runs import Run

        loaded = Run.load(tmp_path / "run").load_model()
        assert torch.allclose(loaded(probe), history.model.eval()(probe), atol=1e-5)
    again = cnnkit.fit(MODEL, digits, out=str(tmp_path / "again"), **common)
    assert sorted((tmp_path / "cache").rglob("meta.json")) == entries  # reused, nothing new
    assert again.history["val_acc"] == history.history["val_acc"]


def test_finetune_run_moves_only_the_unfrozen_batchnorm(
    digits: tuple[torch.Tensor, torch.Tensor], tmp_path: Path
) -> None:
    x, y = digits
    before = running_stats(cnnkit.create_model(MODEL, pretrained=True))
    history = cnnkit.fit(
        MODEL, (x[:96], y[:96]), pretrained=True, regime="finetune", warmup_epochs=0, freeze=4, epochs=1,
        image_size=48, augment=None, batch_size=32, out=str(tmp_path / "run"), verbose=0,
    )  # fmt: skip
    after = running_stats(history.model)
    # Frozen: the first four stage groups. Trains: the top group (named by the model's stages).
    top = dict(backbone_groups(history.model))[history.model.feature_info[-1]["name"]]
    names = {n for n, p in history.model.named_parameters() if any(p is q for q in top)}
    expected = {k for k in before if k.rsplit(".", 1)[0] + ".weight" in names}
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert expected and moved == expected


def test_bad_transfer_input_is_one_line(
    digits: tuple[torch.Tensor, torch.Tensor],
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cnnkit.cli import main

    monkeypatch.chdir(tmp_path)
    cases = {
        ("--model", MODEL, "--regime", "truncate", "--cut", "stage9", "--image-size", "32"): (
            "efficientnet_lite0 has no stage 'stage9'; cut at one of stages.0, stages.1, stages.2, stages.4, conv_head"
        ),
        (
            "--model",
            "lenet5",
            "--regime",
            "features",
        ): "--regime features starts from pretrained weights, and lenet5",
        (
            "--model",
            MODEL,
            "--regime",
            "truncate",
            "--image-size",
            "32",
        ): "--regime truncate needs --cut STAGE",
    }
    for args, message in cases.items():
        assert main(["train", *args, "--epochs", "1"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"cnnkit: error: {message}"), err

    x, y = digits
    keep = y < 3
    lenet = cnnkit.create_model("lenet5", num_classes=10)
    torch.save(lenet.state_dict(), tmp_path / "lenet10.pth")
    with pytest.raises(
        CnnkitError, match="has a 10-class classifier but the data has 3 classes; add --regime"
    ):
        cnnkit.fit(
            "lenet5", (x[keep], y[keep]), pretrained=str(tmp_path / "lenet10.pth"), epochs=1, verbose=0
        )


@pytest.mark.slow
def test_auto_measures_the_data_explains_its_choice_and_trains_it(
    digits: tuple[torch.Tensor, torch.Tensor],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    """Grayscale digits, 13 per class: small and unlike ImageNet -> truncate at a mid-level stage."""
    monkeypatch.setenv("CNNKIT_FEATURES_CACHE", str(tmp_path / "cache"))
    history = cnnkit.fit(
        MODEL, digits, regime="auto", epochs=3, image_size=64, out=str(tmp_path / "run"), verbose=2
    )
    advice = json.loads((tmp_path / "run" / "advice.json").read_text())
    assert advice["regime"] == "truncate" and advice["cut"] == "stages.4" and not advice["large"]
    assert advice["images_per_class"] == pytest.approx(128 / 10)
    assert (
        advice["pixel_distance"] > advice["thresholds"]["similar_max_pixel_distance"]
    )  # gray vs colour photos
    assert 0 < advice["confidence"] < 1 and 0 < advice["entropy"] < 1 and advice["feature_shift"] > 0
    assert "transfer advice: 13 training images per class is small" in capsys.readouterr().out
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["regime"], config["cut"]) == ("truncate", "stages.4")  # resume rebuilds without advice
    assert history.results["regime"] == "truncate"


def test_advice_follows_the_two_by_two_matrix() -> None:
    from cnnkit.transfer.advisor import advise

    stages = cnnkit.create_model(MODEL).feature_info
    photo = {"feature_shift": 0.1, "confidence": 0.3, "entropy": 0.5, "pixel_distance": 0.05}
    gray = {"feature_shift": 0.4, "confidence": 0.1, "entropy": 0.7, "pixel_distance": 0.6}
    picks = {
        (n, kind): advise(n, m, stages).regime
        for n in (100, 5000)
        for kind, m in (("photo", photo), ("gray", gray))
    }
    assert picks == {
        (100, "photo"): "features",
        (100, "gray"): "truncate",
        (5000, "photo"): "finetune",
        (5000, "gray"): "full",
    }


def test_photos_measure_closer_to_imagenet_than_digits(digits: tuple[torch.Tensor, torch.Tensor]) -> None:
    """The advisor's similarity numbers on real photos (scikit-image) vs real digits."""
    import skimage.data
    import torch.nn.functional as F

    from cnnkit.preprocess import TF_MEAN, TF_STD
    from cnnkit.transfer import measure_similarity

    photos = [skimage.data.chelsea(), skimage.data.astronaut(), skimage.data.coffee(), skimage.data.rocket()]
    x = torch.stack(
        [F.interpolate(torch.from_numpy(p).permute(2, 0, 1)[None].float(), size=(96, 96))[0] for p in photos]
    )
    gray = F.interpolate(digits[0][:4].float().repeat(1, 3, 1, 1), size=(96, 96))
    mean, std = torch.tensor(TF_MEAN).view(1, 3, 1, 1), torch.tensor(TF_STD).view(1, 3, 1, 1)
    net = cnnkit.create_model(MODEL, pretrained=True)
    photo, digit = (
        measure_similarity(net, (t / 255 - mean) / std, TF_MEAN, TF_STD, (224, 224)) for t in (x, gray)
    )
    assert (
        photo["feature_shift"] < digit["feature_shift"] and photo["pixel_distance"] < digit["pixel_distance"]
    )
    assert photo["confidence"] > digit["confidence"]
