"""Vocabulary trimming keeps every task text's tokenization and logits, and only shrinks the embedding matrix."""

from __future__ import annotations

import json

import pytest

import tiny_bert
from tiny_bert import one_thread  # noqa: F401  (autouse fixture)
from tinybert_edge.errors import ModelError
from tinybert_edge.vocab import trim_vocabulary


def test_trimmed_model_gives_the_same_logits_on_task_texts(tmp_path):
    import torch

    from tinybert_edge.models import load_classifier, load_tokenizer

    source = tiny_bert.save_classifier(tmp_path / "model", seed=3)
    texts = ["good movie", "the bad plot", "a great day and a sad song"]
    result = trim_vocabulary(source, texts, tmp_path / "trimmed")
    words = {w for t in texts for w in t.split()}
    # specials + the words used + single-character tokens ("a") of the 100-token vocabulary
    assert result.vocab_after == len(tiny_bert.SPECIALS) + len(words)
    assert result.parameters_before - result.parameters_after == (100 - result.vocab_after) * 32
    assert json.loads((tmp_path / "trimmed" / "config.json").read_text())["vocab_size"] == result.vocab_after
    original, trimmed = load_classifier(source), load_classifier(tmp_path / "trimmed")
    for text in texts:
        a = original(**load_tokenizer(source)(text, return_tensors="pt")).logits
        b = trimmed(**load_tokenizer(tmp_path / "trimmed")(text, return_tensors="pt")).logits
        assert torch.equal(a, b)
    # An unseen word is spelled with what is left ([UNK] here: the tiny vocabulary has no character pieces).
    assert load_tokenizer(tmp_path / "trimmed")("happy")["input_ids"][1] == 1


def test_trimming_needs_texts(tmp_path):
    source = tiny_bert.save_classifier(tmp_path / "model", seed=3)
    with pytest.raises(ModelError, match="needs the task's texts"):
        trim_vocabulary(source, [], tmp_path / "trimmed")
    assert not (tmp_path / "trimmed").exists()
