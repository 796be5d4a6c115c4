"""A BERT WordPiece tokenizer in pure Python (stdlib only) that reproduces Hugging Face's `BertTokenizerFast`
token for token: special tokens cut out of the raw text, clean text, CJK split, NFD accent stripping,
lower-casing, whitespace/punctuation split, greedy longest-match WordPiece, [CLS]/[SEP] and truncation.

The Unicode behaviour comes from `unicode_tables.txt` (probed from the reference `tokenizers` by
`tokenizer_corpus.build_unicode_tables`), not from the host's `unicodedata`, whose Unicode version differs from
the reference's. The algorithm, step by step, and the table format: docs/bundle_format.md. The Java bridge
implements the same steps over the same tables.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from tinybert_edge.errors import ConfigError, DataError

TABLES_FILE = Path(__file__).with_name("unicode_tables.txt")
TABLE_KINDS = ("control", "whitespace", "cjk", "mark", "punct", "ccc", "nfd", "lower")
_HANGUL_FIRST, _HANGUL_LAST = 0xAC00, 0xD7A3
_WORD_CACHE_LIMIT = 100_000


def _char_class(ranges: Sequence[tuple[int, int]]) -> str:
    """A regex character class body for inclusive code point ranges."""
    return "".join(re.escape(chr(lo)) if lo == hi else f"{re.escape(chr(lo))}-{re.escape(chr(hi))}"
                   for lo, hi in ranges)


def _hangul_nfd(cp: int) -> str:
    s = cp - _HANGUL_FIRST
    lead, vowel, tail = 0x1100 + s // 588, 0x1161 + (s % 588) // 28, s % 28
    return chr(lead) + chr(vowel) + (chr(0x11A7 + tail) if tail else "")


class UnicodeTables:
    """The character classes and mappings of docs/bundle_format.md ("Unicode tables"), compiled to regexes and
    `str.translate` tables."""

    def __init__(self, text: str, source: str = "<text>") -> None:
        ranges: dict[str, list[tuple[int, int]]] = {kind: [] for kind in ("control", "whitespace", "cjk", "mark",
                                                                            "punct")}
        self.ccc: dict[int, int] = {}
        nfd: dict[int, str] = {}
        lower: dict[int, str] = {}
        self.header = ""
        for number, line in enumerate(text.splitlines(), 1):
            if line.startswith("#") or not line.strip():
                self.header = self.header or line
                continue
            kind, *fields = line.split(" ")
            try:
                values = [int(f, 16) for f in fields[:3 if kind == "ccc" else None]]
                if kind in ranges and len(values) == 2:
                    ranges[kind].append((values[0], values[1]))
                elif kind == "ccc" and len(values) == 3:
                    value = int(fields[2])  # the class is decimal
                    self.ccc.update({cp: value for cp in range(values[0], values[1] + 1)})
                elif kind in ("nfd", "lower") and len(values) >= 2:
                    (nfd if kind == "nfd" else lower)[values[0]] = "".join(map(chr, values[1:]))
                else:
                    raise ValueError(f"unknown entry kind '{kind}' or wrong field count")
            except ValueError as exc:
                raise DataError(f"line {number} of the Unicode tables '{source}' is malformed ({exc}): {line!r}; "
                                "regenerate them with tinybert_edge.runtime.tokenizer_corpus.build_unicode_tables")
        missing = [kind for kind, found in ranges.items() if not found] + ([] if nfd else ["nfd"]) + \
            ([] if lower else ["lower"])
        if missing:
            raise DataError(f"the Unicode tables '{source}' have no {', '.join(missing)} entries; "
                            "regenerate them with tinybert_edge.runtime.tokenizer_corpus.build_unicode_tables")
        self.ranges = ranges
        self.control_re = re.compile(f"[{_char_class(ranges['control'])}]+")
        self.whitespace_re = re.compile(f"[{_char_class(ranges['whitespace'])}]")
        self.cjk_re = re.compile(f"[{_char_class(ranges['cjk'])}]")
        self.mark_re = re.compile(f"[{_char_class(ranges['mark'])}]+")
        self.ccc_run_re = re.compile(f"[{_char_class(_merge(sorted(self.ccc)))}]{{2,}}")
        self.word_re = re.compile(f"[{_char_class(ranges['punct'])}]|"
                                  f"[^{_char_class(ranges['punct'])}{_char_class(ranges['whitespace'])}]+")
        nfd.update({cp: _hangul_nfd(cp) for cp in range(_HANGUL_FIRST, _HANGUL_LAST + 1)})
        self.nfd = nfd
        self.lower = lower

    @classmethod
    def from_file(cls, path: str | Path) -> "UnicodeTables":
        try:
            text = Path(path).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read the Unicode tables '{path}': {exc}; reinstall tinybert-edge or repackage "
                            "the bundle") from exc
        return cls(text, str(path))

    def reorder(self, text: str) -> str:
        """Canonical ordering: each run of non-zero combining classes stably sorted by class."""
        return self.ccc_run_re.sub(lambda m: "".join(sorted(m.group(0), key=lambda c: self.ccc[ord(c)])), text)


def _merge(points: Sequence[int]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for cp in points:
        if merged and cp == merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], cp)
        else:
            merged.append((cp, cp))
    return merged


@functools.lru_cache(maxsize=4)
def default_tables(path: str = str(TABLES_FILE)) -> UnicodeTables:
    """The tables shipped with the SDK (cached per path)."""
    return UnicodeTables.from_file(path)


@dataclass(frozen=True)
class TokenizerSettings:
    """What a BERT tokenizer does, in the names of Hugging Face's `BertTokenizerFast`. `strip_accents=None`
    follows `do_lower_case`, as in Hugging Face."""

    do_lower_case: bool = True
    strip_accents: bool | None = None
    tokenize_chinese_chars: bool = True
    clean_text: bool = True
    max_length: int = 512
    max_input_chars_per_word: int = 100
    continuing_subword_prefix: str = "##"
    unk_token: str = "[UNK]"
    cls_token: str = "[CLS]"
    sep_token: str = "[SEP]"
    pad_token: str = "[PAD]"
    mask_token: str = "[MASK]"
    special_tokens: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

    def __post_init__(self) -> None:
        if not isinstance(self.max_length, int) or isinstance(self.max_length, bool) or self.max_length < 3:
            raise ConfigError(f"TokenizerSettings.max_length = {self.max_length!r} is not allowed; allowed: an "
                              "integer >= 3 (room for [CLS], [SEP] and one token)")
        if not isinstance(self.max_input_chars_per_word, int) or self.max_input_chars_per_word < 1:
            raise ConfigError(f"TokenizerSettings.max_input_chars_per_word = {self.max_input_chars_per_word!r} is "
                              "not allowed; allowed: a positive integer (Hugging Face uses 100)")
        object.__setattr__(self, "special_tokens", tuple(self.special_tokens))

    @property
    def effective_strip_accents(self) -> bool:
        return self.do_lower_case if self.strip_accents is None else bool(self.strip_accents)

    @classmethod
    def from_hf_folder(cls, folder: str | Path, max_length: int | None = None) -> "TokenizerSettings":
        """Settings from a Hugging Face tokenizer folder (tokenizer_config.json, else tokenizer.json's
        normalizer), as `BertTokenizerFast.from_pretrained` would read them."""
        folder = Path(folder)
        config: dict = {}
        config_file = folder / "tokenizer_config.json"
        if config_file.is_file():
            config = json.loads(config_file.read_text(encoding="utf-8"))
        normalizer: dict = {}
        tokenizer_file = folder / "tokenizer.json"
        if tokenizer_file.is_file():
            normalizer = json.loads(tokenizer_file.read_text(encoding="utf-8")).get("normalizer") or {}
        if normalizer and normalizer.get("type") != "BertNormalizer":
            raise ConfigError(f"'{tokenizer_file}' uses the normalizer {normalizer.get('type')!r}; the on-device "
                              "tokenizer implements BERT WordPiece (BertNormalizer) only")
        lower = config.get("do_lower_case", normalizer.get("lowercase", True))
        specials = {key: config.get(key) or default for key, default in
                    (("unk_token", "[UNK]"), ("cls_token", "[CLS]"), ("sep_token", "[SEP]"),
                     ("pad_token", "[PAD]"), ("mask_token", "[MASK]"))}
        limit = max_length or config.get("max_length") or min(int(config.get("model_max_length") or 512), 512)
        return cls(
            do_lower_case=bool(lower),
            strip_accents=config.get("strip_accents", normalizer.get("strip_accents")),
            tokenize_chinese_chars=bool(config.get("tokenize_chinese_chars",
                                                   normalizer.get("handle_chinese_chars", True))),
            clean_text=bool(normalizer.get("clean_text", True)),
            max_length=int(limit),
            special_tokens=tuple(dict.fromkeys([specials["pad_token"], specials["unk_token"], specials["cls_token"],
                                                specials["sep_token"], specials["mask_token"]])),
            **specials,
        )


@dataclass(frozen=True)
class Encoding:
    """One encoded text (or pair): ids with [CLS]/[SEP], unpadded.

    With offsets (`encode(..., offsets=True)`, `encode_windows`): each token's character span `offsets[i]` in the
    text it came from (`sequence_ids[i]`: 0 the first text, 1 the pair, None a special token, span (0, 0)), the
    index of its word in that text (`word_ids`, None for special tokens; words are what pre-tokenization splits,
    as Hugging Face's word_ids), the texts themselves, and `input_index`: which input of a `predict` call the
    encoding belongs to (a long context gives several windows).
    """

    input_ids: list[int]
    token_type_ids: list[int] = field(default_factory=list)
    offsets: list[tuple[int, int]] = field(default_factory=list)
    sequence_ids: list[int | None] = field(default_factory=list)
    word_ids: list[int | None] = field(default_factory=list)
    texts: tuple[str, ...] = ()
    input_index: int = 0

    @property
    def attention_mask(self) -> list[int]:
        return [1] * len(self.input_ids)

    def __len__(self) -> int:
        return len(self.input_ids)


def load_vocab(path: str | Path) -> dict[str, int]:
    """vocab.txt as `tokenizers` reads it (see parse_vocab)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read the vocabulary '{path}': {exc.strerror}; pass the vocab.txt of the model") from exc
    return parse_vocab(data, str(path))


def parse_vocab(data: bytes, source: str = "<bytes>") -> dict[str, int]:
    """One token per `\\n`-separated line, trailing whitespace trimmed, id = line number, a later duplicate wins."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"the vocabulary '{source}' is not UTF-8 ({exc.reason} at byte {exc.start}); pass the "
                        "vocab.txt of the model") from exc
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return {_rstrip_whitespace(line): index for index, line in enumerate(lines)}


def _rstrip_whitespace(token: str) -> str:
    # Rust's trim_end: Unicode White_Space, which differs from str.rstrip() on U+001C-U+001F
    end = len(token)
    while end and default_tables().whitespace_re.fullmatch(token[end - 1]):
        end -= 1
    return token[:end]


def check_text(text: str | bytes, what: str = "text") -> str:
    """`text` as a str: bytes must be UTF-8; a str must be encodable as UTF-8 (no lone surrogates)."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            return bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{what} is not valid UTF-8 ({exc.reason}, byte 0x{bytes(text)[exc.start]:02x} at offset "
                            f"{exc.start}); decode it with its real encoding and pass a str") from exc
    if not isinstance(text, str):
        raise DataError(f"{what} is a {type(text).__name__}; pass a str (or UTF-8 bytes)")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise DataError(f"{what} holds the lone surrogate U+{ord(text[exc.start]):04X} at index {exc.start}, "
                            "which is not text; fix the decoding that produced it") from exc
    return text


