"""Golden cases for the Android bridge's post-processing, computed by this runtime: the Java side
(examples/android_bridge, `run_jvm_tests.sh --postprocess FOLDER`) must reproduce every one.

`write_postprocess_parity(folder, vocab, n, seed)` writes `folder/postprocess.jsonl` (a header line, then one case a
line) and the index files its search cases name:

- "offsets": a corpus string (tokenizer_corpus.generate_corpus: accents, combining marks, CJK, emoji, control and
  zero-width characters, special tokens typed as text, words over 100 characters) with its tokens' ids, spans and
  word indices from `WordPieceTokenizer.tokens_with_offsets`.
- "ner": a text, random float32 logits for its tokens ([CLS] text [SEP], truncated to the header's max_length) and
  the words and entities TokenClassification.postprocess gives for them.
- "qa": a question and a context, the windows QuestionAnswering.runtime_encode makes of them (the manifest's
  doc_stride, made effective for the max_length) with random float32 start/end logits, and the answer
  QuestionAnswering.postprocess decodes; or the error when the question leaves no room for the context.
- "search": an index file (float32 or int8) written by SentenceIndex.save, query vectors and the hits
  `search_vectors` returns.

Spans are written twice: as Python counts them (code points: "offsets", "start"/"end") and as a Java String indexes
them (UTF-16 units: "starts16"/"ends16", "start16"/"end16"). Logits are float32 values, as a model returns them.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import numpy as np

from tinybert_edge.io import write_text_atomic
from tinybert_edge.runtime.index import SentenceIndex, quantize_rows
from tinybert_edge.runtime.tokenizer_corpus import generate_corpus, settings_dict
from tinybert_edge.runtime.wordpiece import TokenizerSettings, WordPieceTokenizer, load_vocab

FORMAT = "tinybert-edge-postprocess-parity"
VERSION = 1
FILE_NAME = "postprocess.jsonl"
NER_LABELS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-MISC", "I-MISC")
MODEL_SHA256 = hashlib.sha256(b"postprocess-parity model").hexdigest()


def utf16_index(text: str, index: int) -> int:
    """The UTF-16 index of code point `index` of `text` (what a Java String uses)."""
    return index + sum(1 for c in text[:index] if ord(c) > 0xFFFF)


def _floats(values: np.ndarray) -> Any:
    return np.asarray(values, dtype=np.float32).astype(np.float64).tolist()


def _logits(rng: np.random.Generator, rows: int, width: int) -> np.ndarray:
    scale = rng.choice([0.5, 2.0, 6.0])
    return (rng.standard_normal((rows, width)) * scale).astype(np.float32)


def _offset_case(tokenizer: WordPieceTokenizer, text: str) -> dict[str, Any]:
    ids, offsets, words = tokenizer.tokens_with_offsets(text)
    return {"kind": "offsets", "text": text, "input_ids": ids, "offsets": [list(o) for o in offsets],
            "starts16": [utf16_index(text, s) for s, _ in offsets], "ends16": [utf16_index(text, e) for _, e in offsets],
            "word_ids": words}


def _ner_case(tokenizer: WordPieceTokenizer, text: str, rng: np.random.Generator) -> dict[str, Any]:
    from tinybert_edge.tasks.token_classification import TokenClassification

    task = TokenClassification()
    fields = task.manifest_fields(NER_LABELS)
    encoding = task.runtime_encode(tokenizer, text, 0, fields)[0]
    logits = _logits(rng, len(encoding), len(NER_LABELS))
    # a run of one label makes multi-word entities (B- then I-), and I- after O or another type
    for position in range(1, len(encoding)):
        if rng.random() < 0.5:
            logits[position] = logits[position - 1]
    result = task.postprocess(logits[None], [encoding], fields)[0]
    return {"kind": "ner", "text": text, "input_ids": encoding.input_ids, "logits": _floats(logits),
            "words": [[utf16_index(text, s), utf16_index(text, e), tag] for s, e, tag in result.words],
            "entities": [{"type": e.type, "start": e.start, "end": e.end, "start16": utf16_index(text, e.start),
                          "end16": utf16_index(text, e.end), "text": e.text, "score": e.score}
                         for e in result.entities]}


def _qa_case(tokenizer: WordPieceTokenizer, question: str, context: str, rng: np.random.Generator) -> dict[str, Any]:
    from tinybert_edge.errors import DataError
    from tinybert_edge.tasks.question_answering import DOC_STRIDE, QuestionAnswering

    task = QuestionAnswering()
    fields = {**task.manifest_fields(None), "doc_stride": int(rng.choice([DOC_STRIDE, 8, 3])),
              "n_best": int(rng.choice([1, 3, 20])), "max_answer_length": int(rng.choice([1, 5, 30]))}
    case: dict[str, Any] = {"kind": "qa", "question": question, "context": context,
                            **{key: fields[key] for key in ("doc_stride", "n_best", "max_answer_length")}}
    try:
        windows = task.runtime_encode(tokenizer, (question, context), 0, fields)
    except DataError as exc:
        return {**case, "error": str(exc)}
    outputs = [_logits(rng, len(w), 2) for w in windows]
    from tinybert_edge.tasks.base import stack_rows

    answer = task.postprocess(stack_rows(outputs), windows, fields)[0]
    case["windows"] = [{"input_ids": w.input_ids, "token_type_ids": w.token_type_ids,
                        "sequence_ids": [-1 if s is None else s for s in w.sequence_ids],
                        "starts16": [utf16_index(w.texts[s], o[0]) if s is not None else 0
                                     for o, s in zip(w.offsets, w.sequence_ids)],
                        "ends16": [utf16_index(w.texts[s], o[1]) if s is not None else 0
                                   for o, s in zip(w.offsets, w.sequence_ids)],
                        "logits": _floats(out)} for w, out in zip(windows, outputs)]
    case["answer"] = {"text": answer.text, "start16": utf16_index(context, answer.start),
                      "end16": utf16_index(context, answer.end),
                      # no candidate gives the score -inf, which JSON cannot hold
                      "score": answer.score if np.isfinite(answer.score) else None,
                      "probability": answer.probability}
    return case


def _search_cases(folder: Path, rng: np.random.Generator) -> list[dict[str, Any]]:
    cases = []
    count, width = 60, 16
    vectors = rng.standard_normal((count, width)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"doc-{i}" if i % 7 else f"note {i}: café ☕ 日本" for i in range(count)]
    queries = rng.standard_normal((5, width)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    # small integers: every dot product is exact whatever the summation order, so the duplicated rows tie exactly
    ties = rng.integers(-3, 4, (12, width)).astype(np.float32)
    ties[5] = ties[2]
    ties[9] = ties[2]
    tie_queries = rng.integers(-3, 4, (3, width)).astype(np.float32)
    tie_queries[0] = ties[2]
    for name, matrix, query, precision, k in (("float32", vectors, queries, "float32", 10),
                                              ("int8", vectors, queries, "int8", 7),
                                              ("ties", ties, tie_queries, "float32", 12)):
        scales = None
        stored = matrix
        if precision == "int8":
            stored, scales = quantize_rows(matrix)
        index = SentenceIndex(stored, ids[: len(matrix)], MODEL_SHA256, "model.tflite", scales)
        file = f"index-{name}.npz"
        index.save(folder / file)
        hits = index.search_vectors(query, k)
        cases.append({"kind": "search", "index": file, "model_sha256": MODEL_SHA256, "k": k,
                      "queries": _floats(query),
                      "hits": [[{"id": h.id, "score": h.score} for h in row] for row in hits]})
    return cases


def write_postprocess_parity(folder: str | Path, vocab: str | Path, n: int = 2000, seed: int = 0,
                             max_length: int = 48) -> Path:
    """Write the golden cases (see the module docstring) into `folder`; returns the .jsonl file's path. `n` corpus
    strings give the offset cases; a fifth of that, NER cases and QA cases each."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    settings = TokenizerSettings(max_length=max_length)
    words = load_vocab(vocab)
    tokenizer = WordPieceTokenizer(words, settings)
    texts = list(generate_corpus(n, seed, list(words)))
    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    cases: list[dict[str, Any]] = [_offset_case(tokenizer, text) for text in texts]
    cases += [_ner_case(tokenizer, text, rng) for text in texts[: max(n // 5, 1)]]
    for index in range(max(n // 5, 1)):
        question = pick.choice(texts[:50]) if index % 3 else " ".join(pick.sample(texts, 2))[:40]
        context = " ".join(pick.sample(texts, pick.randint(1, 8)))
        cases.append(_qa_case(tokenizer, question, context, rng))
    cases += _search_cases(folder, rng)
    header = {"format": FORMAT, "version": VERSION, "n": n, "seed": seed,
              "vocab_sha256": hashlib.sha256(Path(vocab).read_bytes()).hexdigest(), "ner_labels": list(NER_LABELS),
              "tokenizer": settings_dict(settings)}
    lines = [json.dumps(header, ensure_ascii=True)] + [json.dumps(case, ensure_ascii=True) for case in cases]
    return write_text_atomic(folder / FILE_NAME, "\n".join(lines) + "\n")


def case_counts(path: str | Path) -> dict[str, int]:
    """How many cases of each kind a parity file holds (what the JVM run should report as checked)."""
    counts: dict[str, int] = {}
    for line in Path(path).read_text(encoding="ascii").splitlines()[1:]:
        kind = json.loads(line)["kind"]
        counts[kind] = counts.get(kind, 0) + 1
    return counts


__all__ = ["FORMAT", "NER_LABELS", "case_counts", "utf16_index", "write_postprocess_parity"]
