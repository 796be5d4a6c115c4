"""Tiny random BERTs, their tokenizer and learnable synthetic text, built in-process (nothing downloads).

Shared by the distillation, engine and CLI tests: `save_classifier` writes a Hugging Face folder (config.json,
model.safetensors, vocab.txt and tokenizer files) in milliseconds.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Sequence

import pytest

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
POSITIVE = ["good", "great", "fine", "happy", "love", "nice", "best", "glad", "warm", "bright", "calm", "kind",
            "sweet", "fresh", "clean", "smart", "brave", "fair", "proud", "safe"]
NEGATIVE = ["bad", "awful", "poor", "sad", "hate", "ugly", "worst", "angry", "cold", "dark", "rude", "mean",
            "sour", "stale", "dirty", "dumb", "weak", "unfair", "ashamed", "unsafe"]
NEUTRAL = ["the", "a", "an", "this", "that", "movie", "film", "book", "food", "day", "is", "was", "it", "very",
           "quite", "so", "and", "but", "really", "place", "show", "song", "story", "plot", "actor", "scene",
           "game", "team", "city", "room", "car", "bike", "phone", "coffee", "tea", "cake", "bread", "rain",
           "sun", "wind", "tree", "river", "road", "door", "window", "chair", "table", "music", "voice", "paper",
           "page", "word", "line", "time", "year"]
WORDS = SPECIALS + POSITIVE + NEGATIVE + NEUTRAL  # 100 tokens, [PAD] = 0


@pytest.fixture(autouse=True)
def one_thread():
    """Models this small gain nothing from intra-op threads, and the test machine's cores are shared: extra
    threads only oversubscribe them. Import this fixture into a test module to use it; it restores the count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_vocab(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vocab.txt"
    path.write_text("\n".join(WORDS) + "\n", encoding="utf-8")
    return path


def tokenizer(folder: Path):
    from transformers import BertTokenizerFast

    return BertTokenizerFast(vocab_file=str(write_vocab(folder)), do_lower_case=True)


def bert_config(layers: int = 2, hidden: int = 32, heads: int = 2, labels: Sequence[str] = ("neg", "pos"),
                dropout: float = 0.0, **overrides: Any):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=len(WORDS), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=2 * hidden, max_position_embeddings=64, type_vocab_size=2,
        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
        num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)},
        **overrides,
    )


def classifier(seed: int = 0, **config_kwargs: Any):
    import torch
    from transformers import BertForSequenceClassification

    torch.manual_seed(seed)
    return BertForSequenceClassification(bert_config(**config_kwargs)).eval()


def save_classifier(folder: Path, seed: int = 0, **config_kwargs: Any) -> Path:
    """A tiny random classifier with its tokenizer, saved the way a fine-tuned teacher is."""
    model = classifier(seed=seed, **config_kwargs)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer(folder).save_pretrained(folder)
    return folder


def save_encoder(folder: Path, seed: int = 0, **config_kwargs: Any) -> Path:
    """A tiny random bare encoder (BertModel, no task head) with its tokenizer: what fine-tuning for any task
    starts from (a classifier folder is refused as the start of another task's teacher)."""
    import torch
    from transformers import BertModel

    torch.manual_seed(seed)
    BertModel(bert_config(**config_kwargs)).eval().save_pretrained(folder, safe_serialization=True)
    tokenizer(folder).save_pretrained(folder)
    return folder


def sentences(n: int, seed: int = 0) -> tuple[list[str], list[int]]:
    """Texts whose label (0 negative, 1 positive) is decided by which word list they draw from."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        label = i % 2
        polar = POSITIVE if label else NEGATIVE
        words = [rng.choice(NEUTRAL) for _ in range(rng.randint(2, 6))] + [rng.choice(polar) for _ in range(2)]
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


def text_data(n: int, label_names: Sequence[str] = ("neg", "pos"), seed: int = 0):
    from tinybert_edge.data import TextClassificationData

    texts, labels = sentences(n, seed)
    return TextClassificationData(texts=texts, labels=labels, label_names=list(label_names), source=f"synthetic{seed}")


def write_csv(path: Path, n: int, label_names: Sequence[str] = ("neg", "pos"), seed: int = 0) -> Path:
    import csv

    texts, labels = sentences(n, seed)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for text, label in zip(texts, labels):
            writer.writerow([text, label_names[label]])
    return path
