"""Training recipes: the hyper-parameters that reproduce a paper's number, as data.

Each recipe is one TOML file in this folder (read with the standard library's
``tomllib``)::

    description = "..."               # one line
    paper = "..."                     # the paper whose setup it follows
    [target]                          # metric "test_error" | "test_acc", the paper's number,
    metric = "test_error"             # the goal we accept, and where the numbers come from
    paper = 0.0875
    goal = 0.09
    source = "../shared/reference/README.md: ..."
    [why]                             # one entry for every departure from the paper
    epochs = "..."
    [config]                          # fields of cnnkit.train.TrainConfig, nothing else
    model = "cifar_resnet20"
    data = "shared:datasets/cifar-10-batches-py"

``data`` names a dataset under the shared folder symbolically (``shared:...``), resolved
through :func:`cnnkit.shared.shared_path`, so no machine's path is written in a recipe.

    >>> from cnnkit.recipes import load_recipe, train_options
    >>> cnnkit.fit(**train_options(load_recipe("lenet5")), epochs=3)   # explicit keys win
"""

from __future__ import annotations

import dataclasses
import difflib
import shlex
import tomllib
from pathlib import Path
from typing import Any

from cnnkit.errors import CnnkitError
from cnnkit.shared import shared_path

RECIPE_DIR = Path(__file__).resolve().parent
SHARED_PREFIX = "shared:"
META_KEYS = ("name", "description", "paper", "target", "why", "data_ref")
TOP_LEVEL = {"description", "paper", "target", "why", "config"}
TARGET_KEYS = {"metric", "paper", "goal", "source"}
METRICS = ("test_error", "test_acc")


def list_recipes() -> list[str]:
    """Names of the shipped recipes, sorted (the file names without ``.toml``)."""
    return sorted(p.stem for p in RECIPE_DIR.glob("*.toml"))


def resolve_data(data: Any) -> Any:
    """``"shared:datasets/MNIST/raw"`` -> the path inside the shared folder; other values unchanged."""
    if isinstance(data, str) and data.startswith(SHARED_PREFIX):
        return str(shared_path(*Path(data[len(SHARED_PREFIX) :]).parts))
    return data


DATASET_NAMES = {"cifar-10-batches-py": "CIFAR-10", "FashionMNIST": "Fashion-MNIST", "MNIST": "MNIST"}


def dataset_name(recipe: dict[str, Any]) -> str:
    """A readable dataset name for tables: ``shared:datasets/cifar-10-batches-py`` -> ``CIFAR-10``."""
    ref = str(recipe.get("data_ref", recipe.get("data")))
    parts = [p for p in ref.replace(":", "/").split("/") if p not in ("shared", "datasets", "raw", "", "..")]
    name = parts[0] if parts else ref
    return DATASET_NAMES.get(name, name)


def _config_fields() -> dict[str, dataclasses.Field]:
    from cnnkit.train.config import TrainConfig

    return {f.name: f for f in dataclasses.fields(TrainConfig)}


def _check(path: Path, raw: dict[str, Any]) -> None:
    """Every key known, every required part present: a one-line error naming the first problem."""
    where = f"recipe {path.stem!r} ({path})"
    extra = sorted(set(raw) - TOP_LEVEL)
    if extra:
        raise CnnkitError(f"{where}: unknown section {extra[0]!r}; use {', '.join(sorted(TOP_LEVEL))}.")
    for key in ("description", "paper", "config", "target"):
        if key not in raw:
            raise CnnkitError(f"{where} has no {key!r}; add it.")
    fields = _config_fields()
    for key in raw["config"]:
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise CnnkitError(f"{where}: {key!r} is not a TrainConfig field.{hint}")
    for key in ("model", "data", "epochs"):
        if key not in raw["config"]:
            raise CnnkitError(f"{where}: [config] has no {key!r}; every recipe names it.")
    target = raw["target"]
    unknown = sorted(set(target) - TARGET_KEYS)
    if unknown or target.get("metric") not in METRICS or "source" not in target:
        raise CnnkitError(
            f"{where}: [target] needs metric ({' or '.join(METRICS)}) and source, "
            f"optionally paper and goal; got {sorted(target)}."
        )


