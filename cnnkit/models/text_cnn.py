"""Text CNN: sentence classification with 1-D convolutions over word embeddings.

Two forms, one model name (``text_cnn``):

* ``variant="seed"`` (default) - the sentence classifier of seed 004 (section 5.3.8, Keras):
  Embedding(256) -> Dropout 0.5 -> Conv1D(64, 5, 'valid') + ReLU -> MaxPooling1D(2) ->
  Dropout 0.5 -> Flatten -> Dense 256 + ReLU -> Dropout 0.3 -> Dense(classes). The dense
  head depends on the sequence length, so the model is built for ``input_size=(seq_len,)``.
* ``variant="kim"`` - Kim (2014, "Convolutional Neural Networks for Sentence
  Classification", EMNLP): filters of widths 3, 4 and 5, 100 of each, ReLU, max-over-time
  pooling (one number per filter, so any sentence length works), dropout 0.5, then the
  classifier. Embedding width 300 as Kim's word2vec vectors (trained from scratch here).

Input: (N, seq_len) integer token ids, 0 = padding (its embedding stays zero). Use
:class:`Vocabulary` to turn sentences into ids. Parameters at the default configuration
(vocab_size=10,000, seq_len=64, 2 classes): seed 3,134,274; kim 3,360,902 (see the
``ref_source`` of the registration for the arithmetic).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import torch
import torch.nn as nn

from cnnkit.errors import CnnkitError
from cnnkit.models.layers import ClassifierNet
from cnnkit.models.registry import register_model

PAD_ID = 0
UNKNOWN_ID = 1
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def tokenize(text: str) -> list[str]:
    """Lower-cased words and numbers; apostrophes stay inside words ("don't", "it's")."""
    return _TOKEN.findall(text.lower())


class Vocabulary:
    """Word <-> id table built from training sentences: 0 is padding, 1 is unknown words.

    Build it on the training split only, so held-out sentences meet unknown words the way
    real new text does.
    """

    def __init__(self, words: Sequence[str]) -> None:
        self.words = ["<pad>", "<unk>", *words]
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, texts: Iterable[str], min_count: int = 1, max_size: int | None = None) -> Vocabulary:
        """Most frequent words first (ties alphabetical, so the ids are reproducible)."""
        counts = Counter(tok for text in texts for tok in tokenize(text))
        ranked = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        return cls(ranked[: None if max_size is None else max_size - 2])

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, texts: Sequence[str], seq_len: int) -> torch.Tensor:
        """(N, seq_len) int64 ids: truncated or right-padded with 0."""
        ids = torch.full((len(texts), seq_len), PAD_ID, dtype=torch.long)
        for row, text in enumerate(texts):
            tokens = [self.index.get(t, UNKNOWN_ID) for t in tokenize(text)][:seq_len]
            ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        return ids


class TextCNN(ClassifierNet):
    """Embedding -> 1-D convolutions -> pooling -> classifier (seed form or Kim 2014).

    ``forward_features`` returns the convolution maps before pooling, (N, filters, L):
    seed (N, 64, seq_len - 4); kim (N, 300, seq_len), the three widths zero-padded to the
    same length and stacked (Kim's code pads each side by k - 1; 'same' padding keeps one
    map per sentence). ``forward_head`` pools and classifies; ``pre_logits`` is the vector
    entering the last layer: seed 256 (the hidden dense layer), kim 300 (the pooled filters).
    """

    classifier_path = "classifier"

    def __init__(
        self,
        num_classes: int = 2,
        vocab_size: int = 10_000,
        seq_len: int = 64,
        variant: str = "seed",
        embed_dim: int | None = None,
        num_filters: int | None = None,
        filter_sizes: Sequence[int] | None = None,
        pool_size: int = 2,
        hidden: int = 256,
    ) -> None:
        super().__init__()
        if variant not in ("seed", "kim"):
            raise CnnkitError(f"unknown text_cnn variant {variant!r}; use 'seed' or 'kim'.")
        if vocab_size < 3:
            raise CnnkitError(
                f"vocab_size must be at least 3 (padding, unknown, one word), got {vocab_size}."
            )
        self.variant = variant
        self.num_classes = num_classes
        self.seq_len = seq_len
        seed = variant == "seed"
        embed_dim = embed_dim or (256 if seed else 300)
        num_filters = num_filters or (64 if seed else 100)
        filter_sizes = tuple(filter_sizes or ((5,) if seed else (3, 4, 5)))
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        self.embed_dropout = nn.Dropout(0.5) if seed else nn.Identity()
        # Kim form: zero-pad each width to keep the sentence length ('same'; explicit because
        # PyTorch's padding="same" copies the input for even widths).
        self.pads = nn.ModuleList(
            nn.Identity() if seed else nn.ConstantPad1d(((k - 1) // 2, k // 2), 0.0) for k in filter_sizes
        )
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, num_filters, k) for k in filter_sizes)
        self.act = nn.ReLU(inplace=True)
        self.flatten = nn.Flatten()
        if seed:
            if len(filter_sizes) != 1:
                raise CnnkitError("the seed text CNN has one filter width; use variant='kim' for several.")
            conv_len = seq_len - filter_sizes[0] + 1
            pooled_len = conv_len // pool_size
            if pooled_len < 1:
                raise CnnkitError(
                    f"seq_len {seq_len} is too short for a width-{filter_sizes[0]} filter and pooling by "
                    f"{pool_size}; use seq_len >= {filter_sizes[0] + pool_size - 1}."
                )
            self.pool: nn.Module = nn.MaxPool1d(pool_size)
            self.pool_dropout = nn.Dropout(0.5)
            self.fc = nn.Linear(num_filters * pooled_len, hidden)
            self.fc_act = nn.ReLU(inplace=True)
            self.dropout = nn.Dropout(0.3)
            self.num_features = hidden
        else:
            self.pool = nn.AdaptiveMaxPool1d(1)  # max over time: the strongest match of each filter
            self.dropout = nn.Dropout(0.5)
            self.num_features = num_filters * len(filter_sizes)
        self.classifier = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.dtype not in (torch.int64, torch.int32):
            raise CnnkitError(
                f"text_cnn takes (N, seq_len) integer token ids, got {tuple(x.shape)} {x.dtype}."
            )
        if self.variant == "seed" and x.shape[1] != self.seq_len:
            raise CnnkitError(
                f"this text_cnn was built for sequences of {self.seq_len} tokens, got {x.shape[1]}; "
                f"pad or truncate (Vocabulary.encode(texts, {self.seq_len})) or rebuild with input_size."
            )
        emb = self.embed_dropout(self.embedding(x)).transpose(1, 2)  # (N, embed_dim, L) for Conv1d
        maps = [self.act(conv(pad(emb))) for pad, conv in zip(self.pads, self.convs, strict=True)]
        return torch.cat(maps, dim=1)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.variant == "seed":
            x = self.fc_act(self.fc(self.flatten(self.pool_dropout(self.pool(x)))))
        else:
            x = self.flatten(self.pool(x))
        return x if pre_logits else self.classifier(self.dropout(x))


@register_model(
    input_size=(64,),
    num_classes=2,
    paper="Kim, Convolutional Neural Networks for Sentence Classification (EMNLP); seed 004 section 5.3.8",
    year=2014,
    ref_params=3_134_274,
    ref_source=(
        "computed by hand for the seed form at vocab_size=10,000, seq_len=64, 2 classes: embedding "
        "10,000*256 = 2,560,000 + conv 5*256*64+64 = 81,984 + dense (60//2)*64*256+256 = 491,776 + "
        "output 256*2+2 = 514 = 3,134,274. Kim form: 3,000,000 + (3+4+5)*300*100+300 = 360,300 + 602 "
        "= 3,360,902"
    ),
    kind="text",
)
def text_cnn(
    num_classes: int = 2,
    vocab_size: int = 10_000,
    input_size: tuple[int] = (64,),
    variant: str = "seed",
    **kwargs,
) -> TextCNN:
    """Sentence classifier over ``vocab_size`` token ids of length ``input_size[0]``.

    ``variant="seed"`` (seed 004's Keras model) or ``"kim"`` (widths 3/4/5 x 100,
    max-over-time pooling, dropout 0.5). Other options: ``embed_dim``, ``num_filters``,
    ``filter_sizes``, ``pool_size``, ``hidden`` (seed form only).
    """
    return TextCNN(
        num_classes=num_classes, vocab_size=vocab_size, seq_len=int(input_size[0]), variant=variant, **kwargs
    )
