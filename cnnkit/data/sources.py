"""Small datasets held in memory as uint8 tensors: the embedded 8x8 digits, MNIST-format IDX
files, CIFAR-10/100 python batches and user arrays; and :func:`detect_format`, which tells
these and image folders apart from what a path contains.
"""

from __future__ import annotations

import gzip
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnkit.errors import CnnkitError

FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


@dataclass
class MemoryData:
    """Images as uint8 (N, C, H, W) tensors with int64 labels, per split given by the source."""

    format: str
    source: str
    classes: list[str]
    splits: dict[str, tuple[torch.Tensor, torch.Tensor]]  # "train" always; "val"/"test" if given


# Names a user may type for the datasets in ../shared/datasets (torchvision's spelling too).
DATASET_NAMES = {
    "mnist": ("datasets", "MNIST", "raw"),
    "fashionmnist": ("datasets", "FashionMNIST", "raw"),
    "fashion-mnist": ("datasets", "FashionMNIST", "raw"),
    "fashion_mnist": ("datasets", "FashionMNIST", "raw"),
    "cifar10": ("datasets", "cifar-10-batches-py"),
    "cifar-10": ("datasets", "cifar-10-batches-py"),
}


def resolve_dataset(data: Any) -> Any:
    """``MNIST``, ``FashionMNIST`` or ``CIFAR10`` (any case) -> that dataset's folder in
    ../shared/datasets (:func:`cnnkit.shared.shared_path`), when no file of that name exists
    here; anything else unchanged. ``cnnkit train --data MNIST`` works as typed."""
    if not isinstance(data, str) or data.lower() not in DATASET_NAMES or Path(data).exists():
        return data
    from cnnkit.shared import shared_path

    path = shared_path(*DATASET_NAMES[data.lower()])
    if not path.exists():
        raise CnnkitError(
            f"dataset {data} is not at {path}. Set CNNKIT_SHARED to the folder holding datasets/, "
            "or pass the dataset's folder with --data."
        )
    return str(path)


def detect_format(data: Any) -> str:
    """'digits' | 'arrays' | 'idx' | 'cifar' | 'folder', from the value and the path's contents."""
    if isinstance(data, (tuple, list)):
        return "arrays"
    if isinstance(data, str) and data.lower() == "digits" and not Path(data).exists():
        return "digits"
    path = Path(resolve_dataset(data)).expanduser()
    if not path.exists():
        raise CnnkitError(
            f"data path {path} does not exist. Pass an image folder, an MNIST/CIFAR folder, 'digits' or "
            "a dataset name (MNIST, FashionMNIST, CIFAR10)."
        )
    if path.is_file():
        if "idx" in path.name and "ubyte" in path.name:
            return "idx"
        raise CnnkitError(f"{path} is a file. Pass the folder that holds the dataset.")
    if (
        (path / "batches.meta").is_file()
        or (path / "data_batch_1").is_file()
        or ((path / "meta").is_file() and (path / "train").is_file())
    ):
        return "cifar"
    if _idx_files(path):
        return "idx"
    return "folder"


