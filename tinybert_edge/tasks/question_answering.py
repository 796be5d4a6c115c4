"""Extractive question answering (SQuAD v1.1): the third Task.

Examples are `QuestionAnsweringData` (question, context, reference answers with their character start), read from
SQuAD-format JSON, JSONL rows or a saved Hugging Face dataset with SQuAD's fields. A question and its context are
encoded as [CLS] question [SEP] window [SEP] for each window over the context: windows hold what the sequence length
leaves after the question and overlap by the document stride, and each token keeps its character offsets in the
context, so one example gives several *features* (`EncodedData.features["example_index"]`). A feature's label is
the first reference answer's start and end token when the answer lies wholly inside its window, else [CLS] (0, 0).
The head is BertForQuestionAnswering; the output array stacks the start and end logits as [batch, seq, 2]
(`output_names` start_logits, end_logits). Fine-tuning is cross-entropy on start and end; the prediction layer is
distilled with soft cross-entropy on the start and on the end distribution over each feature's real tokens.
Answers are decoded from the n best starts and ends (spans inside the context only, end >= start, at most
`max_answer_length` tokens), the best span over all features of an example; metrics are the official SQuAD v1.1
exact match and F1 (answer normalisation: lower-case, no punctuation, no articles, single spaces; max over the
references), as fractions.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from tinybert_edge.errors import BundleError, DataError
from tinybert_edge.tasks.base import Task

log = logging.getLogger(__name__)

DOC_STRIDE = 128
MAX_ANSWER_LENGTH = 30
N_BEST = 20
# Parity: two models' answers to a question differ "only by a tie" when the reference itself scores the candidate's
# span (start + end logit) within this of its own best span, i.e. finds it at least e^-0.5 = 61% as likely. A
# near-flat reference flips between such spans under any perturbation (even fp32 reassociation); a broken export
# picks spans the reference scores whole logits lower.
ANSWER_TIE = 0.5
# config.json key under which a model records the reading settings its windows need (see record_settings).
CONFIG_KEY = "question_answering"


def effective_stride(doc_stride: int, max_length: int) -> int:
    """The document stride used at `max_length`: the configured one, at most a third of the sequence (so that a
    short sequence still leaves room for the question and a window that moves)."""
    return max(1, min(int(doc_stride), int(max_length) // 3))


# --- data -----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class QuestionAnsweringData:
    """Questions about contexts, with reference answers ({"text", "answer_start"}: a character offset into the
    context) and the title of the article each context belongs to."""

    task: ClassVar[str] = "question-answering"  # the tinybert_edge.tasks name that reads and encodes these

    ids: list[str]
    titles: list[str]
    questions: list[str]
    contexts: list[str]
    answers: list[list[dict[str, Any]]]
    source: str = ""
    doc_stride: int = DOC_STRIDE
    # Answers whose answer_start does not point at their text (dropped: never trained on) and questions left with
    # no answer by that (dropped too).
    skipped_answers: int = 0
    skipped_questions: int = 0

    def __post_init__(self) -> None:
        lengths = {len(self.ids), len(self.titles), len(self.questions), len(self.contexts), len(self.answers)}
        if len(lengths) != 1:
            raise DataError(f"{self.source}: ids, titles, questions, contexts and answers differ in length")

    def __len__(self) -> int:
        return len(self.questions)

    def subset(self, indices: Sequence[int], source_suffix: str = "") -> "QuestionAnsweringData":
        idx = list(indices)
        return dataclasses.replace(self, ids=[self.ids[i] for i in idx], titles=[self.titles[i] for i in idx],
                                   questions=[self.questions[i] for i in idx],
                                   contexts=[self.contexts[i] for i in idx], answers=[self.answers[i] for i in idx],
                                   source=self.source + source_suffix)

    def digest(self) -> str:
        import hashlib

        text = json.dumps([self.questions, self.contexts, self.answers, self.doc_stride], ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

    def articles(self) -> list[str]:
        """Titles in the order they first appear."""
        return list(dict.fromkeys(self.titles))

    def by_articles(self, titles: Sequence[str], source_suffix: str) -> "QuestionAnsweringData":
        chosen = set(titles)
        return self.subset([i for i, t in enumerate(self.titles) if t in chosen], source_suffix)


def split_by_article(data: QuestionAnsweringData, test_articles: int = 10,
                     dev_articles: int = 3) -> tuple[QuestionAnsweringData, QuestionAnsweringData,
                                                     QuestionAnsweringData]:
    """Train, dev and test by article in file order: the last `test_articles` articles are test, the
    `dev_articles` before them dev (checkpoint selection), the rest train. No article is on two sides. For the
    shared SQuAD dev file (48 articles) the defaults give 35 / 3 / 10: "the first 38 for training and selection,
    the last 10 for the reported test"."""
    titles = data.articles()
    if test_articles + dev_articles >= len(titles):
        raise DataError(f"{data.source}: {len(titles)} articles cannot give {test_articles} test and {dev_articles} "
                        "dev articles and still leave some to train on")
    cut_test, cut_dev = len(titles) - test_articles, len(titles) - test_articles - dev_articles
    return (data.by_articles(titles[:cut_dev], f"[articles 1-{cut_dev}]"),
            data.by_articles(titles[cut_dev:cut_test], f"[articles {cut_dev + 1}-{cut_test}]"),
            data.by_articles(titles[cut_test:], f"[articles {cut_test + 1}-{len(titles)}]"))


