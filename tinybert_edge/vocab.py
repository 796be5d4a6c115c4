"""Vocabulary trimming: keep only the WordPiece tokens a task uses, so a small student's embedding matrix shrinks.

In a TinyBERT the word-embedding matrix is most of the model (30,522 x 312 of TinyBERT4's 14.5M parameters). The
kept vocabulary is every token that the task's texts tokenize to, plus the special tokens and every single-character
token (with and without "##"), in the original order. WordPiece is greedy longest-match-first, so a word seen in those
texts tokenizes to exactly the same pieces with the kept vocabulary (the longest match in the full vocabulary is kept,
and nothing longer can appear); an unseen word falls back to shorter pieces, never to a different character set.
`trim_vocabulary` checks the first property on the texts it was given before it writes anything.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from tinybert_edge.errors import ModelError

log = logging.getLogger(__name__)


@dataclass
class TrimResult:
    model_dir: Path
    vocab_before: int
    vocab_after: int
    parameters_before: int
    parameters_after: int
    texts: int


def _kept_ids(tokenizer, texts: Sequence[str], max_length: int) -> list[int]:
    vocab = tokenizer.get_vocab()
    used: set[int] = set(tokenizer.all_special_ids)
    for start in range(0, len(texts), 1024):
        encoded = tokenizer(list(texts[start : start + 1024]), truncation=True, max_length=max_length)["input_ids"]
        for ids in encoded:
            used.update(ids)
    for token, index in vocab.items():
        bare = token[2:] if token.startswith("##") else token
        if len(bare) == 1:  # single characters keep every word spellable
            used.add(index)
    return sorted(used)


def trim_vocabulary(model_dir: str | Path, texts: Sequence[str], out_dir: str | Path, max_length: int = 128) -> TrimResult:
    """Write a copy of the classifier in `model_dir` whose vocabulary holds only what `texts` need (see module doc)."""
    from transformers import BertTokenizerFast

    from tinybert_edge.io import atomic_path, write_json_atomic
    from tinybert_edge.models import count_parameters, load_model, load_tokenizer

    if hasattr(texts, "texts"):  # a task's data (classification or regression): its texts and second texts
        texts = texts.texts + (texts.text_pairs or [])
    if not texts:
        raise ModelError("vocabulary trimming needs the task's texts (the training set); got none")
    model = load_model(model_dir)  # the task (classifier, regression) from its config.json
    tokenizer = load_tokenizer(model_dir)
    before = count_parameters(model)
    kept = _kept_ids(tokenizer, texts, max_length)
    inverse = {old: new for new, old in enumerate(kept)}
    id_to_token = {i: t for t, i in tokenizer.get_vocab().items()}

    import torch

    embeddings = model.bert.embeddings.word_embeddings
    trimmed = torch.nn.Embedding(len(kept), embeddings.embedding_dim, padding_idx=inverse.get(model.config.pad_token_id))
    trimmed.weight.data.copy_(embeddings.weight.data[kept])
    model.bert.embeddings.word_embeddings = trimmed
    model.config.vocab_size = len(kept)
    if model.config.pad_token_id is not None:
        model.config.pad_token_id = inverse[model.config.pad_token_id]

    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        (tmp / "vocab.txt").write_text("".join(id_to_token[i] + "\n" for i in kept), encoding="utf-8")
        settings = tokenizer.init_kwargs
        new_tokenizer = BertTokenizerFast(vocab_file=str(tmp / "vocab.txt"),
                                          do_lower_case=settings.get("do_lower_case", True),
                                          strip_accents=settings.get("strip_accents"),
                                          tokenize_chinese_chars=settings.get("tokenize_chinese_chars", True),
                                          model_max_length=tokenizer.model_max_length)
        sample = list(texts[:2000])
        old_ids = tokenizer(sample, truncation=True, max_length=max_length)["input_ids"]
        new_ids = new_tokenizer(sample, truncation=True, max_length=max_length)["input_ids"]
        mismatched = sum(1 for a, b in zip(old_ids, new_ids) if [kept[i] for i in b] != a)
        if mismatched:
            raise ModelError(f"vocabulary trimming changed the tokenization of {mismatched} of {len(sample)} task texts; "
                             "this should not happen with a WordPiece vocabulary — report it with the model folder")
        model.save_pretrained(tmp, safe_serialization=True)
        new_tokenizer.save_pretrained(tmp)
        result = TrimResult(model_dir=Path(out_dir), vocab_before=len(id_to_token), vocab_after=len(kept),
                            parameters_before=before, parameters_after=count_parameters(model), texts=len(texts))
        write_json_atomic(tmp / "vocab_trim.json", {**asdict(result), "model_dir": str(out_dir),
                                                     "source": str(model_dir)})
    log.info("vocabulary: %d -> %d tokens, %.1fM -> %.1fM parameters (%s)", result.vocab_before, result.vocab_after,
             result.parameters_before / 1e6, result.parameters_after / 1e6, out_dir)
    return result


def read_trim(model_dir: str | Path) -> dict | None:
    path = Path(model_dir) / "vocab_trim.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
