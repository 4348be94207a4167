"""From a :class:`cnnkit.train.TrainConfig` to the network a transfer run trains.

:func:`build_network` is also what rebuilds a run's network for inference
(``load_weights=False``): the architecture follows from ``model``, ``regime``, ``head``
and ``cut`` in ``config.json``; the weights then come from the run's checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from cnnkit.errors import CnnkitError
from cnnkit.transfer.regimes import TransferNet, TransferPlan, check_cut, make_head

# TransferPlan's keyword options, read from the TrainConfig fields of the same names.
PLAN_OPTIONS = ("warmup_epochs", "freeze", "unfreeze_at", "train_bn", "backbone_lr_mult")


def weights_record(name: str, pretrained: Any = True) -> Any:
    """The weights record (``cnnkit.models.get_weights``) for ``pretrained`` True or a TAG;
    None for a file path or no weights."""
    from cnnkit.models import get_weights, model_info

    if pretrained is True:
        return get_weights(name)
    if isinstance(pretrained, str) and pretrained in (model_info(name).weights or {}):
        return get_weights(name, pretrained)
    return None


def _is_path(value: Any, name: str) -> bool:
    from cnnkit.models import model_info

    return isinstance(value, (str, Path)) and str(value) not in (model_info(name).weights or {})


def resolve_pretrained(config: Any) -> bool | str | None:
    """``config.pretrained``; with a regime and none given, the model's own weights - or a
    one-line error when it has none."""
    from cnnkit.models import model_info, models_with_weights

    if config.pretrained not in (None, False):
        if _is_path(config.pretrained, config.model) and not Path(config.pretrained).expanduser().exists():
            tags = ", ".join(model_info(config.model).weights or {}) or "none"
            raise CnnkitError(
                f"--pretrained {config.pretrained} is neither a weights tag of {config.model} (tags: {tags}) "
                "nor an existing file."
            )
        return config.pretrained
    if config.regime is None:
        return None
    if config.model not in models_with_weights():
        raise CnnkitError(
            f"--regime {config.regime} starts from pretrained weights, and {config.model} ships none; pass "
            f"--pretrained PATH or use one of {', '.join(models_with_weights())}."
        )
    return True


def pretrained_normalization(
    config: Any, channels: int
) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The mean/std the weights were trained with (averaged for grayscale), else None."""
    pretrained = resolve_pretrained(config)
    record = weights_record(config.model, pretrained) if isinstance(config.model, str) else None
    pre = getattr(record, "preprocess", None)
    if pre is None:
        return None
    mean, std = tuple(pre.mean), tuple(pre.std)
    if channels == 1 and len(mean) == 3:
        mean, std = (sum(mean) / 3,), (sum(std) / 3,)
    return mean, std


def check_class_count(path: str, model: nn.Module, num_classes: int) -> None:
    """A file's classifier must have the data's class count when it is used as is (no regime)."""
    from cnnkit.models.weights import read_state_dict

    state = read_state_dict(Path(path).expanduser())
    names = {id(p): n for n, p in model.named_parameters()}
    weight = next((names[id(p)] for p in model.get_classifier().parameters() if p.dim() == 2), None)
    if weight in state and state[weight].shape[0] != num_classes:
        raise CnnkitError(
            f"{path} has a {state[weight].shape[0]}-class classifier but the data has {num_classes} classes; "
            "add --regime finetune (or features) to train a new head on it."
        )


def build_network(
    config: Any,
    num_classes: int,
    in_chans: int,
    input_size: tuple[int, ...] | None = None,
    load_weights: bool = True,
) -> tuple[nn.Module, TransferPlan | None]:
    """The network for ``config`` and its freezing plan (None without a regime).

    ``config.regime`` must be resolved already ("auto" is decided by the advisor first).
    """
    from cnnkit.models.registry import create_model

    pretrained = resolve_pretrained(config)
    if config.regime == "auto":
        raise CnnkitError("regime 'auto' must be resolved by cnnkit.transfer.advise before building.")
    options = dict(config.model_options)
    if input_size is not None:
        options["input_size"] = tuple(input_size)
    source = pretrained if load_weights else None
    if source not in (None, False) and config.regime is None and _is_path(source, config.model):
        probe = create_model(config.model, num_classes=num_classes, in_chans=in_chans, **options)
        check_class_count(source, probe, num_classes)
    model = create_model(
        config.model, num_classes=num_classes, in_chans=in_chans, pretrained=source or False, **options
    )
    if config.regime is None:
        return model, None
    if config.cut is not None:
        if config.regime != "truncate":
            raise CnnkitError(f"--cut goes with --regime truncate, not {config.regime}.")
        info = check_cut(model, config.cut)
        head = make_head(
            int(info["num_chs"]), num_classes, config.head, config.head_hidden, config.head_dropout
        )
        model = TransferNet(model, head, cut=config.cut)
    elif config.regime == "truncate":
        raise CnnkitError("--regime truncate needs --cut STAGE (see 'cnnkit stages MODEL').")
    elif config.head == "mlp":
        head = make_head(int(model.num_features), num_classes, "mlp", config.head_hidden, config.head_dropout)
        model = TransferNet(model, head)
    options = {name: getattr(config, name) for name in PLAN_OPTIONS}
    return model, TransferPlan(model, config.regime, **options)


def network_for_run(config: dict[str, Any], num_classes: int, input_size: tuple[int, ...]) -> nn.Module:
    """The architecture a run trained (zoo model or transfer network), without weights:
    load the run's checkpoint into it. For :meth:`cnnkit.runs.Run.load_model`."""
    from cnnkit.train.config import TrainConfig

    cfg = TrainConfig.from_json(config)
    if cfg.regime == "auto":  # a run that stopped before the advisor's choice was saved
        raise CnnkitError("this run's regime was never decided (advice.json missing); train it again.")
    model, _ = build_network(cfg, num_classes, int(input_size[0]), tuple(input_size), load_weights=False)
    return model.eval()