def _squad_rows(path: Path, spec: Any) -> list[tuple[str, dict[str, Any]]]:
    """(where, row) for every question of a SQuAD-format JSON file, a JSONL file or a saved dataset; rows have
    id, title, question, context and answers [{"text", "answer_start"}]."""
    from tinybert_edge.data import read_hf_disk, read_jsonl

    if path.is_dir():
        _, rows = read_hf_disk(path, spec)
        return [(f"{path}: row {i + 1}", row) for i, row in enumerate(rows)]
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        _, rows = read_jsonl(path, spec)
        return [(f"{path}:{rows.line_of(i)}", row) for i, row in enumerate(rows)]
    try:
        document = json.loads(path.read_text(encoding=spec.encoding, errors=spec.encoding_errors))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}); give a SQuAD-format file "
                        '({"data": [{"title", "paragraphs": [{"context", "qas": [...]}]}]}) or JSON Lines') from exc
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise DataError(f"{path}: not a SQuAD-format file (no \"data\" list of articles); give SQuAD JSON or JSON "
                        "Lines rows with question, context and answers")
    rows = []
    for a, article in enumerate(document["data"]):
        title = str(article.get("title", f"article {a + 1}"))
        for p, paragraph in enumerate(article.get("paragraphs") or []):
            for q, qa in enumerate(paragraph.get("qas") or []):
                where = f"{path}: article {a + 1} ({title!r}), paragraph {p + 1}, question {qa.get('id', q + 1)}"
                rows.append((where, {"id": qa.get("id", f"{a}-{p}-{q}"), "title": title,
                                     "context": paragraph.get("context"), "question": qa.get("question"),
                                     "answers": qa.get("answers") or []}))
    return rows


def _answers(value: Any, where: str) -> list[dict[str, Any]]:
    """SQuAD's [{"text", "answer_start"}] or Hugging Face's {"text": [...], "answer_start": [...]}."""
    if isinstance(value, dict):
        texts, starts = value.get("text") or [], value.get("answer_start") or []
        if len(texts) != len(starts):
            raise DataError(f"{where}: {len(texts)} answer texts but {len(starts)} answer_start values")
        value = [{"text": t, "answer_start": s} for t, s in zip(texts, starts)]
    if not isinstance(value, list):
        raise DataError(f"{where}: answers must be a list of {{text, answer_start}}")
    answers = []
    for answer in value:
        if not isinstance(answer, dict) or not isinstance(answer.get("text"), str) or \
                isinstance(answer.get("answer_start"), bool) or not isinstance(answer.get("answer_start"), int):
            raise DataError(f"{where}: an answer is not {{\"text\": str, \"answer_start\": int}}: {answer!r:.120}")
        answers.append({"text": answer["text"], "answer_start": answer["answer_start"]})
    return answers


