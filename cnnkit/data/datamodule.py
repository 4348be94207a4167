"""The one entry point the training engine uses: ``build_datamodule(data, ...)``.

Whatever the source (embedded digits, MNIST IDX, CIFAR batches, arrays, an image folder),
the result is a :class:`CnnkitDataModule` whose loaders yield ``(x, y)`` with x float32
(N, C, H, W) already augmented (train) and normalised, y int64. By default the transform
runs on the CPU inside the loader (so iterating a loader directly gives model-ready
batches); with ``dm.device_transforms = True`` loaders yield uint8 and the transform runs
batched on the accelerator in ``on_after_batch_transfer``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from cnnkit.data.augment import AugmentConfig, resolve_augment
from cnnkit.data.folder import scan_folder
from cnnkit.data.folder_dataset import FolderBatchDataset, build_cache
from cnnkit.data.loaders import BatchPipeline, MemoryBatchDataset, SeededBatchSampler
from cnnkit.data.preprocess import channel_stats, check_resize_mode, convert_channels, normalization
from cnnkit.data.sources import (
    detect_format,
    load_array_data,
    load_cifar_data,
    load_digits_data,
    load_idx_data,
    resolve_dataset,
)
from cnnkit.data.splits import carve_splits, split_key
from cnnkit.errors import CnnkitError
from cnnkit.fileio import write_json_atomic, write_text_atomic
from cnnkit.preprocess import Preprocess
from cnnkit.runs import SKIPPED_FILE, SPLIT_FILE

STATS_SAMPLE = 1000  # image-folder "dataset" normalisation: mean/std from this many training images


class CnnkitDataModule(L.LightningDataModule):
    """Splits, normalisation statistics, augmentation and loaders for one dataset.

    Attributes after :meth:`setup` (properties call it when needed): ``classes``,
    ``num_classes``, ``input_size`` (C, H, W), ``mean``/``std`` ([0, 1] units), ``has_test``,
    ``skipped`` [(path, reason)], and :meth:`describe` for the run directory.
    """

    def __init__(
        self,
        data: Any = "digits",
        batch_size: int = 128,
        image_size: int | tuple[int, int] | None = None,
        in_chans: int | None = None,
        augment: Any = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        seed: int = 0,
        num_workers: int | None = None,
        cache: bool = False,
        run_dir: str | Path | None = None,
        classes: list[str] | None = None,
        resize: str = "stretch",
        normalize: Any = "dataset",
        cache_dir: str | Path | None = None,
        limit: int | None = None,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise CnnkitError(f"batch_size={batch_size} must be at least 1.")
        if in_chans not in (None, 1, 3):
            raise CnnkitError(f"in_chans={in_chans} is not supported. Use 1 (grayscale) or 3 (RGB).")
        self.data, self.batch_size, self.seed = resolve_dataset(data), batch_size, seed
        self.image_size = (
            (image_size, image_size)
            if isinstance(image_size, int)
            else (tuple(int(v) for v in image_size) if image_size is not None else None)
        )
        self.in_chans, self.augment_spec = in_chans, augment
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.cache, self.cache_dir, self.limit = cache, cache_dir, limit
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.class_names, self.resize = classes, check_resize_mode(resize)
        self.normalize = normalize
        self.format = detect_format(data)  # a missing path fails here, before any work
        in_memory = self.format != "folder"
        self.num_workers = (
            (0 if in_memory else min(8, os.cpu_count() or 1)) if num_workers is None else num_workers
        )
        self._workers_given = num_workers is not None
        self.device_transforms = False
        self._ready = False
        self._device_generators: dict[str, torch.Generator] = {}
        self._samplers: dict[str, SeededBatchSampler] = {}

    # ------------------------------------------------------------------ setup
    def setup(self, stage: str | None = None) -> None:
        if self._ready:
            return
        self._skipped: list[tuple[str, str]] = []
        self._cache_path: Path | None = None
        if self.format == "folder":
            self._setup_folder()
        else:
            self._setup_memory()
        fixed = normalization(self.normalize, self.channels)
        self._mean, self._std = fixed if fixed is not None else self._train_stats()
        self.use_augment(self.augment_spec, _loaded=True)
        self._ready = True

    def use_augment(self, spec: Any, _loaded: bool = False) -> None:
        """Set the augmentation (an ``--augment`` value); after setup this swaps the batch
        pipeline without reloading the images or recomputing their statistics."""
        self.augment_spec = spec
        if not (_loaded or self._ready):
            return
        self.augment: AugmentConfig | None = resolve_augment(spec, self.channels)
        crop = self.augment.random_crop if self.augment is not None else None
        if crop is not None and (crop[0] > self.out_size[0] or crop[1] > self.out_size[1]):
            raise CnnkitError(f"random_crop {crop} is larger than the {self.out_size} images. Lower it.")
        self._input_size = (self.channels, *(crop or self.out_size))
        self.pipeline = BatchPipeline(self._resize_to, self.resize, self.augment, self._mean, self._std)
        self._write_run_files()

    def _setup_memory(self) -> None:
        if self.format == "digits":
            source = load_digits_data()
        elif self.format == "idx":
            source = load_idx_data(Path(self.data), self.limit)
        elif self.format == "cifar":
            source = load_cifar_data(Path(self.data), self.limit)
        else:
            source = load_array_data(tuple(self.data), self.class_names)
        self.source_name, self.classes_ = source.source, source.classes
        self.channels = self.in_chans or min(3, source.splits["train"][0].shape[1])
        splits = {k: (convert_channels(x, self.channels), y) for k, (x, y) in source.splits.items()}
        made = self._carve(splits["train"][1].numpy(), set(splits))
        x_train, y_train = splits["train"]
        for name, idx in made.items():
            t = torch.from_numpy(idx)
            splits[name] = (x_train[t], y_train[t])
        self.splits = {k: v for k, v in splits.items() if len(v[1])}
        natural = tuple(x_train.shape[-2:])
        self.out_size = self.image_size or natural
        self._resize_to = self.out_size if self.out_size != natural else None

    def _setup_folder(self) -> None:
        folder = scan_folder(Path(self.data))
        self._skipped = list(folder.skipped)
        self.source_name, self.classes_ = str(Path(self.data).expanduser()), folder.classes
        self.channels = self.in_chans or folder.natural_channels
        self.out_size = self.image_size or folder.natural_size
        self._resize_to = None  # files are resized when decoded
        pool_name = "train" if "train" in folder.files else "all"
        pool = folder.files[pool_name]
        labels = np.array([label for _, label in pool])
        made = self._carve(labels, set(folder.files) - {"all"}, [rel for rel, _ in pool])
        files = {k: v for k, v in folder.files.items() if k != "all"}
        for name, idx in made.items():
            files[name] = [pool[i] for i in idx]
        self.files = {k: v for k, v in files.items() if v}
        self._cache_rows: dict[str, np.ndarray] = {}
        if self.cache:
            self._build_cache()

    def _build_cache(self) -> None:
        order = [s for s in ("train", "val", "test") if s in self.files]
        flat = [rel for s in order for rel, _ in self.files[s]]
        cache_dir = Path(self.cache_dir or (self.run_dir / "cache" if self.run_dir else _default_cache_dir()))
        path, bad, reasons = build_cache(
            Path(self.data), flat, self.out_size, self.channels, self.resize, cache_dir, self.num_workers
        )
        self._cache_path = path
        bad_set = set(bad)
        self._skipped += [(flat[i], reason) for i, reason in zip(bad, reasons, strict=True)]
        start = 0
        for split in order:
            rows = np.arange(start, start + len(self.files[split]))
            start += len(self.files[split])
            keep = np.array([r not in bad_set for r in rows], dtype=bool)
            self.files[split] = [f for f, k in zip(self.files[split], keep, strict=True) if k]
            self._cache_rows[split] = rows[keep]

    def _carve(
        self, labels: np.ndarray, given: set[str], names: list[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Make the val/test splits the source lacks from its train pool (saved split reused)."""
        missing = [s for s in ("val", "test") if s not in given]
        source = f"{self.format}:{self._source_key()}"
        key = split_key(source, labels, names, self.val_fraction, self.test_fraction)
        self._split_key, self._made_splits = key, missing
        self._pool_labels = np.asarray(labels, dtype=np.int64)
        made = carve_splits(
            labels, missing, key, self.run_dir, self.val_fraction, self.test_fraction, self.seed
        )
        self._split_indices = made
        return made

    def _source_key(self) -> str:
        if self.format in ("idx", "cifar", "folder"):
            return str(Path(self.data).expanduser().resolve())
        return self.format

    def _train_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        if self.format != "folder":
            return channel_stats(self.splits["train"][0])
        n = len(self.files["train"])
        pick = np.sort(np.random.default_rng(self.seed).permutation(n)[:STATS_SAMPLE])
        dataset = self._folder_dataset("train", train=False, pipeline=None)
        loader = DataLoader(
            dataset,
            batch_size=None,
            num_workers=self.num_workers,
            sampler=[(pick[i : i + 64], 0) for i in range(0, len(pick), 64)],
        )
        return channel_stats(torch.cat([x for x, _ in loader]))

    def _write_run_files(self) -> None:
        if self.run_dir is None:
            return
        split_file: dict[str, Any] = {
            "source": self._split_key,
            "seed": self.seed,
            "val_fraction": self.val_fraction,
            "test_fraction": self.test_fraction,
            "made": self._made_splits,
        }
        if self._made_splits:  # indices into the source's train pool: a resumed run reuses them
            split_file["splits"] = {k: v.tolist() for k, v in self._split_indices.items()}
        if self.format == "folder":
            split_file["files"] = {k: [rel for rel, _ in v] for k, v in self.files.items()}
        write_json_atomic(self.run_dir / SPLIT_FILE, split_file)
        if self._skipped or self.format == "folder":
            write_text_atomic(
                self.run_dir / SKIPPED_FILE,
                "".join(f"{path}\t{reason}\n" for path, reason in self._skipped),
            )

    # ------------------------------------------------------------------ public attributes
    def _need(self) -> None:
        if not self._ready:
            self.setup()

    @property
    def classes(self) -> list[str]:
        self._need()
        return list(self.classes_)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_size(self) -> tuple[int, int, int]:
        self._need()
        return self._input_size

    @property
    def mean(self) -> tuple[float, ...]:
        self._need()
        return self._mean

    @property
    def std(self) -> tuple[float, ...]:
        self._need()
        return self._std

    @property
    def eval_preprocess(self) -> Preprocess:
        """The evaluation transform of this module as a :class:`~cnnkit.preprocess.Preprocess`:
        applied to the image files of a split it gives exactly the tensors of the val/test
        loaders (resize to the image size, centre patch of ``random_crop``, the mean/std
        measured on the training split). A run directory stores it; prediction applies it.
        (In-memory sources have no files: new files are resized by PIL, their batches by
        ``F.interpolate``, with the same geometry.)"""
        self._need()
        crop = self.augment.random_crop if self.augment is not None else None
        return Preprocess(
            size=tuple(crop or self.out_size),
            resize=self.resize,
            mean=self._mean,
            std=self._std,
            channels=self.channels,
            resize_size=tuple(self.out_size) if crop else None,
        )

    @property
    def has_test(self) -> bool:
        self._need()
        return "test" in (self.files if self.format == "folder" else self.splits)

    @property
    def skipped(self) -> list[tuple[str, str]]:
        self._need()
        return list(self._skipped)

    def split_pool(self) -> tuple[np.ndarray, str, list[str]]:
        """(labels of the pool the val/test splits are carved from, the key a saved
        ``split.json`` must carry to be reused, the splits made from the pool). Writing
        ``{"source": key, "splits": {"train": idx, "val": idx, "test": idx}}`` into a run
        directory fixes that run's split - how :mod:`cnnkit.evaluate.cv` sets up its folds."""
        self._need()
        return self._pool_labels.copy(), self._split_key, list(self._made_splits)

    def split_sizes(self) -> dict[str, int]:
        self._need()
        if self.format == "folder":
            return {k: len(v) for k, v in self.files.items()}
        return {k: len(v[1]) for k, v in self.splits.items()}

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly summary for the run directory."""
        self._need()
        return {
            "source": self.source_name,
            "format": self.format,
            "splits": self.split_sizes(),
            "made_splits": list(self._made_splits),
            "num_classes": self.num_classes,
            "classes": self.classes,
            "input_size": list(self.input_size),
            "image_size": list(self.out_size),
            "resize": self.resize,
            "normalize": self.normalize if isinstance(self.normalize, str) else "custom",
            "mean": list(self.mean),
            "std": list(self.std),
            "augment": self.augment.to_dict() if self.augment is not None else None,
            "preprocess": self.eval_preprocess.to_dict(),
            "batch_size": self.batch_size,
            "seed": self.seed,
            "cache": str(self._cache_path) if self._cache_path else None,
            "skipped": len(self._skipped),
        }

    # ------------------------------------------------------------------ loaders
    def _folder_dataset(self, split: str, train: bool, pipeline: BatchPipeline | None) -> FolderBatchDataset:
        files = self.files[split]
        return FolderBatchDataset(
            Path(self.data),
            [rel for rel, _ in files],
            np.array([label for _, label in files]),
            self.out_size,
            self.channels,
            self.resize,
            train,
            pipeline,
            self._cache_path,
            self._cache_rows.get(split),
        )

    def _loader(self, split: str, train: bool, raw: bool = False) -> DataLoader:
        self._need()
        pipeline = None if (self.device_transforms or raw) else self.pipeline
        if self.format == "folder":
            if split not in self.files:
                raise CnnkitError(
                    f"this dataset has no {split} split. Set a fraction for it or add {split}/."
                )
            dataset = self._folder_dataset(split, train, pipeline)
        else:
            if split not in self.splits:
                raise CnnkitError(f"this dataset has no {split} split. Set {split}_fraction > 0.")
            x, y = self.splits[split]
            dataset = MemoryBatchDataset(x, y, train, pipeline)
        # One sampler per split for the module's life: a loader made again (e.g. each epoch)
        # continues the epoch count instead of replaying epoch 0's order and augmentation.
        sampler = self._samplers.get(split)
        if sampler is None or (sampler.n, sampler.batch_size) != (len(dataset), self.batch_size):
            sampler = SeededBatchSampler(
                len(dataset), self.batch_size, shuffle=train, drop_last=train, seed=self.seed
            )
            self._samplers[split] = sampler
        workers = self.num_workers
        cpu_normalise_only = pipeline is not None and not (train and self.augment is not None)
        if self._cache_path is not None and not self._workers_given and cpu_normalise_only:
            # A cached folder whose batches only need normalising loads in the main process: a
            # memmap gather and a chunked normalise cost less than handing a float batch over
            # from a worker through shared memory (5.9x vs 2.8x the decoding loader at 224 px,
            # bench/bench_loader.py --folder). CPU augmentation, and uint8 batches for the
            # device transforms, still gain from workers.
            workers = 0
        return DataLoader(
            dataset,
            batch_size=None,
            sampler=sampler,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
            prefetch_factor=4 if workers > 0 else None,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)

    def uncropped_batches(self, split: str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Evaluation batches of ``split`` before the centre crop that ``random_crop`` implies:
        the full (resized, normalised) images that 10-crop testing cuts its ten patches from."""
        augment = dataclasses.replace(self.augment, random_crop=None) if self.augment is not None else None
        full = BatchPipeline(self._resize_to, self.resize, augment, self._mean, self._std)
        for x, y in self._loader(split, train=False, raw=True):
            yield full(x, False), y

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test" if self.has_test else "val", train=False)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Device path: uint8 batches are augmented (when training) and normalised here."""
        x, y = batch
        if x.dtype != torch.uint8:
            return batch  # already transformed on the CPU
        training = bool(self.trainer is not None and self.trainer.training)
        key = str(x.device)
        if key not in self._device_generators:
            self._device_generators[key] = torch.Generator(device=x.device).manual_seed(self.seed)
        return self.pipeline(x, training, self._device_generators[key]), y


