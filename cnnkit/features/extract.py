"""``extract_features``: a backbone's embeddings of every image of a dataset, cached on disk.

The seeds' "CNN codes": run the frozen network once, keep one vector per image, and train
only a small head on the vectors (:func:`cnnkit.features.fit_head`) - every epoch then costs
a matrix multiply instead of a forward pass through the backbone.

Data come from :func:`cnnkit.data.build_datamodule` (digits, image folders, MNIST IDX,
CIFAR batches, arrays; its splits) as uint8 batches, and are brought to the backbone's input
here: in-memory images on the whole batch (resize with the record's filter, the ``crop_pct``
centre crop), image files by the record itself, exactly as ``cnnkit predict`` reads them;
then ``(x - mean) / std``. With
``views=K``, K augmented copies of each training image (``cnnkit.data.augment_batch``, at
the model's resolution, seeded by (seed, view, batch)) are embedded too, so a head can be
trained with augmentation without ever running the backbone again.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from cnnkit.errors import CnnkitError
from cnnkit.features.backbone import Backbone, embedder, load_backbone
from cnnkit.features.cache import (
    cache_key,
    default_cache_dir,
    entry_dir,
    files_fingerprint,
    read_entry,
    tensor_fingerprint,
    weights_fingerprint,
    write_entry,
)
from cnnkit.features.record import Features
from cnnkit.features.threads import small_on_cpu
from cnnkit.preprocess import Preprocess, one_thread

SPLITS = ("train", "val", "test")
_FILTERS = {"nearest": "nearest", "bilinear": "bilinear", "bicubic": "bicubic"}  # others: bicubic


def scaled_size(pre: Preprocess) -> tuple[int, int]:
    """(H, W) before the centre crop to ``pre.size`` (``resize_size``, else size / crop_pct)."""
    if getattr(pre, "scaled_size", None) is not None:
        return tuple(pre.scaled_size)  # type: ignore[return-value]
    if pre.crop_pct >= 1:
        return tuple(pre.size)  # type: ignore[return-value]
    return (round(pre.size[0] / pre.crop_pct), round(pre.size[1] / pre.crop_pct))


def _center_crop(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    top, left = (x.shape[-2] - size[0]) // 2, (x.shape[-1] - size[1]) // 2
    return x[..., top : top + size[0], left : left + size[1]]


def to_model_size(x: torch.Tensor, pre: Preprocess) -> torch.Tensor:
    """uint8 (N, C, h, w) -> float [0, 1] (N, C, H, W) at ``pre.size``: resize with
    ``pre.resample`` (antialiased when shrinking; "stretch" or "aspect"), then centre crop."""
    x = x.float().div_(255.0)
    target = scaled_size(pre)
    h, w = x.shape[-2:]
    if (h, w) != target:
        if pre.resize == "aspect":
            scale = max(target[0] / h, target[1] / w)
            inter = (max(target[0], round(h * scale)), max(target[1], round(w * scale)))
        else:
            inter = target
        mode = _FILTERS.get(pre.resample, "bicubic")
        options = (
            {} if mode == "nearest" else {"align_corners": False, "antialias": inter[0] < h or inter[1] < w}
        )
        x = F.interpolate(x, size=inter, mode=mode, **options)
        if mode == "bicubic":
            x = x.clamp_(0.0, 1.0)  # bicubic overshoots; PIL clips the same way
        if pre.resize == "aspect":
            x = _center_crop(x, target)
    return _center_crop(x, tuple(pre.size)) if tuple(x.shape[-2:]) != tuple(pre.size) else x


def normalize(x: torch.Tensor, pre: Preprocess) -> torch.Tensor:
    mean = torch.tensor(pre.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(pre.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - mean) / std


# ----------------------------------------------------------------------------- data
def open_data(data: Any, pre: Preprocess, batch_size: int, **data_kwargs: Any) -> Any:
    """A set-up datamodule that yields the images as uint8 with ``pre.channels`` channels.

    Image folders are only scanned and split here; their files are decoded by the record
    (:class:`_FileBatches`). In-memory sources stay at their natural size and are resized
    batch-wise by :func:`to_model_size`.
    An existing ``CnnkitDataModule`` is used as it is.
    """
    from cnnkit.data import CnnkitDataModule, build_datamodule
    from cnnkit.data.sources import detect_format

    if isinstance(data, CnnkitDataModule):
        data.setup()
        return data
    options: dict[str, Any] = {"batch_size": batch_size, "in_chans": pre.channels, "normalize": "none"}
    if detect_format(data) == "folder":  # (used only when the record cannot decode files)
        options.update(image_size=scaled_size(pre), resize=pre.resize)
    options.update(data_kwargs)
    return build_datamodule(data, **options)


class _FileBatches(Dataset):
    """Batches of an image folder's files decoded by the preprocessing record itself
    (``Preprocess.pixels``: its filter, EXIF orientation, crop), as ``cnnkit predict`` does."""

    def __init__(self, root: Path, files: list[tuple[str, int]], pre: Preprocess, batch_size: int) -> None:
        self.root, self.files, self.pre, self.batch_size = root, files, pre, batch_size

    def __len__(self) -> int:
        return -(-len(self.files) // self.batch_size)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self.files[i * self.batch_size : (i + 1) * self.batch_size]
        x = np.stack([self.pre.pixels(self.root / rel, name=rel) for rel, _ in rows])
        return torch.from_numpy(x), torch.tensor([label for _, label in rows], dtype=torch.long)


def raw_batches(dm: Any, split: str, pre: Preprocess) -> Any:
    """The split's images in order, uint8 (N, C, h, w) with labels, no augmentation."""
    if dm.format == "folder" and hasattr(pre, "pixels"):
        dataset = _FileBatches(Path(dm.data).expanduser(), dm.files[split], pre, dm.batch_size)
        return DataLoader(dataset, batch_size=None, num_workers=min(dm.num_workers, len(dataset)))
    if hasattr(dm, "raw_batches"):
        return dm.raw_batches(split)
    return dm._loader(split, train=False, raw=True)


