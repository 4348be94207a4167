"""Image folders: one sub-folder per class, optionally under train/ val/ test/ sub-splits.

Scanning checks every file cheaply (header, PNG chunk checksums, JPEG end marker) in a
thread pool, so empty, truncated, corrupt and non-image files are skipped up front with a
reason instead of crashing a worker in the middle of an epoch.
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from cnnkit.errors import CnnkitError
from cnnkit.preprocess import is_sideways, open_image

SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


@dataclass
class FolderData:
    """What a scan found: relative file paths with labels per split ("all" when no split dirs)."""

    root: Path
    classes: list[str]
    files: dict[str, list[tuple[str, int]]]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    sizes: Counter = field(default_factory=Counter)  # (H, W) -> count
    modes: Counter = field(default_factory=Counter)  # PIL mode -> count

    @property
    def natural_size(self) -> tuple[int, int]:
        return self.sizes.most_common(1)[0][0]

    @property
    def natural_channels(self) -> int:
        gray = sum(n for mode, n in self.modes.items() if mode in ("1", "L", "LA", "I", "I;16", "F"))
        return 1 if gray * 2 > sum(self.modes.values()) else 3


def check_image(path: Path) -> tuple[str | None, tuple[int, int] | None, str | None]:
    """(problem or None, (H, W), mode) for one file, without decoding its pixels.

    PIL's ``verify`` checks PNG chunk CRCs and the container of most formats; JPEG verify does
    not notice truncation, so a JPEG must also end with its end-of-image marker (FF D9).
    """
    try:
        if path.stat().st_size == 0:
            return "empty file (0 bytes)", None, None
        with open_image(path, name=path.name) as image:  # the shared pixel limit: no bombs in training
            size, mode, fmt = (image.height, image.width), image.mode, image.format
            if is_sideways(image):  # EXIF orientation: shown (and decoded) turned by 90 degrees
                size = size[::-1]
            image.verify()
        if fmt == "JPEG":
            with open(path, "rb") as f:
                f.seek(max(0, path.stat().st_size - 1024))  # allow some bytes after the marker
                if b"\xff\xd9" not in f.read():
                    return "truncated JPEG (no end-of-image marker)", None, None
        return None, size, mode
    except CnnkitError as exc:  # not an image, or too many pixels
        return str(exc), None, None
    except Exception as exc:  # noqa: BLE001 - any decoder error means: skip this file
        return f"corrupt image ({type(exc).__name__}: {exc})", None, None


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _files_in(folder: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath) / f for f in sorted(filenames) if not f.startswith(".")]
    return found


def scan_folder(root: Path, workers: int = 8) -> FolderData:
    """Find classes and splits under ``root`` and check every file; raises CnnkitError on
    layouts a classifier cannot train on (no images, one class, classes differing by split)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise CnnkitError(f"data path {root} does not exist or is not a folder. Pass an image folder.")
    top = _class_dirs(root)
    split_dirs = {SPLIT_NAMES[p.name.lower()]: p for p in top if p.name.lower() in SPLIT_NAMES}
    if split_dirs and "train" not in split_dirs:
        raise CnnkitError(f"{root} has {', '.join(sorted(split_dirs))}/ but no train/. Add a train/ folder.")
    layout = split_dirs if split_dirs else {"all": root}

    per_split_classes = {split: [d.name for d in _class_dirs(folder)] for split, folder in layout.items()}
    if split_dirs:
        reference = set(per_split_classes["train"])
        for split, names in per_split_classes.items():
            if set(names) != reference:
                only_train = sorted(reference - set(names))
                only_here = sorted(set(names) - reference)
                raise CnnkitError(
                    f"classes differ between train/ and {split_dirs[split].name}/ in {root} "
                    f"(only in train: {only_train or 'none'}; only in {split_dirs[split].name}: "
                    f"{only_here or 'none'}). Give every split the same class sub-folders."
                )
    classes = per_split_classes["train" if split_dirs else "all"]
    if not classes:
        loose = [p for p in _files_in(root) if p.parent == root]
        hint = " The images must be in one sub-folder per class." if loose else ""
        raise CnnkitError(
            f"no class sub-folders with images in {root}.{hint} Use e.g. {root}/cat/1.jpg, {root}/dog/2.jpg."
        )

    candidates: list[tuple[str, Path, int]] = []
    for split, folder in layout.items():
        for label, name in enumerate(classes):
            candidates += [(split, p, label) for p in _files_in(folder / name)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        checks = list(pool.map(check_image, [p for _, p, _ in candidates]))

    data = FolderData(root, classes, {split: [] for split in layout})
    for (split, path, label), (problem, size, mode) in zip(candidates, checks, strict=True):
        rel = str(path.relative_to(root))
        if problem:
            data.skipped.append((rel, problem))
            continue
        data.files[split].append((rel, label))
        data.sizes[size] += 1
        data.modes[mode] += 1
    main = data.files["train" if split_dirs else "all"]
    if not main:
        raise CnnkitError(
            f"no readable images in {root}. Put image files (JPEG, PNG, ...) in the class folders."
        )
    present = sorted({label for _, label in main})
    if len(present) < 2:
        only = classes[present[0]]
        raise CnnkitError(
            f"only one class ({only!r}) has images in {root}; a classifier needs at least two. "
            "Add a sub-folder with images for every other class."
        )
    return data
