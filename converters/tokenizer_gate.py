"""The tokenizer-agreement gate of artifacts that carry their own tokenizer (ONNX with the tokenizer in the graph,
the MediaPipe Text Classifier): before such an artifact is kept, the ids its tokenizer gives are compared with the
Hugging Face tokenizer's (the one the model was trained with) on the user's own texts and on the SDK's tokenizer
test corpus (`tinybert_edge.runtime.tokenizer_corpus.generate_corpus`).

The agreement on the user's texts is gated (default: every text, 100%); below the threshold the export fails and
names the disagreeing strings. The corpus is adversarial on purpose (every script, emoji, control characters, words
over 100 characters), and these tokenizers are known to differ from Hugging Face's on some of it (Greek and Turkish
capitals, Hangul, full-width punctuation; the in-graph one after the graph's own text cleaning), so its agreement is recorded, with examples, and
gated only when asked. Both go into the artifact's metadata.

A vocabulary such a tokenizer cannot represent at all is refused before anything is built (`check_vocabulary`):
a tokenizer that is not BERT WordPiece, and, per consumer, the settings it cannot follow.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from tinybert_edge.errors import ConfigError, ExportError
from tinybert_edge.runtime.wordpiece import TokenizerSettings

log = logging.getLogger(__name__)

DEFAULT_MIN_AGREEMENT = 1.0
CORPUS_STRINGS = 2000
SHOWN = 10  # disagreeing strings named in an error and kept in the metadata


class TokenizerAgreementError(ExportError):
    """An artifact's own tokenizer gives other ids than the model's Hugging Face tokenizer on the user's texts."""


@dataclass(frozen=True)
class TokenizerGate:
    """How much agreement an artifact's tokenizer must reach: `min_dev_agreement` on the user's texts (fraction of
    texts with identical ids; 1.0 = every one), `min_corpus_agreement` on `corpus_strings` strings of the SDK's
    tokenizer corpus (0.0 = recorded, not gated)."""

    min_dev_agreement: float = DEFAULT_MIN_AGREEMENT
    min_corpus_agreement: float = 0.0
    corpus_strings: int = CORPUS_STRINGS
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("min_dev_agreement", "min_corpus_agreement"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"TokenizerGate.{name} = {value!r} is not allowed; allowed: a fraction from 0 to 1")
        if isinstance(self.corpus_strings, bool) or not isinstance(self.corpus_strings, int) or self.corpus_strings < 0:
            raise ConfigError(f"TokenizerGate.corpus_strings = {self.corpus_strings!r} is not allowed; allowed: an "
                              "integer >= 0")


def check_vocabulary(folder: Path, consumer: str, *, cased: bool, keep_accents: bool) -> TokenizerSettings:
    """The tokenizer settings of the model folder `folder`, or ExportError when `consumer`'s tokenizer cannot
    represent them: not BERT WordPiece (tokenizer.json's model and normalizer), no vocab.txt, a cased vocabulary when
    `cased` is False, accents kept (cased, strip_accents off) when `keep_accents` is False."""
    tokenizer_file = folder / "tokenizer.json"
    if tokenizer_file.is_file():
        try:
            model_type = (json.loads(tokenizer_file.read_text(encoding="utf-8")).get("model") or {}).get("type")
        except (OSError, ValueError) as exc:
            raise ExportError(f"'{tokenizer_file}' is unreadable ({exc}); save the tokenizer again") from exc
        if model_type and model_type != "WordPiece":
            raise ExportError(f"{consumer} implements BERT WordPiece only, and '{folder}' has a {model_type} tokenizer: "
                              "its ids cannot be reproduced; ship the model with the SDK's bundle instead")
    if not (folder / "vocab.txt").is_file():
        raise ExportError(f"{consumer} needs a WordPiece vocab.txt, and '{folder}' has none; save the model's tokenizer "
                          "(save_pretrained) beside it")
    try:
        settings = TokenizerSettings.from_hf_folder(folder)
    except ConfigError as exc:  # a normalizer other than BertNormalizer
        raise ExportError(f"{consumer} cannot represent the tokenizer of '{folder}': {exc}") from exc
    if not cased and not settings.do_lower_case:
        raise ExportError(f"{consumer} lower-cases every text and has no setting to keep case, and the vocabulary of "
                          f"'{folder}' is cased (do_lower_case=False): its ids would differ on every capital letter")
    if not keep_accents and not settings.do_lower_case and not settings.effective_strip_accents:
        raise ExportError(f"{consumer} cannot represent a cased vocabulary that keeps accents ('{folder}': "
                          "do_lower_case=False, strip_accents off): it splits a word at an accented character the "
                          "vocabulary lacks ('naiveté' -> naive ##t [UNK]) where WordPiece makes the whole word "
                          "[UNK], so accented text would get other ids")
    return settings