class WordPieceTokenizer:
    """BERT WordPiece over a vocabulary (`{token: id}`), matching Hugging Face's fast tokenizer."""

    kind = "python"

    def __init__(self, vocab: Mapping[str, int], settings: TokenizerSettings | None = None,
                 tables: UnicodeTables | None = None) -> None:
        self.vocab = dict(vocab)
        self.settings = settings or TokenizerSettings()
        self.tables = tables or default_tables()
        s = self.settings
        missing = [t for t in (s.unk_token, s.cls_token, s.sep_token, s.pad_token) if t not in self.vocab]
        if missing:
            raise DataError(f"the vocabulary has no {', '.join(missing)}; use the vocab.txt the model was trained with")
        self.unk_id, self.cls_id = self.vocab[s.unk_token], self.vocab[s.cls_token]
        self.sep_id, self.pad_id = self.vocab[s.sep_token], self.vocab[s.pad_token]
        specials = sorted((t for t in s.special_tokens if t in self.vocab), key=len, reverse=True)
        self._special_re = re.compile("(" + "|".join(map(re.escape, specials)) + ")") if specials else None
        self._words: dict[str, tuple[int, ...]] = {}

    @classmethod
    def from_files(cls, vocab_file: str | Path, settings: TokenizerSettings | None = None,
                   tables_file: str | Path | None = None) -> "WordPieceTokenizer":
        tables = UnicodeTables.from_file(tables_file) if tables_file else None
        return cls(load_vocab(vocab_file), settings, tables)

    # --- the steps of docs/bundle_format.md ------------------------------------------------------------------------

    def normalize(self, text: str) -> str:
        """Steps 1-4: clean, CJK split, strip accents, lower-case."""
        s, t = self.settings, self.tables
        if s.clean_text:
            text = t.whitespace_re.sub(" ", t.control_re.sub("", text))
        if s.tokenize_chinese_chars:
            text = t.cjk_re.sub(r" \g<0> ", text)
        if s.effective_strip_accents:
            text = text.translate(t.nfd)
            if len(text) > 1:
                text = t.reorder(text)
            text = t.mark_re.sub("", text)
        if s.do_lower_case:
            text = text.translate(t.lower)
        return text

    def pre_tokenize(self, normalized: str) -> list[str]:
        """Step 5: words split on whitespace, punctuation characters as words of their own."""
        return self.tables.word_re.findall(normalized)

    def word_ids(self, word: str) -> tuple[int, ...]:
        """Step 6: greedy longest-match-first WordPiece; the whole word is [UNK] when it is too long or some rest
        has no vocab entry."""
        cached = self._words.get(word)
        if cached is not None:
            return cached
        ids: tuple[int, ...]
        if len(word) > self.settings.max_input_chars_per_word:
            ids = (self.unk_id,)
        else:
            pieces, start, vocab, prefix = [], 0, self.vocab, self.settings.continuing_subword_prefix
            while start < len(word):
                end = len(word)
                while end > start:
                    piece = word[start:end] if start == 0 else prefix + word[start:end]
                    if piece in vocab:
                        pieces.append(vocab[piece])
                        break
                    end -= 1
                if end == start:
                    pieces = [self.unk_id]
                    break
                start = end
            ids = tuple(pieces)
        if len(self._words) < _WORD_CACHE_LIMIT:
            self._words[word] = ids
        return ids

    def normalize_with_origins(self, text: str) -> tuple[str, list[int]]:
        """`normalize(text)` and, for each of its characters, the index of the character of `text` it came from
        (normalization only drops, expands and reorders characters, so each has exactly one origin)."""
        s, t = self.settings, self.tables
        chars: list[tuple[str, int]] = []
        for index, char in enumerate(text):
            if s.clean_text:
                if t.control_re.match(char):
                    continue
                if t.whitespace_re.match(char):
                    char = " "
            if s.tokenize_chinese_chars and t.cjk_re.match(char):
                chars += [(" ", index), (char, index), (" ", index)]
            else:
                chars.append((char, index))
        if s.effective_strip_accents:
            chars = [(c, i) for char, i in chars for c in char.translate(t.nfd)]
            ccc = t.ccc
            start = 0
            while start < len(chars):  # canonical ordering: stable sort of each run of non-zero classes
                if ccc.get(ord(chars[start][0]), 0) == 0:
                    start += 1
                    continue
                end = start
                while end < len(chars) and ccc.get(ord(chars[end][0]), 0) != 0:
                    end += 1
                chars[start:end] = sorted(chars[start:end], key=lambda pair: ccc[ord(pair[0])])
                start = end
            chars = [(c, i) for c, i in chars if not t.mark_re.match(c)]
        if s.do_lower_case:
            chars = [(c, i) for char, i in chars for c in char.translate(t.lower)]
        return "".join(c for c, _ in chars), [i for _, i in chars]

    def word_pieces(self, word: str) -> list[tuple[int, int, int]]:
        """Step 6 with spans: (id, start, end) of each piece, in characters of `word` ([UNK] spans the word)."""
        ids = self.word_ids(word)
        if ids == (self.unk_id,) and word not in self.vocab:
            return [(self.unk_id, 0, len(word))]
        spans, start, inverse_prefix = [], 0, len(self.settings.continuing_subword_prefix)
        for position, token_id in enumerate(ids):
            piece = self._token_of(token_id)
            length = len(piece) - (inverse_prefix if position else 0)
            spans.append((token_id, start, start + length))
            start += length
        return spans

    def _token_of(self, token_id: int) -> str:
        inverse = getattr(self, "_inverse", None)
        if inverse is None:
            inverse = self._inverse = {index: token for token, index in self.vocab.items()}
        return inverse[token_id]

    def tokens_with_offsets(self, text: str | bytes) -> tuple[list[int], list[tuple[int, int]], list[int]]:
        """`token_ids(text)` with each token's (start, end) character span in `text` and its word index (special
        tokens typed in the text are words of their own), as Hugging Face's fast tokenizer reports them."""
        text = check_text(text)
        pieces = self._special_re.split(text) if self._special_re else [text]
        ids: list[int] = []
        offsets: list[tuple[int, int]] = []
        words: list[int] = []
        position, word = 0, 0
        for index, piece in enumerate(pieces):
            if index % 2:
                ids.append(self.vocab[piece])
                offsets.append((position, position + len(piece)))
                words.append(word)
                word += 1
            elif piece:
                normalized, origins = self.normalize_with_origins(piece)
                for match in self.tables.word_re.finditer(normalized):
                    for token_id, start, end in self.word_pieces(match.group(0)):
                        ids.append(token_id)
                        offsets.append((position + origins[match.start() + start],
                                        position + origins[match.start() + end - 1] + 1))
                        words.append(word)
                    word += 1
            position += len(piece)
        return ids, offsets, words

    def token_ids(self, text: str | bytes) -> list[int]:
        """The ids of `text`'s tokens, without [CLS]/[SEP] or truncation."""
        text = check_text(text)
        pieces = self._special_re.split(text) if self._special_re else [text]
        ids: list[int] = []
        for index, piece in enumerate(pieces):
            if index % 2:  # a special token matched in the raw text
                ids.append(self.vocab[piece])
                continue
            if piece:
                for word in self.pre_tokenize(self.normalize(piece)):
                    ids.extend(self.word_ids(word))
        return ids

    def tokenize(self, text: str | bytes) -> list[str]:
        """Token strings (for reading and debugging)."""
        inverse = {index: token for token, index in self.vocab.items()}
        return [inverse[i] for i in self.token_ids(text)]

    def encode(self, text: str | bytes, pair: str | bytes | None = None, max_length: int | None = None,
               offsets: bool = False) -> Encoding:
        """[CLS] text [SEP] (pair [SEP]), truncated to `max_length` (default: the settings') the way Hugging Face's
        fast tokenizer truncates (longest first for pairs). An empty `pair` is no pair, as in Hugging Face. With
        `offsets`, the encoding also carries each token's character span, sequence and word (see Encoding)."""
        if offsets:
            return self._encode_with_offsets(text, pair, max_length)
        limit = max_length if max_length is not None else self.settings.max_length
        first = self.token_ids(text)
        if not pair:  # Hugging Face encodes an empty pair text as no pair at all
            if pair is not None and not isinstance(pair, (str, bytes, bytearray)):
                raise DataError(f"pair is a {type(pair).__name__}; pass a str (or UTF-8 bytes)")
            if limit < 2:
                raise ConfigError(f"max_length = {limit} is not allowed; allowed: >= 2 ([CLS] and [SEP])")
            first = first[: max(limit - 2, 0)]
            ids = [self.cls_id, *first, self.sep_id]
            return Encoding(ids, [0] * len(ids))
        second = self.token_ids(pair)
        if limit < 3:
            raise ConfigError(f"max_length = {limit} is not allowed for a pair; allowed: >= 3")
        n1, n2 = _longest_first(len(first), len(second), limit - 3)
        first, second = first[:n1], second[:n2]
        ids = [self.cls_id, *first, self.sep_id, *second, self.sep_id]
        return Encoding(ids, [0] * (len(first) + 2) + [1] * (len(second) + 1))

    def _encode_with_offsets(self, text: str | bytes, pair: str | bytes | None, max_length: int | None) -> Encoding:
        text = check_text(text)
        plain = self.encode(text, pair, max_length)  # the ids and truncation of the plain path, checked the same way
        first = self.tokens_with_offsets(text)
        n1 = plain.token_type_ids.count(0) - 2
        sequences = [(0, text, [part[:n1] for part in first])]
        if pair:
            pair = check_text(pair, "pair")
            second = self.tokens_with_offsets(pair)
            n2 = len(plain.input_ids) - n1 - 3
            sequences.append((1, pair, [part[:n2] for part in second]))
        return _assemble(self, sequences, texts=tuple(t for _, t, _ in sequences))

    def encode_windows(self, question: str | bytes, context: str | bytes, max_length: int | None = None,
                       stride: int = 128, input_index: int = 0) -> list[Encoding]:
        """[CLS] question [SEP] window [SEP] for each window over `context`, with offsets: what Hugging Face's fast
        tokenizer gives with truncation="only_second", `stride` and return_overflowing_tokens. Windows hold up to
        `max_length - len(question) - 3` context tokens and overlap by `stride` tokens; DataError when the question
        leaves no more than `stride` tokens for the context."""
        limit = max_length if max_length is not None else self.settings.max_length
        question, context = check_text(question, "question"), check_text(context, "context")
        q_ids, q_offsets, q_words = self.tokens_with_offsets(question)
        c_ids, c_offsets, c_words = self.tokens_with_offsets(context)
        room = limit - len(q_ids) - 3
        if room <= stride:
            raise DataError(f"the question has {len(q_ids)} tokens, which leaves {max(room, 0)} of the {limit} for "
                            f"the context, not more than the document stride ({stride}); shorten the question or "
                            "raise max_length")
        step = room - stride
        windows, start = [], 0
        while True:
            stop = min(start + room, len(c_ids))
            part = [c_ids[start:stop], c_offsets[start:stop], c_words[start:stop]]
            windows.append(_assemble(self, [(0, question, [q_ids, q_offsets, q_words]), (1, context, part)],
                                     texts=(question, context), input_index=input_index))
            if stop >= len(c_ids):
                return windows
            start += step

    def encode_batch(self, texts: Iterable[str | bytes], max_length: int | None = None) -> list[Encoding]:
        return [self.encode(text, max_length=max_length) for text in texts]


