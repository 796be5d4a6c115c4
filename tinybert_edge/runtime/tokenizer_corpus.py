"""Tokenizer parity tooling: the Unicode tables the runtime tokenizer uses, probed from the reference tokenizer, and
a seeded corpus of hard strings with the reference token ids, written in a form the Java bridge can read.

`build_unicode_tables()` and the Hugging Face reference need `tokenizers`/`transformers`; the corpus generator
needs only the stdlib. File formats: docs/bundle_format.md ("Unicode tables", "Tokenizer parity files").
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import unicodedata
from pathlib import Path
from typing import Any, Iterator, Sequence

from tinybert_edge.errors import require
from tinybert_edge.io import write_text_atomic

log = logging.getLogger(__name__)

PARITY_FORMAT = "tinybert-edge-tokenizer-parity"
PARITY_VERSION = 1
_SURROGATES = range(0xD800, 0xE000)


# --- Unicode tables -------------------------------------------------------------------------------------------------

def _ranges(points: Sequence[int]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for cp in sorted(points):
        if merged and cp == merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], cp)
        else:
            merged.append((cp, cp))
    return merged


def _hex(cp: int) -> str:
    return f"{cp:04X}"


def build_unicode_tables() -> str:
    """The text of `unicode_tables.txt`: every code point's class and mappings as the installed Hugging Face
    `tokenizers` (BertNormalizer, BertPreTokenizer, NFD, Lowercase) treats it, probed one code point at a time.

    Probing the reference itself (rather than reading a Unicode database) is what makes the runtime match it
    exactly: the reference mixes Unicode versions (see docs/bundle_format.md). Takes about a minute.
    """
    tk = require("tokenizers", package="tokenizers", extra="onnx", purpose="Building the tokenizer's Unicode tables")
    normalizers, pre_tokenizers = tk.normalizers, tk.pre_tokenizers
    clean = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=False, strip_accents=False,
                                       lowercase=False).normalize_str
    chinese = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=True, strip_accents=False,
                                         lowercase=False).normalize_str
    strip = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=True,
                                       lowercase=False).normalize_str
    nfd = normalizers.NFD().normalize_str
    lower = normalizers.Lowercase().normalize_str
    split = pre_tokenizers.BertPreTokenizer().pre_tokenize_str

    control, whitespace, cjk, marks, punct, nonzero = [], [], [], [], [], []
    decompositions: dict[int, str] = {}
    lowers: dict[int, str] = {}
    for cp in range(0x110000):
        if cp in _SURROGATES:
            continue
        ch = chr(cp)
        pieces = [piece for piece, _ in split(f"a{ch}a")]
        if clean(ch) == "":
            control.append(cp)
        if pieces == ["a", "a"]:
            whitespace.append(cp)
        elif pieces == ["a", ch, "a"]:
            punct.append(cp)
        if chinese(ch) == f" {ch} ":
            cjk.append(cp)
        decomposed = nfd(ch)
        if decomposed != ch:
            if not 0xAC00 <= cp <= 0xD7A3:  # Hangul syllables decompose arithmetically (docs/bundle_format.md)
                decompositions[cp] = decomposed
        elif strip(ch) == "":
            marks.append(cp)
        lowered = lower(ch)
        if lowered != ch:
            lowers[cp] = lowered
        # A non-zero combining class shows as canonical reordering next to U+0345 (ccc 240) or U+0301 (ccc 230).
        if decomposed == ch and (nfd("\u0345" + ch) != "\u0345" + ch or nfd(ch + "\u0301") != ch + "\u0301"):
            nonzero.append(cp)
    ccc = _combining_classes(nonzero, nfd)

    lines = [f"# tinybert-edge unicode tables v1 reference=tokenizers-{tk.__version__}",
             "# format: docs/bundle_format.md (Unicode tables)"]
    for kind, points in (("control", control), ("whitespace", whitespace), ("cjk", cjk), ("mark", marks),
                         ("punct", punct)):
        lines += [f"{kind} {_hex(lo)} {_hex(hi)}" for lo, hi in _ranges(points)]
    by_value: dict[int, list[int]] = {}
    for cp, value in ccc.items():
        by_value.setdefault(value, []).append(cp)
    ccc_lines = sorted((lo, f"ccc {_hex(lo)} {_hex(hi)} {value}") for value, points in by_value.items()
                       for lo, hi in _ranges(points))
    lines += [line for _, line in ccc_lines]
    lines += [f"nfd {_hex(cp)} " + " ".join(_hex(ord(c)) for c in text) for cp, text in sorted(decompositions.items())]
    lines += [f"lower {_hex(cp)} " + " ".join(_hex(ord(c)) for c in text) for cp, text in sorted(lowers.items())]
    return "\n".join(lines) + "\n"


def _combining_classes(nonzero: Sequence[int], nfd: Any) -> dict[int, int]:
    """Combining classes of `nonzero`, found by reordering against a reference mark of every class: a mark of
    class k placed before one of class v is moved after it exactly when k > v, so k is the smallest v that does not
    move it. Python's database supplies the reference marks (a class never changes once assigned)."""
    references: dict[int, str] = {}
    for cp in nonzero:  # only marks the reference reorders: a mark newer than its tables has class 0 there
        references.setdefault(unicodedata.combining(chr(cp)), chr(cp))
    references.pop(0, None)
    values = sorted(references)
    classes: dict[int, int] = {}
    for cp in nonzero:
        ch = chr(cp)
        above = [v for v in values if nfd(ch + references[v]) == ch + references[v]]  # v >= k: not reordered
        classes[cp] = above[0] if above else 255
        known = unicodedata.combining(ch)
        if known and known != classes[cp]:
            log.warning("U+%04X: probed combining class %d, Python's database says %d", cp, classes[cp], known)
    return classes


