"""text_cnn learns a real (small) sentence-classification task offline.

The corpus, tests/data/topic_sentences.tsv, holds 210 short English sentences in three
topics (sport, weather, cooking; 70 each). Every fourth sentence is held out; the
vocabulary is built on the training sentences only, so about 30% of held-out tokens are
unknown words, as with real new text.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import cnnkit
from cnnkit.errors import CnnkitError
from cnnkit.models.text_cnn import PAD_ID, UNKNOWN_ID, Vocabulary, tokenize
from cnnkit.summary import count_params

CORPUS = Path(__file__).parent / "data" / "topic_sentences.tsv"
SEQ_LEN = 24  # the longest sentence has 16 tokens


@pytest.fixture(scope="module")
def corpus() -> dict:
    rows = [line.split("\t") for line in CORPUS.read_text().splitlines() if line and not line.startswith("#")]
    labels = sorted({label for label, _ in rows})
    texts = [text for _, text in rows]
    y = torch.tensor([labels.index(label) for label, _ in rows])
    test = [i for i in range(len(rows)) if i % 4 == 3]
    train = [i for i in range(len(rows)) if i % 4 != 3]
    vocab = Vocabulary.build(texts[i] for i in train)
    return {
        "labels": labels,
        "vocab": vocab,
        "x_train": vocab.encode([texts[i] for i in train], SEQ_LEN),
        "y_train": y[train],
        "x_test": vocab.encode([texts[i] for i in test], SEQ_LEN),
        "y_test": y[test],
    }


@pytest.fixture
def one_thread():
    # Tiny models train faster on one thread; on a busy machine, more threads only spin.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_corpus_is_balanced_and_tokenized(corpus: dict) -> None:
    assert corpus["labels"] == ["cooking", "sport", "weather"]
    assert torch.bincount(corpus["y_test"]).tolist() == [17, 17, 18]
    assert tokenize("Don't PANIC: it's 25 degrees!") == ["don't", "panic", "it's", "25", "degrees"]
    ids = corpus["vocab"].encode(["the zzzunseen"], 4)[0].tolist()
    assert ids[1:] == [UNKNOWN_ID, PAD_ID, PAD_ID] and ids[0] > UNKNOWN_ID


@pytest.mark.parametrize("variant", ["seed", "kim"])
def test_text_cnn_learns_topics(corpus: dict, variant: str, one_thread: None) -> None:
    torch.manual_seed(0)
    model = cnnkit.create_model(
        "text_cnn", num_classes=3, vocab_size=len(corpus["vocab"]), input_size=(SEQ_LEN,), variant=variant
    )
    x, y = corpus["x_train"], corpus["y_train"]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.Generator().manual_seed(0)
    for _ in range(10):
        model.train()
        perm = torch.randperm(len(x), generator=order)
        for start in range(0, len(x), 16):
            batch = perm[start : start + 16]
            loss = F.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(corpus["x_test"]).argmax(1) == corpus["y_test"]).float().mean().item()
    # chance is 1/3; both forms reach 0.73-0.92 over seeds 0-3 at 10 epochs
    assert accuracy >= 0.6, f"{variant}: held-out accuracy {accuracy:.3f}"


def test_default_configuration_and_shapes() -> None:
    seed = cnnkit.create_model("text_cnn")
    kim = cnnkit.create_model("text_cnn", variant="kim")
    assert count_params(seed) == 3_134_274
    assert count_params(kim) == 3_360_902
    tokens = torch.randint(2, 10_000, (2, 64))
    assert seed.forward_features(tokens).shape == (2, 64, 60)
    assert kim.forward_features(tokens).shape == (2, 300, 64)
    assert kim.forward_head(kim.forward_features(tokens), pre_logits=True).shape == (2, 300)
    # max-over-time pooling: the Kim form takes any sentence length
    assert kim(torch.randint(2, 10_000, (3, 17))).shape == (3, 2)
    with pytest.raises(CnnkitError, match="built for sequences of 64 tokens"):
        seed(torch.randint(2, 10_000, (2, 50)))


def test_text_cnn_trains_through_fit_on_the_tsv_and_saves_its_vocabulary(tmp_path, one_thread: None) -> None:
    """``cnnkit.fit`` on a label<TAB>text file: stratified split, vocabulary from the training
    sentences only (saved in the run directory), the usual run files and a held-out accuracy."""
    import json

    history = cnnkit.fit("text_cnn", str(CORPUS), epochs=12, out=str(tmp_path / "run"), verbose=0, seed=0)
    results = history.results
    assert results["split_sizes"] == {"train": 168, "val": 21, "test": 21}
    assert results["test_acc"] >= 0.6 and results["sample_kind"] == "sentences"  # chance is 1/3
    saved = json.loads((tmp_path / "run" / "vocab.json").read_text())
    split = json.loads((tmp_path / "run" / "split.json").read_text())["splits"]
    rows = [line.split("\t") for line in CORPUS.read_text().splitlines() if line and not line.startswith("#")]
    longest = max(len(tokenize(rows[i][1])) for i in split["train"])
    assert saved["seq_len"] == results["input_size"][0] == longest  # the longest training sentence
    assert saved["words"][:2] == ["<pad>", "<unk>"]
    train_words = {w for i in split["train"] for w in tokenize(rows[i][1])}
    assert set(saved["words"][2:]) == train_words  # nothing from the held-out sentences
    assert json.loads((tmp_path / "run" / "classes.json").read_text()) == ["cooking", "sport", "weather"]
    with pytest.raises(CnnkitError, match="is text .* train a text model on it"):
        cnnkit.fit("lenet5", str(CORPUS), epochs=1, out=str(tmp_path / "bad"), verbose=0)
