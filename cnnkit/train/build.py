"""What a run trains on and what it trains: the datamodule and the network, from a config.

Four cases, one function (:func:`build_run`):

* a zoo model, trained from its initialisation (the image-size rule below);
* a transfer run (``pretrained`` and/or ``regime``): the weights' own preprocessing, the
  network and freezing plan of :mod:`cnnkit.transfer` (``regime="auto"`` asks the advisor);
* a custom ``nn.Module`` passed to ``cnnkit.fit(model=...)`` (trained as given, at the
  data's size or ``image_size``);
* the text CNN on a ``label<TAB>text`` file (:mod:`cnnkit.data.text`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from cnnkit.errors import CnnkitError
from cnnkit.models.registry import create_model, model_info
from cnnkit.summary import ModelSummary, summary
from cnnkit.train.config import TrainConfig, is_custom_model

# Training images from which the default batch grows from 64 to 256 and ``augment="auto"``
# turns augmentation off: with this much data a few epochs do not overfit, and random
# shifts/rotations slow convergence (LeNet-5 on MNIST: 99.0% in 3 epochs only without).
BIG_DATA = 20_000
ADVICE_FILE = "advice.json"


def default_batch_size(train_images: int) -> int:
    """64, or 256 for 20,000+ training images: fewer, larger steps cost less per image on a
    CPU (LeNet-5 on MNIST: same accuracy in 3 epochs, ~1.5x faster than 64)."""
    return 256 if train_images >= BIG_DATA else 64


def build_run(
    config: TrainConfig, make_datamodule: Any, run_dir: Path | None, verbose: int
) -> dict[str, Any]:
    """``{"dm", "model", "table", "plan", "advice"}`` for ``config`` (``make_datamodule(image_size,
    in_chans, normalize, augment)`` builds an image datamodule; ``augment="auto"`` is decided here)."""
    from cnnkit.data.text import is_text_data

    def make(image_size: Any, in_chans: Any, normalize: Any) -> Any:
        if config.augment != "auto":
            return make_datamodule(image_size, in_chans, normalize, config.augment)
        if config.regime in ("features", "truncate", "auto"):  # frozen backbone: cached features
            return make_datamodule(image_size, in_chans, normalize, None)
        dm = make_datamodule(image_size, in_chans, normalize, "default")
        if dm.split_sizes().get("train", 0) >= BIG_DATA:
            dm.use_augment(None)  # the same loaded images and statistics, no augmentation
        return dm

    out: dict[str, Any] = {"plan": None, "advice": None}
    if is_text_data(config.data):
        out.update(_build_text(config, run_dir))
    elif is_custom_model(config.model):
        dm = make(config.image_size, config.in_chans, config.normalize or "dataset")
        out.update(dm=dm, model=config.model, table=_table(config.model, dm.input_size))
    elif config.regime is not None or config.pretrained not in (None, False):
        out.update(_build_transfer(config, make, run_dir, verbose))
    else:
        dm, model, table = build_model_for_data(config, make)
        out.update(dm=dm, model=model, table=table)
    dm = out["dm"]
    if config.batch_size is None:
        dm.batch_size = default_batch_size(dm.split_sizes().get("train", 0))
    return out


def _table(model: nn.Module, size: tuple[int, ...]) -> Any:
    try:
        return summary(model, tuple(int(d) for d in size))
    except Exception:  # a custom module summary cannot trace: its structure, as PyTorch prints it
        return f"{type(model).__name__}\n{model}"


def _build_text(config: TrainConfig, run_dir: Path | None) -> dict[str, Any]:
    from cnnkit.data.text import TextDataModule

    if not is_custom_model(config.model) and model_info(config.model).kind != "text":
        raise CnnkitError(
            f"{config.data} is text (label<TAB>sentence); train a text model on it, e.g. --model text_cnn."
        )
    dm = TextDataModule(
        config.data, config.batch_size or 32, config.seq_len, config.val_fraction, config.test_fraction,
        config.seed, run_dir,
    )  # fmt: skip
    if is_custom_model(config.model):
        model = config.model
    else:
        options = {"vocab_size": len(dm.vocab), "input_size": (dm.seq_len,), **config.model_options}
        model = create_model(config.model, num_classes=dm.num_classes, **options)
    return {"dm": dm, "model": model, "table": _table(model, dm.input_size)}


def _build_transfer(
    config: TrainConfig, make_datamodule: Any, run_dir: Path | None, verbose: int
) -> dict[str, Any]:
    from cnnkit.transfer import build_network, pretrained_normalization, resolve_pretrained
    from cnnkit.transfer.build import weights_record

    pretrained = resolve_pretrained(config)
    record = weights_record(config.model, pretrained)
    pre = getattr(record, "preprocess", None)
    in_chans = config.in_chans or (pre.channels if pre is not None else None)
    image_size = config.image_size or (
        tuple(pre.size) if pre is not None else tuple(model_info(config.model).input_size[1:])
    )
    normalize = config.normalize
    if normalize is None:
        normalize = pretrained_normalization(config, in_chans or 3) or "dataset"
    dm = make_datamodule(image_size, in_chans, normalize)
    advice = None
    if config.regime == "auto":
        advice = run_advisor(config, dm, pretrained, run_dir, verbose)
        config.regime = advice.regime
        config.cut = config.cut or advice.cut
    model, plan = build_network(config, dm.num_classes, dm.input_size[0], input_size=dm.input_size)
    return {"dm": dm, "model": model, "table": _table(model, dm.input_size), "plan": plan, "advice": advice}


def run_advisor(config: TrainConfig, dm: Any, pretrained: Any, run_dir: Path | None, verbose: int) -> Any:
    """Measure the data against the backbone's source, print the advice, write advice.json."""
    from cnnkit.fileio import write_json_atomic
    from cnnkit.transfer.advisor import advise, measure_similarity, sample_images
    from cnnkit.transfer.build import weights_record

    source = create_model(config.model, pretrained=pretrained, in_chans=dm.input_size[0])
    loader = dm.val_dataloader() if "val" in dm.split_sizes() else dm.train_dataloader()
    x = sample_images(loader)
    record = weights_record(config.model, pretrained)
    size = tuple(record.preprocess.size) if record is not None else None
    similarity = measure_similarity(source, x, dm.mean, dm.std, size)
    per_class = dm.split_sizes()["train"] / max(dm.num_classes, 1)
    advice = advise(per_class, similarity, list(getattr(source, "feature_info", None) or []))
    if verbose:
        print(f"transfer advice: {advice.reason}", flush=True)
    if run_dir is not None:
        write_json_atomic(Path(run_dir) / ADVICE_FILE, advice.to_dict())
    return advice