# --- corpus -------------------------------------------------------------------------------------------------------

_LATIN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZàáâãäåæçèéêëìíîïñòóôõöøùúûüýÿßœŒÀÉÎÕÜĀăĄćČďĘğİıŁńŘşŠťůŽǅǄẞﬁ"
_CYRILLIC = "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯїієґ"
_GREEK = "αβγδεζηθικλμνξοπρσςτυφχψωΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩάέήίόύώΐΰ"
_ARABIC = "ابتثجحخدذرزسشصضطظعغفقكلمنهويءآأإةى" + "\u064b\u064e\u064f\u0650\u0651\u0652" + "٠١٢٣٤٥٦٧٨٩،؛؟"
_DEVANAGARI = "अआइईउऊएऐओऔकखगघङचछजझञटठडढणतथदधनपफबभमयरलवशषसह" + "\u093e\u093f\u0940\u0941\u0942\u0947\u0948\u094b\u094c\u094d\u0902\u0903" + "।॥०१२३"
_THAI = "กขฃคฅฆงจฉชซฌญฎฏฐฑฒณดตถทธนบปผฝพฟภมยรฤลฦวศษสหฬอฮ" + "\u0e31\u0e34\u0e35\u0e36\u0e37\u0e38\u0e39\u0e47\u0e48\u0e49\u0e4a\u0e4b" + "ะาำเแโใไๆฯ๐๑"
_HANGUL = "".join(chr(cp) for cp in range(0xAC00, 0xD7A4, 97)) + "각ㄱㅏ"
_CJK = "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日於起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持取设始版双历越史商千片容研像找友孩站广改议形委早房音火际则首单据导影失拿网香似斯专石若兵弟谁校读志飞观争究包组造落视济喜离虽坏兴跑" + "\U00020000\U0002A700\U0002B739\U0002B820\U00031350\U000323AF\u3400\uF900\U0002F800"
_EMOJI = ["😀", "😂", "🥰", "🫠", "👍", "👍🏽", "👋🏿", "🧑🏻‍💻", "👩‍👩‍👧‍👦", "🏳️‍🌈", "❤️", "🇫🇷", "🇯🇵", "✌️", "🤷‍♀️", "1️⃣", "🦀",
          "🪿", "☕", "🙂‍↔️"]
_COMBINING = [chr(cp) for cp in (0x0300, 0x0301, 0x0302, 0x0303, 0x0308, 0x030A, 0x0316, 0x0323, 0x0327, 0x0328,
                                 0x0345, 0x035C, 0x0361, 0x05B0, 0x0E3A, 0x1B44, 0x302E, 0x1D165, 0x20DD, 0xFE0F,
                                 0x093C, 0x0951)]
_CONTROL = ["\x00", "\x01", "\x07", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\x9f", "\ufffd", "\u00ad", "\u200e",
            "\u202e", "\ufeff", "\ue000", "\U000F0000", "\U000E0041", "\u0600", "\U0001BCA0"]
_ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\u180e", "\ufeff"]
_SPACES = [" ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u2028", "\u2029", "\u3000", "\u2003", "\u202f", "\u1680", "\x1c"]
_PUNCT = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~¡¿«»“”‘’…—–‐‹›„§¶·•†‡‰′″※⁂、。「」『』【】〈〉《》・！？｡，：；（）؟،؛।॥" + "\u061d\u166d\u2e4f\u2e52"
_SPECIAL = ["[CLS]", "[SEP]", "[UNK]", "[PAD]", "[MASK]", "[cls]", "[CLS", "CLS]", "[[SEP]]", "[MASK][MASK]"]
_ENGLISH = ("the movie was great and i loved every minute of it . what a terrible , boring waste of time ! "
            "customer service answered quickly but the product broke after two days . i can't believe it's "
            "already friday ; the weather is nice , isn't it ? unbelievably overpriced food at the restaurant "
            "downtown , though the staff were friendly").split()


def _word(rng: random.Random, alphabet: str, low: int = 1, high: int = 10) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(low, high)))


def _fragment(rng: random.Random, vocab_words: Sequence[str]) -> str:
    kind = rng.randrange(22)
    if kind == 0:
        return _word(rng, _LATIN)
    if kind == 1:
        return _word(rng, _CYRILLIC)
    if kind == 2:
        return _word(rng, _GREEK) + rng.choice(["", "Σ", "ς", "Σ."])
    if kind == 3:
        return _word(rng, _CJK, 1, 6)
    if kind == 4:
        return _word(rng, _ARABIC)
    if kind == 5:
        return _word(rng, _DEVANAGARI)
    if kind == 6:
        return _word(rng, _THAI)
    if kind == 7:
        return _word(rng, _HANGUL, 1, 5)
    if kind == 8:
        return "".join(rng.choice(_EMOJI) for _ in range(rng.randint(1, 4)))
    if kind == 9:
        base = _word(rng, _LATIN + _GREEK + _CYRILLIC, 1, 4)
        return base + "".join(rng.choice(_COMBINING) for _ in range(rng.randint(1, 4))) + _word(rng, _LATIN, 0, 3)
    if kind == 10:
        return _word(rng, _LATIN, 0, 4) + rng.choice(_CONTROL) + _word(rng, _LATIN, 0, 4)
    if kind == 11:
        return _word(rng, _LATIN, 1, 4) + rng.choice(_ZERO_WIDTH) + _word(rng, _LATIN, 1, 4)
    if kind == 12:  # over max_input_chars_per_word (100) or right at the limit
        return _word(rng, rng.choice([_LATIN, "ab", "é", "x"]), 95, 140)
    if kind == 13:
        return _word(rng, "0123456789", 1, 12) + rng.choice(["", ".5", ",000", "%", "th", "km"])
    if kind == 14:
        return _word(rng, _PUNCT, 1, 8)
    if kind == 15:
        return " ".join(rng.choice(_ENGLISH) for _ in range(rng.randint(3, 25)))
    if kind == 16 and vocab_words:
        return " ".join(rng.choice(vocab_words) for _ in range(rng.randint(2, 20)))
    if kind == 17:
        return rng.choice(_SPECIAL)
    if kind == 18:  # any code point at all (surrogates excepted): unassigned, private use, new scripts
        return "".join(chr(rng.choice([rng.randrange(0xD800), rng.randrange(0xE000, 0x110000),
                                       rng.randrange(0x2000, 0x3400), rng.randrange(0x10000, 0x20000)]))
                       for _ in range(rng.randint(1, 6)))
    if kind == 19:
        return rng.choice(vocab_words or _ENGLISH).upper() + rng.choice(_PUNCT)
    if kind == 20:
        return "".join(rng.choice([_word(rng, _LATIN, 1, 3), rng.choice(_PUNCT), rng.choice(_CJK),
                                   rng.choice(_EMOJI)]) for _ in range(rng.randint(2, 8)))
    return rng.choice(_ENGLISH).capitalize()


def generate_corpus(n: int, seed: int = 0, vocab_words: Sequence[str] = ()) -> Iterator[str]:
    """`n` seeded strings mixing scripts, emoji (ZWJ sequences, skin tones, flags), combining marks, control and
    zero-width characters, odd whitespace, NUL, words over 100 characters, digits, punctuation runs, special tokens
    typed as text, arbitrary code points and English-looking sentences built from `vocab_words`. Every 50th string
    is long enough to be truncated. The same (n, seed, vocab_words) always gives the same strings."""
    rng = random.Random(seed)
    words = [w for w in vocab_words if w.isalpha() and not w.startswith("##")]
    for index in range(n):
        count = rng.randint(40, 120) if index % 50 == 49 else rng.randint(0, 6)
        parts = []
        for _ in range(count):
            parts.append(_fragment(rng, words))
            parts.append(rng.choice(_SPACES) if rng.random() < 0.85 else "")
        yield "".join(parts)


# --- reference ids and parity files -------------------------------------------------------------------------------