def read_squad(spec: Any) -> QuestionAnsweringData:
    """Question-answering data from `spec` (a tinybert_edge.data.DataSpec): SQuAD-format JSON, JSONL rows or a
    saved dataset with id, title, question, context and answers. An empty question or context is an error; an
    answer whose answer_start does not point at its text is dropped and counted (so is a question left without
    answers): it is never trained on. `spec.extra["doc_stride"]` sets the document stride (default 128)."""
    from tinybert_edge.data import _missing_path_error
    from tinybert_edge.io import resolve_path

    path = resolve_path(spec.path)
    if not path.exists():
        raise _missing_path_error(path)
    try:
        rows = _squad_rows(path, spec)
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc}); check the file and its permissions") from exc
    if not rows:
        raise DataError(f"{path}: no questions; point --data at a SQuAD-format file")
    ids, titles, questions, contexts, answers = [], [], [], [], []
    skipped_answers = skipped_questions = 0
    first_skipped = None
    for where, row in rows:
        question, context = row.get("question"), row.get("context")
        for name, value in (("question", question), ("context", context)):
            if not isinstance(value, str) or not value.strip():
                raise DataError(f"{where}: the {name} is empty; every question needs a question and a context "
                                "(remove the row or fill it in)")
        kept = []
        for answer in _answers(row.get("answers"), where):
            start, text = answer["answer_start"], answer["text"]
            if text and 0 <= start and context[start : start + len(text)] == text:
                kept.append(answer)
            else:
                skipped_answers += 1
                first_skipped = first_skipped or f"{where}: answer {text!r:.40} at {start}"
        if not kept:
            skipped_questions += 1
            continue
        ids.append(str(row.get("id", len(ids))))
        titles.append(str(row.get("title") or ""))
        questions.append(question)
        contexts.append(context)
        answers.append(kept)
    if skipped_answers:
        log.warning("%s: %d answers whose answer_start does not match their text were dropped (first: %s); %d "
                    "questions had no answer left and were dropped", path, skipped_answers, first_skipped,
                    skipped_questions)
    if not questions:
        raise DataError(f"{path}: no question has an answer whose answer_start matches its text")
    return QuestionAnsweringData(ids, titles, questions, contexts, answers, str(path),
                                 int(spec.extra.get("doc_stride", DOC_STRIDE)), skipped_answers, skipped_questions)


def load_squad(path: str, *, doc_stride: int = DOC_STRIDE, encoding: str = "utf-8",
               split: str = "train") -> QuestionAnsweringData:
    """Read SQuAD-format data (see read_squad)."""
    from tinybert_edge.data import DataSpec

    return read_squad(DataSpec(path=str(path), encoding=encoding, split=split, extra={"doc_stride": doc_stride}))


# --- the official SQuAD v1.1 metric ---------------------------------------------------------------------------------

def normalize_answer(text: str) -> str:
    """SQuAD v1.1's normalisation: lower-case, drop punctuation, drop the articles a/an/the, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def squad_f1(prediction: str, truth: str) -> float:
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(truth).split()
    common = collections.Counter(predicted) & collections.Counter(expected)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(expected)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """Exact match and F1 (fractions), each the max over an example's references, averaged over examples."""
    if not predictions:
        return {"exact_match": float("nan"), "f1": float("nan")}
    em = [max(float(normalize_answer(p) == normalize_answer(t)) for t in refs) for p, refs in zip(predictions, references)]
    f1 = [max(squad_f1(p, t) for t in refs) for p, refs in zip(predictions, references)]
    return {"exact_match": float(np.mean(em)), "f1": float(np.mean(f1))}


# --- decoding (numpy only: the runtime uses it too) -------------------------------------------------------------------

@dataclass(frozen=True)
class Answer:
    """One answer: its text, its character span [start, end) in the context, its score (start + end logit) and
    probability (start probability x end probability over the context tokens of the window it came from)."""

    text: str
    start: int
    end: int
    score: float
    probability: float


def _log_softmax(values: np.ndarray) -> np.ndarray:
    shifted = values - values.max()
    return shifted - np.log(np.exp(shifted).sum())


def best_span(features: Sequence[tuple[np.ndarray, Sequence[tuple[int, int] | None]]], n_best: int = N_BEST,
              max_answer_length: int = MAX_ANSWER_LENGTH) -> tuple[int, int, int, float] | None:
    """(feature, start token, end token, score) of the best span over an example's features (see best_answer);
    None when no feature has a span."""
    best: tuple[int, int, int, float] | None = None
    for feature, (output, offsets) in enumerate(features):
        values = np.asarray(output, dtype=np.float64)[: len(offsets)]
        starts, ends = values[:, 0], values[:, 1]
        inside = np.array([o is not None for o in offsets])
        if not inside.any():
            continue
        order_s = [i for i in np.argsort(-np.nan_to_num(starts, nan=-np.inf), kind="stable") if inside[i]][:n_best]
        order_e = [i for i in np.argsort(-np.nan_to_num(ends, nan=-np.inf), kind="stable") if inside[i]][:n_best]
        for s in order_s:
            for e in order_e:
                if e < s or e - s + 1 > max_answer_length:
                    continue
                score = float(starts[s] + ends[e])
                if best is None or score > best[3]:
                    best = (feature, int(s), int(e), score)
    return best