# ----------------------------------------------------------------------------- digits
def load_digits_data() -> MemoryData:
    """scikit-learn's 1,797 real 8x8 digits (UCI); intensities 0..16 scaled to 0..255."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = np.round(digits.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[:, None]
    y = digits.target.astype(np.int64)
    return MemoryData(
        "digits",
        "digits (sklearn.datasets.load_digits)",
        [str(i) for i in range(10)],
        {"train": (torch.from_numpy(x), torch.from_numpy(y))},
    )


# ----------------------------------------------------------------------------- IDX (MNIST)
def _idx_files(path: Path) -> list[Path]:
    candidates = [path, path / "raw"] if path.is_dir() else [path.parent]
    for folder in candidates:
        found = sorted(p for p in folder.glob("*idx*-ubyte*") if p.is_file()) if folder.is_dir() else []
        if found:
            return found
    return []


def read_idx(path: Path, limit: int | None = None) -> np.ndarray:
    """Read an IDX file (optionally gzipped); only the first ``limit`` items are decompressed."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        header = f.read(4)
        if len(header) < 4 or header[:2] != b"\x00\x00" or header[2] != 0x08:
            raise CnnkitError(f"{path} is not an unsigned-byte IDX file. Pass MNIST-format files.")
        ndim = header[3]
        dims = [int.from_bytes(f.read(4), "big") for _ in range(ndim)]
        if limit is not None:
            dims[0] = min(dims[0], limit)
        count = int(np.prod(dims))
        data = f.read(count)
    if len(data) != count:
        raise CnnkitError(f"{path} is truncated ({len(data)} of {count} bytes). Download it again.")
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def load_idx_data(path: Path, limit: int | None = None) -> MemoryData:
    """MNIST / Fashion-MNIST layout: ``train-*`` and ``t10k-*`` (or ``test-*``) images + labels."""
    files = _idx_files(Path(path))
    splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for split, prefixes in (("train", ("train",)), ("test", ("t10k", "test"))):
        images = [f for f in files if f.name.startswith(prefixes) and "idx3" in f.name]
        labels = [f for f in files if f.name.startswith(prefixes) and "idx1" in f.name]
        if images and labels:
            x = read_idx(images[0], limit)
            y = read_idx(labels[0], limit).astype(np.int64)
            if len(x) != len(y):
                raise CnnkitError(
                    f"{images[0].name} has {len(x)} images but {labels[0].name} {len(y)} labels."
                )
            splits[split] = (torch.from_numpy(x.copy())[:, None], torch.from_numpy(y))
    if "train" not in splits:
        raise CnnkitError(f"no train-images/train-labels IDX pair found in {path}. Check the MNIST folder.")
    root_text = str(Path(path).resolve()).lower()
    if "fashion" in root_text:
        classes = list(FASHION_MNIST_CLASSES)
    else:
        classes = [str(i) for i in range(int(splits["train"][1].max()) + 1)]
    return MemoryData("idx", str(path), classes, splits)