def load_recipe(name: str | Path) -> dict[str, Any]:
    """The recipe ``name`` (or a path to your own ``.toml``) as a flat dict: TrainConfig field
    values (``data`` resolved to a path) plus ``name``, ``description``, ``paper``, ``target``
    (dict), ``why`` (dict: topic -> reason) and ``data_ref`` (the data as written). An unknown
    name or key raises :class:`CnnkitError`."""
    path = RECIPE_DIR / f"{name}.toml"
    if str(name).endswith(".toml"):
        path = Path(name)
        if not path.is_file():
            raise CnnkitError(f"recipe file {str(path)!r} does not exist; check the path.")
        name = path.stem
    if not path.is_file():
        close = difflib.get_close_matches(name, list_recipes(), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise CnnkitError(f"unknown recipe {name!r}.{hint} See 'cnnkit recipes' for the list.")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise CnnkitError(f"recipe {name!r} ({path}) is not valid TOML: {exc}.") from None
    _check(path, raw)
    config = dict(raw["config"])
    if isinstance(config.get("image_size"), list):
        config["image_size"] = tuple(config["image_size"])
    recipe = {
        "name": name,
        "description": raw["description"],
        "paper": raw["paper"],
        "target": dict(raw["target"]),
        "why": dict(raw.get("why", {})),
        "data_ref": config["data"],
    }
    config["data"] = resolve_data(config["data"])
    recipe.update(config)
    return recipe


def train_options(recipe: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """The recipe's TrainConfig values with ``overrides`` on top (what ``cnnkit.fit`` takes)."""
    options = {k: v for k, v in recipe.items() if k not in META_KEYS}
    options.update(overrides)
    return options


def recipe_config(name: str, **overrides: Any) -> Any:
    """A validated :class:`~cnnkit.train.TrainConfig` for the recipe, ``overrides`` applied."""
    from cnnkit.train.config import TrainConfig

    return TrainConfig(**train_options(load_recipe(name), **overrides)).validate()


def _flag_value(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={_flag_value(v).replace(' ', '')}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(str(v) for v in value) + "]"
    return str(value)


def shown_data(ref: Any) -> Any:
    """``shared:datasets/MNIST/raw`` -> ``../shared/datasets/MNIST/raw``: the path as typed from
    the repository root on the standard layout (for documentation, never for loading)."""
    if isinstance(ref, str) and ref.startswith(SHARED_PREFIX):
        return "../shared/" + ref[len(SHARED_PREFIX) :]
    return ref


def recipe_flags(recipe: dict[str, Any], resolved: bool = True) -> list[str]:
    """The recipe as ``cnnkit train`` flags (they work without ``--recipe``); ``data`` is the
    resolved path, or with ``resolved=False`` as typed from the repository root."""
    fields = _config_fields()
    args: list[str] = []
    for key, value in train_options(recipe).items():
        if key == "data" and not resolved:
            value = shown_data(recipe["data_ref"])
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool) and fields[key].metadata.get("nargs") != "?":
            args.append(flag if value else "--no-" + key.replace("_", "-"))
        elif key == "pretrained" and value is True:
            args.append(flag)
        elif key == "image_size":
            args += [flag, "x".join(str(v) for v in value)]
        else:
            args += [flag, _flag_value(value)]
    return args


def recipe_command(name: str, expand: bool = False, **extra: Any) -> str:
    """The one command that reruns a recipe: ``cnnkit train --recipe NAME`` (``expand``: every
    flag spelled out, as it runs today without ``--recipe``); ``extra`` adds flags (``seed=1``)."""
    tail = [f"--{k.replace('_', '-')} {shlex.quote(str(v))}" for k, v in extra.items()]
    if not expand:
        return " ".join(["cnnkit train --recipe", name, *tail])
    flags = recipe_flags(load_recipe(name), resolved=False)
    return " ".join(["cnnkit train", *(shlex.quote(a) for a in flags), *tail])


__all__ = [
    "META_KEYS",
    "RECIPE_DIR",
    "dataset_name",
    "list_recipes",
    "load_recipe",
    "recipe_command",
    "recipe_config",
    "recipe_flags",
    "resolve_data",
    "train_options",
]


def paper_text(target: dict[str, Any], missing: str = "-") -> str:
    """A recipe target's published number as text: '8.75% error', 'acc 0.925', or ``missing``."""
    if target.get("paper") is None:
        return missing
    if target["metric"] == "test_error":
        return f"{100 * target['paper']:.2f}% error"
    return f"acc {target['paper']:.3f}"