def _default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cnnkit" / "images"


def build_datamodule(data: Any = "digits", **kwargs: Any) -> CnnkitDataModule:
    """Build and set up the datamodule for ``data`` (errors surface here, not mid-training).

    ``data``: "digits" | an image folder | an MNIST IDX folder | a CIFAR-10/100 batches folder |
    ``(x, y)`` arrays. Keywords (all optional): ``batch_size`` (128), ``image_size`` (H, W) or
    int (None = natural size), ``in_chans`` 1 | 3, ``augment`` (None | "default" | "light" |
    "strong" | "knob=value,..." | dict | AugmentConfig), ``val_fraction`` / ``test_fraction``
    (0.1 each, only for splits the source lacks), ``seed``, ``num_workers`` (None = 0 in memory or cached,
    else up to 8), ``cache`` (image folders: memmap of resized images in ``cache_dir``, else
    ``run_dir/cache``, else ~/.cache/cnnkit/images), ``run_dir`` (split.json,
    skipped_files.txt), ``classes`` (names for arrays), ``resize`` "stretch" | "aspect",
    ``normalize`` "dataset" | "imagenet" | "none" | "tf" | (mean, std), ``limit`` (in-memory
    formats: load only the first N images of each split).
    """
    dm = CnnkitDataModule(data, **kwargs)
    dm.setup("fit")
    return dm