def _assemble(tokenizer: WordPieceTokenizer, sequences: Sequence[tuple[int, str, Sequence[list]]],
              texts: tuple[str, ...], input_index: int = 0) -> Encoding:
    """[CLS] first [SEP] (second [SEP]) from (sequence id, text, [ids, offsets, word ids]) parts."""
    ids, types, offsets, seq_ids, words = [tokenizer.cls_id], [0], [(0, 0)], [None], [None]
    for sequence, _, (part_ids, part_offsets, part_words) in sequences:
        ids += [*part_ids, tokenizer.sep_id]
        types += [sequence] * (len(part_ids) + 1)
        offsets += [*part_offsets, (0, 0)]
        seq_ids += [sequence] * len(part_ids) + [None]
        words += [*part_words, None]
    return Encoding(ids, types, offsets, seq_ids, words, texts, input_index)


def _longest_first(n1: int, n2: int, budget: int) -> tuple[int, int]:
    """Token counts kept from a pair under `budget`, as tokenizers' TruncationStrategy::LongestFirst computes them."""
    if n1 + n2 <= budget:
        return n1, n2
    swap = n1 > n2
    if swap:
        n1, n2 = n2, n1
    n2 = n1 if n1 > budget else max(n1, budget - n1)
    if n1 + n2 > budget:
        n1 = budget // 2
        n2 = n1 + budget % 2
    return (n2, n1) if swap else (n1, n2)