def _compare(encode: Callable[[list[str]], list[list[int]]], expected: Sequence[Sequence[int]],
             texts: Sequence[str]) -> tuple[int, list[dict[str, Any]]]:
    got = encode(list(texts))
    disagreeing = [{"text": text, "expected": list(want), "got": list(ids)}
                   for text, want, ids in zip(texts, expected, got) if list(want) != list(ids)]
    return len(texts) - len(disagreeing), disagreeing


def tokenizer_agreement(encode: Callable[[list[str]], list[list[int]]], reference: Any, texts: Sequence[str],
                        described: str, max_length: int, gate: TokenizerGate, consumer: str,
                        vocab_words: Sequence[str] = ()) -> dict[str, Any]:
    """Compare `encode` (texts -> ids with [CLS]/[SEP], truncated to `max_length`) with the Hugging Face tokenizer
    `reference` on `texts` (what they are: `described`) and on the tokenizer corpus; return the record for the
    artifact's metadata, or raise TokenizerAgreementError (naming the disagreeing strings) below `gate`."""
    from tinybert_edge.runtime.tokenizer_corpus import generate_corpus

    def hf_ids(batch: Sequence[str]) -> list[list[int]]:
        return [list(ids) for ids in reference(list(batch), truncation=True, max_length=max_length)["input_ids"]]

    texts = [t for t in texts if isinstance(t, str)]
    if not texts:
        raise ConfigError(f"{consumer}: no texts to compare tokenizers on; pass the user's dev texts")
    record: dict[str, Any] = {"reference": f"{type(reference).__name__} (Hugging Face)", "max_length": max_length,
                              "gate": {"min_dev_agreement": gate.min_dev_agreement,
                                       "min_corpus_agreement": gate.min_corpus_agreement}}
    agreeing, disagreeing = _compare(encode, hf_ids(texts), texts)
    record["dev"] = {"texts": described, "n": len(texts), "agreeing": agreeing, "agreement": agreeing / len(texts),
                     "disagreeing": disagreeing[:SHOWN]}
    if gate.corpus_strings:
        corpus = list(generate_corpus(gate.corpus_strings, gate.seed, list(vocab_words)))
        corpus_agreeing, corpus_disagreeing = _compare(encode, hf_ids(corpus), corpus)
        record["corpus"] = {"texts": f"{len(corpus)} strings of the SDK's tokenizer corpus (seed {gate.seed})",
                            "n": len(corpus), "agreeing": corpus_agreeing, "agreement": corpus_agreeing / len(corpus),
                            "disagreeing": corpus_disagreeing[:SHOWN]}
    log.info("%s: ids agree with Hugging Face's on %d of %d %s%s", consumer, agreeing, len(texts), described,
             f"; on {record['corpus']['agreeing']} of {record['corpus']['n']} corpus strings" if "corpus" in record else "")
    failures = []
    if record["dev"]["agreement"] < gate.min_dev_agreement:
        shown = "; ".join(repr(d["text"][:80]) for d in disagreeing[:SHOWN])
        failures.append(f"on {len(disagreeing)} of {len(texts)} {described} (agreement {record['dev']['agreement']:.4f} "
                        f"< {gate.min_dev_agreement}), e.g. {shown}")
    if "corpus" in record and record["corpus"]["agreement"] < gate.min_corpus_agreement:
        shown = "; ".join(repr(d["text"][:40]) for d in corpus_disagreeing[:SHOWN])
        failures.append(f"on {len(corpus_disagreeing)} of {len(corpus)} corpus strings (agreement "
                        f"{record['corpus']['agreement']:.4f} < {gate.min_corpus_agreement}), e.g. {shown}")
    if failures:
        error = TokenizerAgreementError(f"{consumer} gives other token ids than the model's Hugging Face tokenizer "
                                        + " and ".join(failures) + "; the artifact was not kept (lower the threshold "
                                        "with TokenizerGate(min_dev_agreement=...) to accept it)")
        error.record = record  # type: ignore[attr-defined]
        raise error
    return record