def split_rows(dm: Any, split: str) -> tuple[list[str], str]:
    """Names of the split's rows (file path, or ``"<source split>/<index>"``) and a content hash."""
    where = {"format": dm.format, "size": list(dm.out_size), "channels": dm.channels, "resize": dm.resize}
    if dm.format == "folder":
        files = dm.files[split]
        names = [rel for rel, _ in files]
        return names, tensor_fingerprint(np.frombuffer(str(where).encode(), np.uint8)) + files_fingerprint(
            Path(dm.data).expanduser(), files
        )
    x, y = dm.splits[split]
    made = getattr(dm, "_split_indices", {}) or {}
    if split in made:  # carved out of the source's train pool
        names = [f"train/{int(i)}" for i in made[split]]
    else:
        names = [f"{split}/{i}" for i in range(len(y))]
    return names, tensor_fingerprint(np.frombuffer(str(where).encode(), np.uint8), x, y)


def _splits(dm: Any, split: str | list[str]) -> list[str]:
    have = [s for s in SPLITS if s in dm.split_sizes()]
    wanted = have if split == "all" else ([split] if isinstance(split, str) else list(split))
    for s in wanted:
        if s not in have:
            raise CnnkitError(
                f"the data have no {s!r} split (they have {', '.join(have)}). Pick one of those."
            )
    return wanted


# ----------------------------------------------------------------------------- extraction
def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=not enabled, file=sys.stderr, leave=False)


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    """A CnnkitError raised in a loader worker arrives wrapped in the worker's traceback;
    give the user its own one line (e.g. the file that failed to decode)."""
    try:
        yield
    except CnnkitError as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        if len(lines) <= 1:
            raise
        last = lines[-1].split("CnnkitError: ", 1)[-1]
        raise CnnkitError(last) from None


def _compute(
    backbone: Backbone,
    embed: Any,
    dm: Any,
    split: str,
    views: int,
    augment: Any,
    seed: int,
    device: torch.device,
    progress: bool,
) -> dict[str, np.ndarray]:
    from cnnkit.data import augment_batch

    pre = backbone.preprocess
    n = dm.split_sizes()[split]
    chunks: list[np.ndarray] = []
    view_chunks: list[list[np.ndarray]] = [[] for _ in range(views)]
    labels: list[np.ndarray] = []
    bar = _progress(n * (1 + views), f"features {split}", progress)
    with torch.inference_mode(), bar, _one_line_errors():
        for b, (xb, yb) in enumerate(raw_batches(dm, split, pre)):
            x = to_model_size(xb.to(device), pre)
            with one_thread(small_on_cpu(x)):
                chunks.append(embed(normalize(x, pre)).float().cpu().numpy())
                for k in range(views):
                    g = torch.Generator(device=device).manual_seed(
                        int(np.random.SeedSequence([seed, k, b]).generate_state(1)[0])
                    )
                    view_chunks[k].append(
                        embed(normalize(augment_batch(x.clone(), augment, g), pre)).float().cpu().numpy()
                    )
            labels.append(yb.numpy().astype(np.int64))
            bar.update(len(yb) * (1 + views))
    out = {"embeddings": np.concatenate(chunks).astype(np.float32), "labels": np.concatenate(labels)}
    if views:
        out["views"] = np.stack([np.concatenate(v) for v in view_chunks]).astype(np.float32)
    return out