def best_answer(features: Sequence[tuple[np.ndarray, Sequence[tuple[int, int] | None]]], context: str,
                n_best: int = N_BEST, max_answer_length: int = MAX_ANSWER_LENGTH) -> Answer:
    """The best span over an example's features: each a [seq, 2] start/end output (NaN past its tokens) and each
    token's character span in the context (None for question, special and padding tokens). Candidates are the
    `n_best` highest starts and ends of each feature with both inside the context, end >= start and at most
    `max_answer_length` tokens; an example without any gives the empty answer."""
    span = best_span(features, n_best, max_answer_length)
    if span is None:
        return Answer("", 0, 0, float("-inf"), 0.0)
    feature, s, e, score = span
    output, offsets = features[feature]
    values = np.asarray(output, dtype=np.float64)[: len(offsets)]
    inside = np.array([o is not None for o in offsets])
    position = np.cumsum(inside) - 1  # a context token's index among the context tokens
    start_lp, end_lp = _log_softmax(values[inside, 0]), _log_softmax(values[inside, 1])
    char_start, char_end = offsets[s][0], offsets[e][1]
    return Answer(context[char_start:char_end], char_start, char_end, score,
                  float(np.exp(start_lp[position[s]] + end_lp[position[e]])))


# --- the task -----------------------------------------------------------------------------------------------------

