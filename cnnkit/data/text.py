"""Text classification data for the text CNN: a ``label<TAB>sentence`` TSV file.

Lines starting with ``#`` and blank lines are skipped. A stratified train/val/test split
is made (and saved as ``split.json``); the vocabulary is built on the training sentences
only (held-out text meets unknown words the way real new text does) and saved as
``vocab.json`` in the run directory, with the sequence length and tokenizer, so a run's
model can be fed new sentences exactly as it was trained. Batches are ``(ids, label)``
with ids (N, seq_len) int64, 0 = padding.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from cnnkit.data.loaders import SeededBatchSampler, memory_split_loader
from cnnkit.data.splits import stratified_split
from cnnkit.errors import CnnkitError
from cnnkit.fileio import write_json_atomic

VOCAB_FILE = "vocab.json"
TEXT_SUFFIXES = (".tsv", ".txt")


def is_text_data(data: Any) -> bool:
    """A path to a .tsv/.txt file (text+label rows)."""
    return (
        isinstance(data, (str, Path)) and Path(data).suffix.lower() in TEXT_SUFFIXES and Path(data).is_file()
    )


def read_tsv(path: str | Path) -> tuple[list[str], list[str]]:
    """(labels, texts) of a ``label<TAB>text`` file; one clear line on a malformed row."""
    path = Path(path).expanduser()
    labels, texts = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        if "\t" not in line:
            raise CnnkitError(f"{path}:{number} has no tab; each line must be label<TAB>text.")
        label, text = line.split("\t", 1)
        labels.append(label.strip())
        texts.append(text.strip())
    if len(set(labels)) < 2:
        raise CnnkitError(f"{path} has {len(set(labels))} label(s); a classifier needs at least 2.")
    return labels, texts


class MemorySplitLoaders:
    """Train and validation loaders over in-memory ``(x, y)`` tensors (``self.splits``), in
    seeded batches of ``self.batch_size``: the base of :class:`TextDataModule` and of the
    cached-features datamodule (``cnnkit.train.cached``, which has no test split)."""

    splits: dict[str, tuple[torch.Tensor, torch.Tensor]]
    batch_size: int
    seed: int
    _samplers: dict[str, SeededBatchSampler]

    def _loader(self, split: str, train: bool) -> DataLoader:
        if split not in self.splits:
            raise CnnkitError(f"this dataset has no {split} split. Set {split}_fraction > 0.")
        x, y = self.splits[split]
        return memory_split_loader(self._samplers, split, x, y, self.batch_size, self.seed, train)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)


class TextDataModule(MemorySplitLoaders, L.LightningDataModule):
    """Splits, vocabulary and loaders of a text TSV; the attributes the engine reads from an
    image datamodule (``classes``, ``num_classes``, ``input_size`` = (seq_len,), ``has_test``,
    ``split_sizes()``, ``describe()``)."""

    augment = None
    skipped: list = []  # noqa: RUF012 - no unreadable files in a text file

    def __init__(
        self,
        data: str | Path,
        batch_size: int = 32,
        seq_len: int | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        seed: int = 0,
        run_dir: str | Path | None = None,
    ) -> None:
        super().__init__()
        from cnnkit.models.text_cnn import Vocabulary, tokenize

        self.data, self.batch_size, self.seed = str(data), batch_size, seed
        labels, texts = read_tsv(data)
        self.classes = sorted(set(labels))
        y = np.array([self.classes.index(label) for label in labels], dtype=np.int64)
        parts = stratified_split(y, val_fraction, test_fraction, seed)
        train_texts = [texts[i] for i in parts["train"]]
        self.vocab = Vocabulary.build(train_texts)
        self.seq_len = seq_len or max(8, max(len(tokenize(t)) for t in train_texts))
        self.splits = {
            name: (self.vocab.encode([texts[i] for i in idx], self.seq_len), torch.from_numpy(y[idx]))
            for name, idx in parts.items()
            if len(idx)
        }
        self._samplers: dict[str, SeededBatchSampler] = {}
        if run_dir is not None:
            write_json_atomic(
                Path(run_dir) / VOCAB_FILE,
                {
                    "seq_len": self.seq_len,
                    "tokenizer": "cnnkit.models.text_cnn.tokenize",
                    "words": self.vocab.words,
                },
            )
            write_json_atomic(
                Path(run_dir) / "split.json",
                {"source": self.data, "seed": seed, "splits": {k: v.tolist() for k, v in parts.items()}},
            )

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_size(self) -> tuple[int]:
        return (self.seq_len,)

    @property
    def has_test(self) -> bool:
        return "test" in self.splits

    def split_sizes(self) -> dict[str, int]:
        return {k: len(v[1]) for k, v in self.splits.items()}

    def describe(self) -> dict[str, Any]:
        return {"source": self.data, "format": "text", "splits": self.split_sizes(), "seq_len": self.seq_len,
                "vocab_size": len(self.vocab), "classes": self.classes}  # fmt: skip

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)