def build_model_for_data(config: TrainConfig, make_datamodule: Any) -> tuple[Any, nn.Module, ModelSummary]:
    """The datamodule and the zoo model, at the training image size, and the model's summary.

    The image-size rule: ``config.image_size`` if given; else the data's own size if the
    model can take it (a flatten-head net such as LeNet-5 or VGG is *built* for that
    size); else the data is resized to the model's default input size (8x8 digits ->
    28x28 for LeNet-5). "Can take it" is decided by running the model once on a
    zero image of that size (the summary pass), so every architecture is judged by
    what it actually does.
    """
    info = model_info(config.model)
    if info.kind != "image":
        raise CnnkitError(f"{config.model} is a text model; train it on a label<TAB>text .tsv file (--data).")
    normalize = config.normalize or "dataset"
    dm = make_datamodule(config.image_size, config.in_chans, normalize)
    try:
        model, table = _build_and_probe(config, dm.num_classes, dm.input_size)
        return dm, model, table
    except _SizeError as exc:
        if config.image_size is not None:
            h, w = config.image_size
            raise CnnkitError(
                f"{config.model} cannot train on {h}x{w} images: {exc}. "
                f"Use a larger --image-size (its default is {info.input_size[1]}x{info.input_size[2]})."
            ) from None
    dm = make_datamodule(tuple(info.input_size[1:]), config.in_chans, normalize)
    try:
        model, table = _build_and_probe(config, dm.num_classes, dm.input_size)
    except _SizeError as exc:
        raise CnnkitError(f"{config.model} cannot train on this data: {exc}.") from None
    return dm, model, table


class _SizeError(Exception):
    pass


def _build_and_probe(
    config: TrainConfig, num_classes: int, size: tuple[int, ...]
) -> tuple[nn.Module, ModelSummary]:
    size = tuple(int(d) for d in size)
    try:
        model = create_model(
            config.model, num_classes=num_classes, in_chans=size[0], input_size=size, **config.model_options
        )
    except CnnkitError:
        raise
    except Exception as exc:  # e.g. a dense layer of negative width: the input is too small
        raise _SizeError(_first_line(exc)) from exc
    try:
        table = summary(model, size)
    except CnnkitError as exc:
        # summary says "<model> cannot take input HxW: <why>. Its default input size is ..."
        why = _first_line(exc).split(": ", 1)[-1].split(". Its default input size")[0]
        raise _SizeError(why.rstrip(".")) from exc
    return model, table


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