class QuestionAnswering(Task):
    name = "question-answering"
    architecture = "BertForQuestionAnswering"
    export_task = "question-answering"
    output_names = ("start_logits", "end_logits")
    primary_metric = "f1"
    per_token = True
    agreement_means = ("the same decoded answer per question (n-best over its windows; a span the reference "
                       f"scores within {ANSWER_TIE} logits of its best counts as a tie)")
    #: The parity metric gated by ParityThresholds.min_task_metric when the parity examples are the task's data.
    parity_gated_metric = "f1_vs_reference"
    text_inputs = False  # (question, context) pairs, windowed over long contexts, with offsets
    input_description = "a (question, context) pair or a {'question', 'context'} mapping"
    n_best = N_BEST
    max_answer_length = MAX_ANSWER_LENGTH

    # --- data ----------------------------------------------------------------------------------------------------

    def read(self, spec: Any) -> QuestionAnsweringData:
        from tinybert_edge.data import DataSpec

        return read_squad(spec if isinstance(spec, DataSpec) else DataSpec(path=str(spec)))

    def split(self, data: QuestionAnsweringData, fractions: Sequence[float], seed: int = 0) -> tuple:
        """By article, in file order (never one article on two sides): the first fractions[0] of the articles
        train, the next fractions[1] dev, the rest test. The seed is not used."""
        titles = data.articles()
        n_train = int(round(fractions[0] * len(titles)))
        n_dev = int(round(fractions[1] * len(titles)))
        parts = (titles[:n_train], titles[n_train : n_train + n_dev], titles[n_train + n_dev :])
        for name, part in zip(("train", "dev", "test"), parts):
            if not part:
                raise DataError(f"{data.source}: {len(titles)} articles leave the {name} split empty with "
                                f"fractions {list(fractions)}; use more articles or separate --dev/--test files")
        return tuple(data.by_articles(part, f"[{name} articles]") for name, part in zip(("train", "dev", "test"), parts))

    def encode(self, tokenizer: Any, data: QuestionAnsweringData, max_length: int) -> Any:
        from tinybert_edge.data import EncodedData

        stride = effective_stride(data.doc_stride, max_length)
        lengths = tokenizer(data.questions, add_special_tokens=False)["input_ids"]
        for index, ids in enumerate(lengths):
            if max_length - len(ids) - 3 <= stride:
                raise DataError(f"{data.source}: question {data.ids[index]!r} has {len(ids)} tokens, which leaves "
                                f"{max(max_length - len(ids) - 3, 0)} of the sequence length {max_length} for the "
                                f"context, not more than the document stride ({stride}); shorten the question or "
                                "raise max_length")
        encoded = tokenizer(data.questions, data.contexts, truncation="only_second", max_length=max_length,
                            stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True,
                            padding=False, return_token_type_ids=True)
        examples = encoded["overflow_to_sample_mapping"]
        labels, offsets = [], []
        for row, example in enumerate(examples):
            sequence = encoded.sequence_ids(row)
            spans = [tuple(o) if s == 1 else None for o, s in zip(encoded["offset_mapping"][row], sequence)]
            offsets.append(spans)
            answer = data.answers[example][0]
            start_char, end_char = answer["answer_start"], answer["answer_start"] + len(answer["text"])
            inside = [i for i, span in enumerate(spans) if span is not None]
            start = end = 0
            if spans[inside[0]][0] <= start_char and spans[inside[-1]][1] >= end_char:
                start = next(i for i in inside if spans[i][1] > start_char)
                end = next(i for i in reversed(inside) if spans[i][0] < end_char)
            labels.append((start, end))
        return EncodedData(input_ids=[list(x) for x in encoded["input_ids"]],
                           token_type_ids=[list(x) for x in encoded["token_type_ids"]],
                           labels=np.asarray(labels, dtype=np.int64).reshape(-1, 2),
                           features={"example_index": list(examples), "offsets": offsets}, examples=data)

    # --- model ---------------------------------------------------------------------------------------------------

    def matches(self, config: Mapping[str, Any]) -> bool:
        return any(str(a).endswith("ForQuestionAnswering") for a in config.get("architectures") or [])

    def model_class(self) -> Any:
        from transformers import BertForQuestionAnswering

        return BertForQuestionAnswering

    def head_config(self, label_names: Sequence[str] | None) -> dict[str, Any] | None:
        return {"num_labels": 2}  # start and end; no label names

    def record_settings(self, model_config: Any, data: Any) -> None:
        """The document stride the data was read with, as config.json's "question_answering": {"doc_stride": n}
        (what a bundle's windows must use)."""
        if isinstance(data, QuestionAnsweringData):
            setattr(model_config, CONFIG_KEY, {"doc_stride": int(data.doc_stride)})

    # --- training ------------------------------------------------------------------------------------------------

    def forward(self, model: Any, batch: Mapping[str, Any]) -> Any:
        import torch

        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    token_type_ids=batch["token_type_ids"])
        return torch.stack([out.start_logits, out.end_logits], dim=-1)

    def fine_tune_loss(self, model: Any, batch: Mapping[str, Any]) -> Any:
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                     token_type_ids=batch["token_type_ids"], start_positions=batch["labels"][:, 0],
                     end_positions=batch["labels"][:, 1]).loss

    def prediction_loss(self, student: Any, teacher: Any, batch: Mapping[str, Any], config: Any) -> dict[str, Any]:
        """Soft cross-entropy at temperature T between the start distributions over each feature's real tokens,
        and between the end distributions, averaged (padding is masked out of both softmaxes)."""
        from tinybert_edge.distillation import losses

        padding = ~batch["attention_mask"].bool()
        student = student.masked_fill(padding[..., None], -1e4)
        teacher = teacher.masked_fill(padding[..., None], -1e4)
        terms = {"prediction": (losses.prediction_loss(student[..., 0], teacher[..., 0], config.temperature)
                                + losses.prediction_loss(student[..., 1], teacher[..., 1], config.temperature)) / 2}
        if config.hard_label_weight:
            terms["hard_label"] = (losses.hard_label_loss(student[..., 0], batch["labels"][:, 0])
                                   + losses.hard_label_loss(student[..., 1], batch["labels"][:, 1])) / 2
        return terms

    # --- evaluation ----------------------------------------------------------------------------------------------

    def predictions(self, outputs: np.ndarray) -> np.ndarray:
        """Each feature's start and end token: [features, 2]."""
        return np.nan_to_num(np.asarray(outputs), nan=-np.inf).argmax(axis=1)

    def answers(self, outputs: np.ndarray, encoded: Any) -> tuple[list[int], list[Answer]]:
        """The examples the features of `encoded` cover (in order) and each one's best answer."""
        data = encoded.examples
        grouped: dict[int, list[tuple[np.ndarray, Sequence[Any]]]] = {}
        for row, (example, offsets) in enumerate(zip(encoded.features["example_index"], encoded.features["offsets"])):
            grouped.setdefault(example, []).append((outputs[row], offsets))
        examples = sorted(grouped)
        return examples, [best_answer(grouped[e], data.contexts[e], self.n_best, self.max_answer_length)
                          for e in examples]

    def metrics(self, outputs: np.ndarray, encoded: Any) -> dict[str, float]:
        examples, answers = self.answers(outputs, encoded)
        references = [[a["text"] for a in encoded.examples.answers[e]] for e in examples]
        return squad_scores([a.text for a in answers], references)

    def selection_metrics(self, data: Any) -> tuple[str, ...]:
        return ("f1", "exact_match")

    def agreement(self, reference: np.ndarray, candidate: np.ndarray, encoded: Any = None) -> float:
        """Fraction of questions whose decoded answer (n-best decoding over all of the question's windows, as
        `metrics` and the runtime decode it) is the reference's: the same text after SQuAD's normalisation, or a
        span the reference itself scores within ANSWER_TIE logits of its best (a tie the reference cannot break
        either). The answer is what a user sees; the start or end argmax of one window is not: windows that hold no
        answer have near-flat logits whose argmax flips under any perturbation without changing any answer.
        Without `encoded` (outputs that carry no offsets), each row is decoded on its own over its real tokens but
        the first ([CLS]), and spans are compared by token positions."""
        agreed, _ = self._answer_agreement(reference, candidate, encoded)
        return agreed

    def _answer_groups(self, reference: np.ndarray, candidate: np.ndarray, encoded: Any
                       ) -> list[tuple[list[tuple[np.ndarray, Sequence[Any]]], list[tuple[np.ndarray, Sequence[Any]]],
                                       str | None]]:
        """Per question: the reference's and the candidate's (output, offsets) of each window, and the context
        (None when the outputs carry no offsets: each row is then its own question, spans in token positions)."""
        examples = getattr(encoded, "examples", None)
        if isinstance(examples, QuestionAnsweringData):
            grouped: dict[int, tuple[list, list, str | None]] = {}
            for row, (example, offsets) in enumerate(zip(encoded.features["example_index"],
                                                         encoded.features["offsets"])):
                group = grouped.setdefault(example, ([], [], examples.contexts[example]))
                group[0].append((reference[row], offsets))
                group[1].append((candidate[row], offsets))
            return [grouped[e] for e in sorted(grouped)]
        groups = []
        for ref_row, cand_row in zip(np.asarray(reference), np.asarray(candidate)):
            real = ~np.isnan(np.asarray(ref_row, dtype=np.float64)[:, 0])
            offsets = [(i, i + 1) if real[i] and i > 0 else None for i in range(len(ref_row))]
            groups.append(([(ref_row, offsets)], [(cand_row, offsets)], None))
        return groups

    def _answer_agreement(self, reference: np.ndarray, candidate: np.ndarray, encoded: Any) -> tuple[float, float]:
        """(fraction of questions whose answers agree counting ties, fraction with the very same answer)."""
        groups = self._answer_groups(reference, candidate, encoded)
        if not groups:
            return float("nan"), float("nan")
        same = tied = 0
        for expected_features, got_features, context in groups:
            expected = best_span(expected_features, self.n_best, self.max_answer_length)
            got = best_span(got_features, self.n_best, self.max_answer_length)
            if expected is None or got is None:
                same += expected is None and got is None
                continue

            def answer(span: tuple[int, int, int, float]) -> Any:
                feature, start, end, _ = span
                offsets = expected_features[feature][1]
                if context is None:
                    return feature, start, end
                return normalize_answer(context[offsets[start][0]:offsets[end][1]])

            if answer(expected) == answer(got):
                same += 1
                continue
            output = np.asarray(expected_features[got[0]][0], dtype=np.float64)
            if output[got[1], 0] + output[got[2], 1] >= expected[3] - ANSWER_TIE:
                tied += 1
        return (same + tied) / len(groups), same / len(groups)

    def parity_view(self, outputs: np.ndarray) -> np.ndarray:
        """Start and end logits less their mean over each feature's real tokens (softmax over the sequence ignores
        it); padding contributes zeros."""
        values = np.asarray(outputs, dtype=np.float64)
        centred = values - np.nanmean(values, axis=1, keepdims=True)
        return np.nan_to_num(centred, nan=0.0)

    def parity_metrics(self, reference: np.ndarray, candidate: np.ndarray, encoded: Any) -> dict[str, float]:
        """Exact match and F1 of the candidate's answers against the reference's (the reference's answers taken
        as the truth), the fraction of questions with the very same answer (no tie allowed), and the fraction of
        windows whose start and end argmax are both the reference's (the per-window view, for diagnosis only)."""
        if not isinstance(getattr(encoded, "examples", None), QuestionAnsweringData):
            return {}
        _, expected = self.answers(reference, encoded)
        _, got = self.answers(candidate, encoded)
        scores = squad_scores([a.text for a in got], [[a.text] for a in expected])
        _, same = self._answer_agreement(reference, candidate, encoded)
        windows = float(np.mean(np.all(self.predictions(reference) == self.predictions(candidate), axis=1)))
        return {"exact_match_vs_reference": scores["exact_match"], "f1_vs_reference": scores["f1"],
                "same_answer": same, "window_start_end_agreement": windows}

    def decision_rows(self, output: np.ndarray) -> np.ndarray:
        """The start row and the end row, each over the sequence."""
        return np.asarray(output, dtype=np.float64).reshape(-1, 2).T

    # --- export --------------------------------------------------------------------------------------------------

    def export_module(self, model: Any) -> Any:
        import torch

        class StartEnd(torch.nn.Module):
            """The answerer as a module of positional (input_ids, attention_mask, token_type_ids) ->
            (start_logits, end_logits)."""

            def __init__(self, answerer: torch.nn.Module) -> None:
                super().__init__()
                self.answerer = answerer

            def forward(self, input_ids, attention_mask, token_type_ids):
                out = self.answerer(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
                return out.start_logits, out.end_logits

        return StartEnd(model).eval()

    # --- runtime and bundle --------------------------------------------------------------------------------------

    def manifest_fields(self, label_names: Sequence[str] | None,
                        model_config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The decoding settings, with the document stride the model's training data was read with (recorded in
        its config.json by `record_settings`; the default for a model trained elsewhere)."""
        recorded = (model_config or {}).get(CONFIG_KEY)
        stride = recorded.get("doc_stride") if isinstance(recorded, Mapping) else None
        if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
            stride = DOC_STRIDE
        return {"task": self.name, "labels": [], "doc_stride": stride, "max_answer_length": self.max_answer_length,
                "n_best": self.n_best}

    def check_manifest(self, fields: Mapping[str, Any], where: str) -> None:
        for key in ("doc_stride", "max_answer_length", "n_best"):
            value = fields.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise BundleError(f"the bundle '{where}' is a {self.name} bundle whose {key} is {value!r}, not a "
                                  "positive integer; repackage it")

    def golden_inputs(self, texts: Sequence[str]) -> list[Any]:
        """Each text as the context of a question made of the text before it."""
        return [(texts[i - 1] or "what?", text or "nothing") for i, text in enumerate(texts)]

    def is_single_input(self, inputs: Any) -> bool:
        """One (question, context) pair or {"question", "context"} dict; a list of them is several."""
        if isinstance(inputs, Mapping):
            return True
        return isinstance(inputs, tuple) and len(inputs) == 2 and all(isinstance(v, (str, bytes)) for v in inputs)

    def runtime_encode(self, tokenizer: Any, item: Any, index: int, fields: Mapping[str, Any]) -> list[Any]:
        question, context = (item["question"], item["context"]) if isinstance(item, Mapping) else item
        limit = tokenizer.settings.max_length
        return tokenizer.encode_windows(question, context, limit, effective_stride(fields["doc_stride"], limit),
                                        input_index=index)

    def postprocess(self, outputs: np.ndarray, encodings: Sequence[Any], fields: Mapping[str, Any]) -> list[Answer]:
        """The best answer of each input over its windows (encodings of one input share its `input_index`)."""
        grouped: dict[int, list[tuple[np.ndarray, list[Any]]]] = {}
        contexts: dict[int, str] = {}
        for encoding, row in zip(encodings, outputs):
            offsets = [o if s == 1 else None for o, s in zip(encoding.offsets, encoding.sequence_ids)]
            grouped.setdefault(encoding.input_index, []).append((row, offsets))
            contexts[encoding.input_index] = encoding.texts[1]
        return [best_answer(grouped[i], contexts[i], int(fields["n_best"]), int(fields["max_answer_length"]))
                for i in sorted(grouped)]
