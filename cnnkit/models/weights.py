"""Loading weights safely: ``.safetensors`` or ``torch.load(weights_only=True)``.

A checkpoint is data, never code: pickled objects other than tensors and plain
containers are refused, so a downloaded file cannot run anything on load.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from cnnkit.errors import CnnkitError


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state_dict from a ``.safetensors`` file or a ``torch.save`` file.

    Lightning checkpoints (a dict with a ``state_dict`` entry whose keys start with
    ``model.``) are unwrapped, so a cnnkit run's ``best.ckpt`` loads directly.
    """
    path = Path(path)
    if not path.is_file():
        raise CnnkitError(
            f"weights file {path} does not exist; pass the path of a .safetensors or .pth file."
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, pickled code, wrong format
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CnnkitError(
            f"cannot read weights from {path}: {first}. Use a state_dict saved with torch.save or safetensors."
        ) from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
        if all(k.startswith("model.") for k in state):
            state = {k[len("model.") :]: v for k, v in state.items()}
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CnnkitError(f"{path} does not hold a state_dict (a mapping of names to tensors).")
    return state


def load_weights(model: nn.Module, source: str | Path | dict[str, torch.Tensor]) -> nn.Module:
    """Load a state_dict into ``model`` with strict key and shape matching.

    On a mismatch the error lists the missing and unexpected keys (and shape
    differences) so the user sees at once whether it is the wrong architecture or
    just a different number of classes.
    """
    state = source if isinstance(source, dict) else read_state_dict(source)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or wrong:
        name = getattr(model, "model_name", type(model).__name__)

        def show(items: list[str]) -> str:
            return ", ".join(items[:5]) + (f" (+{len(items) - 5} more)" if len(items) > 5 else "")

        lists = {
            "missing keys": missing,
            "unexpected keys": unexpected,
            "shape mismatches (file vs model)": wrong,
        }
        parts = "; ".join(f"{label}: {show(keys)}" for label, keys in lists.items() if keys)
        raise CnnkitError(f"weights do not fit {name}: {parts}. Check the architecture name and num_classes.")
    model.load_state_dict(state, strict=True)
    return model