def hf_fast_tokenizer(vocab_file: str | os.PathLike[str], settings: Any) -> Any:
    """Hugging Face's BertTokenizerFast built from `vocab_file` with the runtime tokenizer's settings."""
    transformers = require("transformers", package="transformers", extra="onnx",
                           purpose="Comparing with Hugging Face's tokenizer")
    return transformers.BertTokenizerFast(
        vocab_file=str(vocab_file), do_lower_case=settings.do_lower_case, strip_accents=settings.strip_accents,
        tokenize_chinese_chars=settings.tokenize_chinese_chars, unk_token=settings.unk_token,
        sep_token=settings.sep_token, pad_token=settings.pad_token, cls_token=settings.cls_token,
        mask_token=settings.mask_token)


def hf_fast_ids(tokenizer: Any, texts: Sequence[str], max_length: int, batch_size: int = 2048) -> list[list[int]]:
    ids: list[list[int]] = []
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start : start + batch_size])
        ids.extend(tokenizer(chunk, truncation=True, max_length=max_length)["input_ids"])
    return ids


def parity_mismatches(n: int, seed: int, vocab_file: str | os.PathLike[str], settings: Any = None,
                      keep: int = 10) -> dict[str, Any]:
    """Tokenize `n` corpus strings with the runtime tokenizer and Hugging Face's fast one; count disagreements."""
    from tinybert_edge.runtime.wordpiece import TokenizerSettings, WordPieceTokenizer, load_vocab

    settings = settings or TokenizerSettings()
    vocab = load_vocab(vocab_file)
    runtime = WordPieceTokenizer(vocab, settings)
    texts = list(generate_corpus(n, seed, list(vocab)))
    expected = hf_fast_ids(hf_fast_tokenizer(vocab_file, settings), texts, settings.max_length)
    mismatches, examples = 0, []
    for text, ids in zip(texts, expected):
        got = runtime.encode(text).input_ids
        if got != ids:
            mismatches += 1
            if len(examples) < keep:
                examples.append({"text": text, "expected": ids, "runtime": got})
    return {"n": n, "seed": seed, "mismatches": mismatches, "examples": examples,
            "truncated": sum(len(ids) == settings.max_length for ids in expected)}


def settings_dict(settings: Any) -> dict[str, Any]:
    """The tokenizer object of manifest.json and of a parity file's header (docs/bundle_format.md)."""
    return {
        "type": "bert-wordpiece",
        "vocab_file": "vocab.txt",
        "unicode_tables_file": "unicode_tables.txt",
        "do_lower_case": settings.do_lower_case,
        "strip_accents": settings.effective_strip_accents,
        "tokenize_chinese_chars": settings.tokenize_chinese_chars,
        "clean_text": settings.clean_text,
        "max_length": settings.max_length,
        "max_input_chars_per_word": settings.max_input_chars_per_word,
        "continuing_subword_prefix": settings.continuing_subword_prefix,
        "unk_token": settings.unk_token,
        "cls_token": settings.cls_token,
        "sep_token": settings.sep_token,
        "pad_token": settings.pad_token,
        "mask_token": settings.mask_token,
        "special_tokens": list(settings.special_tokens),
    }


def write_parity_file(path: str | os.PathLike[str], n: int, seed: int, vocab: str | os.PathLike[str],
                      settings: Any = None) -> Path:
    """Write `n` corpus strings and their expected ids as JSON Lines (docs/bundle_format.md, "Tokenizer parity
    files"). Expected ids come from Hugging Face's fast tokenizer when transformers is installed, else from the
    runtime tokenizer; the header says which."""
    from tinybert_edge.runtime.wordpiece import TokenizerSettings, WordPieceTokenizer, load_vocab

    settings = settings or TokenizerSettings()
    words = load_vocab(vocab)
    texts = list(generate_corpus(n, seed, list(words)))
    try:
        ids = hf_fast_ids(hf_fast_tokenizer(vocab, settings), texts, settings.max_length)
        reference = "hf-fast"
    except ImportError:
        runtime = WordPieceTokenizer(words, settings)
        ids = [runtime.encode(text).input_ids for text in texts]
        reference = "runtime"
    header = {"format": PARITY_FORMAT, "version": PARITY_VERSION, "n": n, "seed": seed,
              "vocab_sha256": hashlib.sha256(Path(vocab).read_bytes()).hexdigest(), "reference": reference,
              "tokenizer": settings_dict(settings)}
    lines = [json.dumps(header, ensure_ascii=True)]
    lines += [json.dumps({"text": text, "input_ids": case}, ensure_ascii=True) for text, case in zip(texts, ids)]
    return write_text_atomic(path, "\n".join(lines) + "\n")