# ----------------------------------------------------------------------------- CIFAR
# The only globals the real CIFAR-10/100 python batches reference (numpy arrays pickled by
# numpy 1.x; numpy 2 names the module numpy._core), numpy's protocol-5 array path, and the
# bytes of a protocol-2 pickle written by Python 3 (``_codecs.encode``, as torch's
# ``weights_only`` loader allows).
CIFAR_PICKLE_GLOBALS = {
    ("_codecs", "encode"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that builds dicts, lists, bytes, numbers and numpy arrays, and nothing
    else: a file that names any other callable (``os.system``, ``builtins.eval``) is refused
    before it is called (the ``pickle`` docs' "Restricting Globals")."""

    def find_class(self, module: str, name: str) -> type:
        if (module, name) in CIFAR_PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it references {module} {name}")


def read_cifar_batch(path: Path) -> dict:
    """Read one CIFAR python batch (or meta) file without ever running code from it."""
    try:
        with open(path, "rb") as f:
            batch = _CifarUnpickler(f, encoding="bytes").load()
    except Exception as exc:  # noqa: BLE001 - refused globals, truncation, garbage: one line
        raise CnnkitError(
            f"{path} is not a plain CIFAR batch ({exc}; only numpy arrays, lists and dicts are allowed). "
            "Use the original cifar-10-batches-py / cifar-100-python files."
        ) from None
    if not isinstance(batch, dict):
        raise CnnkitError(f"{path} is not a CIFAR batch (a dict); use the original CIFAR python files.")
    return batch


def _decode(names: list) -> list[str]:
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def load_cifar_data(path: Path, limit: int | None = None) -> MemoryData:
    """CIFAR-10 (data_batch_1..5, test_batch, batches.meta) or CIFAR-100 (train, test, meta)."""
    path = Path(path)
    if (path / "batches.meta").is_file() or (path / "data_batch_1").is_file():
        train_files = sorted(path.glob("data_batch_*"))
        test_files = [path / "test_batch"]
        label_key, meta_file, names_key = b"labels", path / "batches.meta", b"label_names"
    else:
        train_files, test_files = [path / "train"], [path / "test"]
        label_key, meta_file, names_key = b"fine_labels", path / "meta", b"fine_label_names"

    def load(files: list[Path]) -> tuple[torch.Tensor, torch.Tensor] | None:
        xs, ys, have = [], [], 0
        for file in files:
            if not file.is_file() or (limit is not None and have >= limit):
                continue
            batch = read_cifar_batch(file)
            if b"data" not in batch or label_key not in batch:
                raise CnnkitError(
                    f"{file} has no {b'data'!r}/{label_key!r} entries; it is not a CIFAR batch."
                )
            try:
                xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
                ys.append(np.asarray(batch[label_key], dtype=np.int64))
            except (TypeError, ValueError) as exc:
                raise CnnkitError(f"{file} does not hold 32x32 RGB images with labels ({exc}).") from None
            have += len(ys[-1])
        if not xs:
            return None
        x, y = np.concatenate(xs), np.concatenate(ys)
        if limit is not None:
            x, y = x[:limit], y[:limit]
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y)

    splits = {"train": load(train_files)}
    if splits["train"] is None:
        raise CnnkitError(f"no CIFAR training batches in {path}. Pass the cifar-10-batches-py folder.")
    test = load(test_files)
    if test is not None:
        splits["test"] = test
    if meta_file.is_file():
        classes = _decode(read_cifar_batch(meta_file)[names_key])
    else:
        classes = [str(i) for i in range(int(splits["train"][1].max()) + 1)]
    return MemoryData("cifar", str(path), classes, splits)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- arrays
def _as_uint8_images(x: Any) -> torch.Tensor:
    """N,H,W | N,H,W,C | N,C,H,W ; uint8 or float in [0, 1]  ->  uint8 (N, C, H, W)."""
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).detach().cpu()
    if t.ndim == 3:
        t = t[:, None]
    if t.ndim != 4:
        raise CnnkitError(f"images must be N,H,W or N,H,W,C or N,C,H,W; got shape {tuple(t.shape)}.")
    if t.shape[1] not in (1, 3, 4) and t.shape[-1] in (1, 3, 4):
        t = t.permute(0, 3, 1, 2)
    if t.dtype != torch.uint8:
        t = t.float()
        if t.numel() and (t.min() < 0 or t.max() > 1):
            raise CnnkitError("float images must be in [0, 1]. Divide by 255 or pass uint8 arrays.")
        t = (t * 255).round().to(torch.uint8)
    return t.contiguous()


def load_array_data(data: tuple, classes: list[str] | None = None) -> MemoryData:
    if len(data) != 2:
        raise CnnkitError("array data must be a pair (x, y). Pass data=(images, labels).")
    x = _as_uint8_images(data[0])
    y = (
        torch.as_tensor(np.asarray(data[1]) if not isinstance(data[1], torch.Tensor) else data[1])
        .long()
        .view(-1)
    )
    if len(x) != len(y):
        raise CnnkitError(f"{len(x)} images but {len(y)} labels. Pass one label per image.")
    if len(y) == 0:
        raise CnnkitError("the arrays are empty. Pass at least one image per class.")
    if int(y.min()) < 0:
        raise CnnkitError("labels must be integers 0..K-1. Map your labels to class indices first.")
    n_classes = int(y.max()) + 1
    if classes is None:
        classes = [str(i) for i in range(n_classes)]
    elif len(classes) < n_classes:
        raise CnnkitError(f"{len(classes)} class names but labels go up to {n_classes - 1}. Pass all names.")
    return MemoryData("arrays", f"arrays {tuple(x.shape)}", list(classes), {"train": (x, y)})
