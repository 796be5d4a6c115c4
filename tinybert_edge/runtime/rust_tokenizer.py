"""The bundle runtime's tokenizer on Hugging Face's Rust `tokenizers`, when that package is installed.

It is built from the same vocabulary and settings as the pure-Python `WordPieceTokenizer` (runtime/wordpiece.py)
and assembled from the same pieces Hugging Face's `BertTokenizerFast` uses (BertNormalizer, BertPreTokenizer,
WordPiece, [CLS]/[SEP] template, special tokens matched in the raw text, longest-first truncation), so it gives the
same ids; it loads a vocabulary in milliseconds, needs no torch, and tokenizes several times faster than the Python
one. The Python tokenizer stays the reference that the Java bridge mirrors; `make_tokenizer` picks between them.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from tinybert_edge.errors import ConfigError, DataError, MissingDependencyError
from tinybert_edge.runtime.wordpiece import Encoding, TokenizerSettings, UnicodeTables, WordPieceTokenizer, check_text

TOKENIZERS = ("auto", "rust", "python")


def rust_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("tokenizers") is not None


class RustWordPiece:
    """BERT WordPiece on `tokenizers.Tokenizer`, with `WordPieceTokenizer`'s interface (`encode`, `encode_batch`,
    `settings`)."""

    kind = "rust"

    def __init__(self, vocab: Mapping[str, int], settings: TokenizerSettings | None = None) -> None:
        try:
            from tokenizers import AddedToken, Tokenizer, models, normalizers, pre_tokenizers, processors
        except ImportError as exc:
            raise MissingDependencyError("tokenizers", "tokenizers", "The Rust tokenizer of the bundle runtime") from exc
        self.settings = s = settings or TokenizerSettings()
        self.vocab = dict(vocab)
        missing = [t for t in (s.unk_token, s.cls_token, s.sep_token, s.pad_token) if t not in self.vocab]
        if missing:
            raise DataError(f"the vocabulary has no {', '.join(missing)}; use the vocab.txt the model was trained with")
        tokenizer = Tokenizer(models.WordPiece(vocab=self.vocab, unk_token=s.unk_token,
                                               max_input_chars_per_word=s.max_input_chars_per_word,
                                               continuing_subword_prefix=s.continuing_subword_prefix))
        tokenizer.normalizer = normalizers.BertNormalizer(
            clean_text=s.clean_text, handle_chinese_chars=s.tokenize_chinese_chars,
            strip_accents=s.effective_strip_accents, lowercase=s.do_lower_case)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        cls, sep = s.cls_token, s.sep_token
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{cls}:0 $A:0 {sep}:0", pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
            special_tokens=[(cls, self.vocab[cls]), (sep, self.vocab[sep])])
        # As BertTokenizerFast: special tokens typed in the text are matched as they are written, before any
        # normalisation ("[CLS]" is the special token, "[cls]" is text).
        tokenizer.add_special_tokens([AddedToken(token, normalized=False, special=True)
                                      for token in s.special_tokens if token in self.vocab])
        self._tokenizer = tokenizer
        self._limit: int | None = None

    def _truncate_at(self, limit: int) -> None:
        if limit != self._limit:
            self._tokenizer.enable_truncation(limit, strategy="longest_first")
            self._limit = limit

    def encode(self, text: str | bytes, pair: str | bytes | None = None, max_length: int | None = None,
               offsets: bool = False) -> Encoding:
        """[CLS] text [SEP] (pair [SEP]), truncated to `max_length` (default: the settings') longest first; an empty
        `pair` is no pair, as in Hugging Face. With `offsets`, the encoding also carries each token's character
        span, sequence and word (see runtime.wordpiece.Encoding), as `tokenizers` computes them."""
        limit = max_length if max_length is not None else self.settings.max_length
        text = check_text(text)
        if pair is not None and not isinstance(pair, (str, bytes, bytearray)):
            raise DataError(f"pair is a {type(pair).__name__}; pass a str (or UTF-8 bytes)")
        second = check_text(pair, "pair") if pair else None
        if limit < (3 if second else 2):
            raise ConfigError(f"max_length = {limit} is not allowed{' for a pair' if second else ''}; allowed: >= "
                              f"{3 if second else 2}")
        self._truncate_at(limit)
        encoded = self._tokenizer.encode(text, second) if second else self._tokenizer.encode(text)
        if offsets:
            return _with_offsets(encoded, (text, second) if second else (text,))
        return Encoding(list(encoded.ids), list(encoded.type_ids))

    def encode_windows(self, question: str | bytes, context: str | bytes, max_length: int | None = None,
                       stride: int = 128, input_index: int = 0) -> list[Encoding]:
        """[CLS] question [SEP] window [SEP] for each window over `context`, with offsets: `tokenizers`' own
        truncation="only_second" with `stride` and its overflowing encodings, as Hugging Face's fast tokenizer gives
        them (see WordPieceTokenizer.encode_windows, which this matches); DataError when the question leaves no more
        than `stride` tokens for the context."""
        limit = max_length if max_length is not None else self.settings.max_length
        question, context = check_text(question, "question"), check_text(context, "context")
        n_question = len(self._tokenizer.encode(question, add_special_tokens=False).ids)
        room = limit - n_question - 3
        if room <= stride:
            raise DataError(f"the question has {n_question} tokens, which leaves {max(room, 0)} of the {limit} for "
                            f"the context, not more than the document stride ({stride}); shorten the question or "
                            "raise max_length")
        self._tokenizer.enable_truncation(limit, stride=stride, strategy="only_second")
        self._limit = None  # the next plain encode sets its own truncation again
        first = self._tokenizer.encode(question, context)
        return [_with_offsets(window, (question, context), input_index) for window in (first, *first.overflowing)]

    def encode_batch(self, texts: Iterable[str | bytes], max_length: int | None = None) -> list[Encoding]:
        limit = max_length if max_length is not None else self.settings.max_length
        if limit < 2:
            raise ConfigError(f"max_length = {limit} is not allowed; allowed: >= 2 ([CLS] and [SEP])")
        self._truncate_at(limit)
        batch = [check_text(text) for text in texts]
        return [Encoding(list(e.ids), list(e.type_ids)) for e in self._tokenizer.encode_batch(batch)]


def _with_offsets(encoded: Any, texts: tuple[str, ...], input_index: int = 0) -> Encoding:
    """A runtime Encoding from a `tokenizers` encoding, with its offsets, sequence ids and word ids."""
    return Encoding(list(encoded.ids), list(encoded.type_ids), [tuple(o) for o in encoded.offsets],
                    list(encoded.sequence_ids), list(encoded.word_ids), texts, input_index)


def make_tokenizer(vocab: Mapping[str, int], settings: TokenizerSettings, tables: UnicodeTables | None = None,
                   kind: str = "auto") -> Any:
    """The bundle runtime's tokenizer: "rust" (`tokenizers`), "python" (the reference WordPieceTokenizer), or
    "auto": the Rust one when `tokenizers` is installed, else the Python one."""
    if kind not in TOKENIZERS:
        raise ConfigError(f"tokenizer={kind!r} is not allowed; allowed: {', '.join(TOKENIZERS)}")
    if kind == "rust" or (kind == "auto" and rust_available()):
        return RustWordPiece(vocab, settings)
    return WordPieceTokenizer(vocab, settings, tables)