def extract_features(
    model: Any,
    data: Any,
    *,
    cut: str | None = None,
    preprocess: Preprocess | None = None,
    split: str | list[str] = "all",
    batch_size: int = 64,
    views: int = 0,
    augment: Any = "default",
    seed: int = 0,
    cache_dir: str | Path | bool | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    **data_kwargs: Any,
) -> Features:
    """Embeddings of every image of ``data`` by a frozen ``model``, from the cache when possible.

    ``model``: a zoo name with shipped weights (``"efficientnet_lite0"``), a ``cnnkit train``
    run directory, or an ``nn.Module``. ``data``: anything ``cnnkit.data.build_datamodule``
    reads, or a ``CnnkitDataModule``; ``data_kwargs`` go to it (``val_fraction``, ``seed``,
    ``limit``, ...). ``cut``: a stage name (``model.feature_info``) for pooled intermediate
    features instead of the pre-logits. ``preprocess`` overrides the model's own record.
    ``split``: "all" or a split name (or list). ``views``: K augmented views of the train
    split (``augment``: a preset or knobs, see ``cnnkit.data.AugmentConfig``). ``cache_dir``:
    None = ``$CNNKIT_FEATURES_CACHE``, else the run directory's ``features/``, else
    ``~/.cache/cnnkit/features``; False = no cache. ``device``: default the module's own, or
    the GPU when there is one for a model loaded here.

    Returns a :class:`cnnkit.features.Features` record; ``.cache_hit`` says whether the
    backbone ran. An entry is reused only when model, weights, cut, preprocessing, views
    and the split's content all match (see ``cnnkit.features.cache``).
    """
    if batch_size < 1:
        raise CnnkitError(f"batch_size={batch_size} must be at least 1.")
    if views < 0:
        raise CnnkitError(f"views={views} must be 0 or more.")
    backbone = load_backbone(model, preprocess)
    net, pre = backbone.net, backbone.preprocess
    embed = embedder(net, cut)  # a bad cut fails before any data is read
    dm = open_data(data, pre, batch_size, **data_kwargs)
    if dm.channels != pre.channels:
        raise CnnkitError(f"the data have {dm.channels} channels but {backbone.name} takes {pre.channels}.")
    augment_config = None
    if views:
        from cnnkit.data.augment import resolve_augment

        augment_config = resolve_augment(augment, pre.channels)
        if augment_config is None:
            raise CnnkitError(f"views={views} needs an augmentation; augment={augment!r} is none.")
    if device is None:  # a module stays where it is; a model loaded here goes to the GPU if any
        params = next(net.parameters(), None)
        if isinstance(model, torch.nn.Module) and params is not None:
            device = params.device
        else:
            device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    root = None if cache_dir is False else Path(cache_dir or default_cache_dir(backbone.run_dir))
    common = {
        "model": backbone.name,
        "weights": weights_fingerprint(net),
        "cut": cut,
        "preprocess": pre.to_dict(),
    }
    meta = {
        **common,
        "weights_tag": backbone.weights,
        "cut": cut or "pre_logits",
        "data": str(dm.source_name),
    }
    parts: list[Features] = []
    was_training = net.training
    net.eval().to(device)
    try:
        for name in _splits(dm, split):
            k = views if name == "train" else 0
            names, data_hash = split_rows(dm, name)
            key = cache_key(
                {
                    **common,
                    "data": data_hash,
                    "views": k,
                    "augment": augment_config.to_dict() if k else None,
                    "seed": seed if k else None,
                }
            )
            folder = entry_dir(root, backbone.name, key) if root is not None else None
            arrays = read_entry(folder, key) if folder is not None else None
            hit = arrays is not None
            if arrays is None:
                arrays = _compute(backbone, embed, dm, name, k, augment_config, seed, device, progress)
                if folder is not None:
                    try:
                        write_entry(folder, key, arrays, {**meta, "split": name, "rows": len(names)})
                    except OSError as exc:
                        warnings.warn(f"cannot write the features cache in {folder}: {exc}", stacklevel=2)
            n = len(arrays["labels"])
            parts.append(
                Features(
                    embeddings=arrays["embeddings"],
                    labels=arrays["labels"],
                    names=np.asarray(names, dtype=str),
                    indices=np.arange(n, dtype=np.int64),
                    splits=np.full(n, name, dtype="<U5"),
                    classes=list(dm.classes),
                    views=arrays.get("views"),
                    meta={**meta, "key": key, "cache": str(folder) if folder else None},
                    cache_hit=hit,
                )
            )
    finally:
        net.train(was_training)
    out = Features.concat(parts)
    out.meta = {
        **meta,
        "views": views,
        "splits": {
            str(p.splits[0]): {"rows": len(p), "cache_hit": p.cache_hit, "cache": p.meta["cache"]}
            for p in parts
        },
    }
    return out
