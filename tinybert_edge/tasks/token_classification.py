"""Token classification (named entities, IOB2 tags): the second Task.

Examples are `TokenClassificationData` (words per sentence, one tag per word), read from CoNLL-style column files
(choose the tag column), JSON/JSONL rows of tokens and tags, or a saved Hugging Face dataset with the same fields.
Word tags are aligned to WordPiece tokens: the first sub-token of each word carries the word's tag and the rest are
ignored (-100), or, with `label_all_subtokens`, every sub-token carries it (B-X becomes I-X after the first). The
head is BertForTokenClassification; fine-tuning is cross-entropy over labelled tokens; the prediction layer is
distilled with soft cross-entropy per real token (TinyBERT eq. 10 at every position the attention mask keeps).
Metrics are entity-level micro precision/recall/F1 and per-type F1 by seqeval (conlleval's definition: an entity
that starts with I- begins there), on words: each word takes the prediction of its first sub-token. The output
array is the logits [batch, seq, labels]; the runtime groups word tags into entities with character offsets.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from tinybert_edge.errors import BundleError, DataError, ModelError
from tinybert_edge.tasks.base import Task
from tinybert_edge.tasks.classification import config_label_names, logits_module, softmax

log = logging.getLogger(__name__)

IGNORE_INDEX = -100  # as tinybert_edge.data.IGNORE_INDEX (this module is imported by the torch-free runtime)
TAG = re.compile(r"^(O|[BI]-\S+)$")
TOKEN_FIELDS = ("tokens", "words")
TAG_FIELDS = ("ner_tags", "tags", "labels", "ner")
AGGREGATIONS = ("first",)


# --- data -----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TokenClassificationData:
    """Sentences as words, with one tag (an index into `label_names`, IOB2 names such as B-PER) per word."""

    task: ClassVar[str] = "token-classification"  # the tinybert_edge.tasks name that reads and encodes these

    words: list[list[str]]
    tags: list[list[int]]
    label_names: list[str]
    source: str = ""
    # Every sub-token labelled (B-X continued as I-X) instead of the first only.
    label_all_subtokens: bool = False
    # Entities whose first tag is I- (after O or another type): accepted and read as beginnings, as conlleval does.
    iob_repairs: int = 0

    def __post_init__(self) -> None:
        if len(self.words) != len(self.tags):
            raise DataError(f"{self.source}: {len(self.words)} sentences but {len(self.tags)} tag sequences")

    def __len__(self) -> int:
        return len(self.words)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def subset(self, indices: Sequence[int], source_suffix: str = "") -> "TokenClassificationData":
        idx = list(indices)
        return TokenClassificationData(
            words=[self.words[i] for i in idx], tags=[self.tags[i] for i in idx], label_names=list(self.label_names),
            source=self.source + source_suffix, label_all_subtokens=self.label_all_subtokens,
            iob_repairs=sum(count_iob_repairs([self.label_names[t] for t in self.tags[i]]) for i in idx))

    def digest(self) -> str:
        """sha256 of the words and their tag names (what a cached teacher and a resumable checkpoint depend on)."""
        import hashlib

        text = json.dumps([self.words, [[self.label_names[t] for t in tags] for tags in self.tags],
                           self.label_all_subtokens], ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

    def with_label_names(self, label_names: Sequence[str]) -> "TokenClassificationData":
        """Re-index the tags to follow `label_names` (a model's id2label order). Every data tag must be in it."""
        names = list(label_names)
        used = sorted({self.label_names[t] for sentence in self.tags for t in sentence})
        missing = [name for name in used if name not in names]
        if missing:
            raise DataError(f"{self.source}: tags {missing} are not among the model's labels {names}; use data with "
                            "the model's tag set or a teacher fine-tuned on these tags")
        position = {name: i for i, name in enumerate(names)}
        return TokenClassificationData(
            words=self.words, tags=[[position[self.label_names[t]] for t in sentence] for sentence in self.tags],
            label_names=names, source=self.source, label_all_subtokens=self.label_all_subtokens,
            iob_repairs=self.iob_repairs)


def count_iob_repairs(tags: Sequence[str]) -> int:
    """How many entities start with I- (after O, at the start, or after another type): conlleval reads each as a
    beginning; IOB2 would have written B-."""
    count, previous = 0, "O"
    for tag in tags:
        if tag.startswith("I-") and (previous == "O" or previous[2:] != tag[2:]):
            count += 1
        previous = tag
    return count


def _column(value: str | None, default: int, what: str, flag: str) -> int:
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise DataError(f"{what} {value!r} is not a column number; CoNLL files have no header, so pass {flag} as a "
                        "0-based column index (negative counts from the end: -1 is the last column)") from None


def read_conll(path: Path, spec: Any) -> tuple[list[list[str]], list[list[str]], list[int], list[int]]:
    """CoNLL-style columns: one token a line, whitespace-separated columns, a blank line between sentences,
    -DOCSTART- lines skipped. The token is column `spec.text_column` (default 0), the tag `spec.label_column`
    (default the last). Returns words, tags, each sentence's first line number and its document (the count of
    -DOCSTART- lines before it)."""
    token_col = _column(spec.text_column, 0, "the token column", "--text-column")
    tag_col = _column(spec.label_column, -1, "the tag column", "--label-column")
    sentences, tags, lines, documents = [], [], [], []
    document = 0
    words: list[str] = []
    labels: list[str] = []
    columns: tuple[int, int] | None = None  # (count, line of the first token line)
    start = 0
    try:
        with open(path, encoding=spec.encoding, errors=spec.encoding_errors) as handle:
            for number, line in enumerate(handle, start=1):
                fields = line.split()
                if not fields or fields[0] == "-DOCSTART-":
                    if words:
                        sentences.append(words), tags.append(labels), lines.append(start), documents.append(document)
                    words, labels = [], []
                    document += bool(fields)
                    continue
                if columns is None:
                    columns = (len(fields), number)
                    for column, flag in ((token_col, "--text-column"), (tag_col, "--label-column")):
                        if not -len(fields) <= column < len(fields):
                            raise DataError(f"{path}:{number}: column {column} ({flag}) does not exist; token lines "
                                            f"have {len(fields)} columns")
                elif len(fields) != columns[0]:
                    raise DataError(f"{path}:{number}: {len(fields)} columns, but token lines have {columns[0]} (as "
                                    f"line {columns[1]}); fix the line (a token with a space in it?) or its "
                                    "separators")
                if not words:
                    start = number
                words.append(fields[token_col])
                labels.append(fields[tag_col])
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: byte {exc.start} is not valid {spec.encoding}; pass the file's encoding "
                        "(--encoding latin-1)") from exc
    if words:
        sentences.append(words), tags.append(labels), lines.append(start), documents.append(document)
    return sentences, tags, lines, documents


def _pick_field(header: Sequence[str], chosen: str | None, guesses: Sequence[str], path: Path, flag: str) -> str:
    if chosen:
        if chosen not in header:
            raise DataError(f"{path}: no field '{chosen}'; the fields are {list(header)}; pass {flag}")
        return chosen
    for name in guesses:
        if name in header:
            return name
    raise DataError(f"{path}: no field among {', '.join(guesses)}; the fields are {list(header)}; name it with {flag}")


def _read_rows(path: Path, spec: Any, fmt: str) -> tuple[list[str], list[dict], list[str | None]]:
    """Rows of a JSON list, a JSONL file or a saved HF dataset, and where each is ('file:line' or 'file: row N');
    a dataset's sequence of ClassLabel tags comes back as names."""
    from tinybert_edge.data import read_hf_disk, read_jsonl

    if fmt == "hf-disk":
        from tinybert_edge.errors import require

        datasets = require("datasets", package="datasets", extra="data", purpose="Reading a saved Hugging Face dataset")
        header, rows = read_hf_disk(path, spec)
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            loaded = loaded[spec.split]
        for column, feature in loaded.features.items():
            names = getattr(getattr(feature, "feature", None), "names", None)
            if names:  # Sequence(ClassLabel): indices to names, so tags are matched by name like every format
                for row in rows:
                    row[column] = [names[v] for v in row[column] or []]
        return header, rows, [f"{path}: row {i + 1}" for i in range(len(rows))]
    if fmt == "json":
        try:
            loaded = json.loads(path.read_text(encoding=spec.encoding, errors=spec.encoding_errors))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}); give a JSON list of objects or JSON "
                            "Lines") from exc
        rows = loaded.get("data", loaded) if isinstance(loaded, dict) else loaded
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise DataError(f"{path}: a JSON file of token data must be a list of objects with tokens and tags")
        header = list(dict.fromkeys(key for row in rows for key in row))
        return header, rows, [f"{path}: row {i + 1}" for i in range(len(rows))]
    header, rows = read_jsonl(path, spec)
    return header, rows, [f"{path}:{rows.line_of(i)}" for i in range(len(rows))]


def read_token_data(spec: Any) -> TokenClassificationData:
    """Token-classification data from `spec` (a tinybert_edge.data.DataSpec): format "conll" (also chosen for
    .txt/.conll/.iob files), "jsonl"/"json" (rows with a list of tokens and a list of tags; .json may be one JSON
    list) or "hf-disk" (a saved dataset). Tags are IOB2 names (B-PER, I-PER, O); integer tags need
    `spec.label_names`. `spec.extra["label_all_subtokens"]` labels every sub-token."""
    from tinybert_edge.data import _missing_path_error
    from tinybert_edge.io import resolve_path

    path = resolve_path(spec.path)
    if not path.exists():
        raise _missing_path_error(path)
    fmt = spec.format or ("hf-disk" if path.is_dir() else
                          {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(path.suffix.lower(), "conll"))
    if fmt not in ("conll", "json", "jsonl", "hf-disk"):
        raise DataError(f"{path}: format {fmt!r} cannot hold token tags; use conll, json, jsonl or hf-disk")
    if fmt != "hf-disk" and path.is_dir():
        raise DataError(f"data path '{path}' is a directory, not a {fmt} file; pass the file itself with --data")
    try:
        if fmt == "conll":
            sentences, raw_tags, lines, _ = read_conll(path, spec)
            where = [f"{path}:{line}" for line in lines]
        else:
            header, rows, where = _read_rows(path, spec, fmt)
            if not rows:
                raise DataError(f"{path}: the dataset is empty (no rows); point --data at a file with sentences")
            token_field = _pick_field(header, spec.text_column, TOKEN_FIELDS, path, "--text-column")
            tag_field = _pick_field(header, spec.label_column, TAG_FIELDS, path, "--label-column")
            sentences, raw_tags = [], []
            for index, row in enumerate(rows):
                tokens, tags = row.get(token_field), row.get(tag_field)
                if not isinstance(tokens, list) or not isinstance(tags, list):
                    raise DataError(f"{where[index]}: '{token_field}' and '{tag_field}' must both be lists (one tag "
                                    "per token)")
                if spec.label_names is not None and tags and all(isinstance(t, int) for t in tags):
                    if any(not 0 <= t < len(spec.label_names) for t in tags):
                        raise DataError(f"{where[index]}: tag numbers {tags} outside 0..{len(spec.label_names) - 1} "
                                        f"of the label names {list(spec.label_names)}")
                    tags = [spec.label_names[t] for t in tags]
                sentences.append([str(t) for t in tokens])
                raw_tags.append([str(t) for t in tags])
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc}); check the file and its permissions") from exc
    kept_words, kept_tags, kept_where = [], [], []
    for words, tags, place in zip(sentences, raw_tags, where):
        if len(words) != len(tags):
            raise DataError(f"{place}: {len(words)} tokens but {len(tags)} tags; give one tag per token")
        if words:
            kept_words.append(words), kept_tags.append(tags), kept_where.append(place)
    if not kept_words:
        raise DataError(f"{path}: no sentences (every row has no tokens); check the file and --text-column")
    allowed = list(spec.label_names) if spec.label_names is not None else None
    for tags, place in zip(kept_tags, kept_where):
        for position, tag in enumerate(tags):
            if allowed is not None and tag not in allowed:
                raise DataError(f"{place}: the tag {tag!r} of token {position + 1} is not in the label set "
                                f"{allowed}; fix the tag or the label names")
            if not TAG.match(tag):
                raise DataError(f"{place}: the tag {tag!r} of token {position + 1} is not an IOB2 tag (O, B-TYPE, "
                                "I-TYPE); check --label-column picks the tag column")
    names = allowed if allowed is not None else sorted({t for tags in kept_tags for t in tags},
                                                       key=lambda t: (t == "O", t[2:], t))
    repairs = sum(count_iob_repairs(tags) for tags in kept_tags)
    if repairs:
        first = next(place for tags, place in zip(kept_tags, kept_where) if count_iob_repairs(tags))
        log.warning("%s: %d entities start with I- (first in the sentence at %s); read as beginnings, as conlleval "
                    "does", path, repairs, first)
    position = {name: i for i, name in enumerate(names)}
    return TokenClassificationData(words=kept_words, tags=[[position[t] for t in tags] for tags in kept_tags],
                                   label_names=list(names), source=str(path),
                                   label_all_subtokens=bool(spec.extra.get("label_all_subtokens", False)),
                                   iob_repairs=repairs)


def load_token_data(path: str, *, format: str | None = None, token_column: str | int | None = None,
                    tag_column: str | int | None = None, label_names: Sequence[str] | None = None,
                    label_all_subtokens: bool = False, encoding: str = "utf-8", split: str = "train"
                    ) -> TokenClassificationData:
    """Read token-classification data (see read_token_data): `token_column`/`tag_column` are column numbers of a
    CoNLL file (tag default: the last) or field names of JSON rows and datasets (default tokens / ner_tags)."""
    from tinybert_edge.data import DataSpec

    return read_token_data(DataSpec(
        path=str(path), format=format, text_column=None if token_column is None else str(token_column),
        label_column=None if tag_column is None else str(tag_column),
        label_names=tuple(label_names) if label_names is not None else None, encoding=encoding, split=split,
        extra={"label_all_subtokens": label_all_subtokens}))


# --- runtime results ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Entity:
    """One entity found in a text: its type (PER, LOC, ...), its character span [start, end) in the original
    text, the text there, and its score (the mean probability of its words' tags)."""

    type: str
    start: int
    end: int
    text: str
    score: float


@dataclass(frozen=True)
class TaggedText:
    """One text's result: its entities, each word's tag ((start, end, tag) in the original text), token count."""

    entities: list[Entity]
    words: list[tuple[int, int, str]] = field(default_factory=list)
    num_tokens: int = 0


def group_entities(words: Sequence[tuple[int, int, str, float]], text: str) -> list[Entity]:
    """Entities from tagged words (start, end, IOB tag, probability), conlleval's way: B-X begins an entity, I-X
    continues one of type X and begins one after O or another type."""
    entities: list[Entity] = []
    current: list[Any] | None = None  # [type, start, end, scores]

    def close() -> None:
        if current is not None:
            kind, start, end, scores = current
            entities.append(Entity(kind, start, end, text[start:end], float(np.mean(scores))))

    for start, end, tag, probability in words:
        if tag == "O" or len(tag) < 3:
            close()
            current = None
            continue
        prefix, kind = tag[0], tag[2:]
        if prefix == "B" or current is None or current[0] != kind:
            close()
            current = [kind, start, end, [probability]]
        else:
            current[2] = end
            current[3].append(probability)
    close()
    return entities


# --- the task -----------------------------------------------------------------------------------------------------

class TokenClassification(Task):
    name = "token-classification"
    architecture = "BertForTokenClassification"
    export_task = "token-classification"
    output_names = ("logits",)
    primary_metric = "entity_f1"
    per_token = True
    agreement_means = "the same tag on each real token"
    #: Gated by ParityThresholds.min_task_metric on the task's own data: the entities a user sees, not only tags.
    parity_gated_metric = "entity_f1_vs_reference"
    text_inputs = False  # the runtime encodes with character offsets and word ids (entities in the original text)
    input_description = "one text, its entities returned with character offsets"

    # --- data ----------------------------------------------------------------------------------------------------

    def read(self, spec: Any) -> TokenClassificationData:
        from tinybert_edge.data import DataSpec

        return read_token_data(spec if isinstance(spec, DataSpec) else DataSpec(path=str(spec)))

    def encode(self, tokenizer: Any, data: TokenClassificationData, max_length: int) -> Any:
        from tinybert_edge.data import EncodedData

        encoded = tokenizer(data.words, is_split_into_words=True, truncation=True, max_length=max_length,
                            padding=False, return_token_type_ids=True)
        inside = {i: data.label_names.index("I-" + name[2:]) if "I-" + name[2:] in data.label_names else i
                  for i, name in enumerate(data.label_names)}
        labels, word_ids = [], []
        for row in range(len(data)):
            words = encoded.word_ids(row)
            tags, previous, row_labels = data.tags[row], None, []
            for word in words:
                if word is None:
                    row_labels.append(IGNORE_INDEX)
                elif word != previous:
                    row_labels.append(tags[word])
                else:
                    row_labels.append(inside[tags[word]] if data.label_all_subtokens else IGNORE_INDEX)
                previous = word
            labels.append(row_labels)
            word_ids.append(list(words))
        return EncodedData(input_ids=[list(x) for x in encoded["input_ids"]],
                           token_type_ids=[list(x) for x in encoded["token_type_ids"]], labels=labels,
                           per_token_labels=True,
                           features={"word_ids": word_ids, "example_index": list(range(len(data)))}, examples=data)

    def check_training_data(self, data: TokenClassificationData, purpose: str = "training") -> None:
        used = {data.label_names[t] for tags in data.tags for t in tags}
        if used <= {"O"}:
            raise DataError(f"{data.source}: no {purpose} sentence has an entity (every tag is O); a tagger needs "
                            "tagged entities: check --label-column picks the tag column")

    def label_names(self, model_config: Any) -> list[str] | None:
        return config_label_names(model_config)

    def align(self, data: TokenClassificationData, model_config: Any) -> TokenClassificationData:
        names = self.label_names(model_config)
        return data.with_label_names(names) if names else data

    # --- model ---------------------------------------------------------------------------------------------------

    def matches(self, config: Mapping[str, Any]) -> bool:
        return any(str(a).endswith("ForTokenClassification") for a in config.get("architectures") or [])

    def model_class(self) -> Any:
        from transformers import BertForTokenClassification

        return BertForTokenClassification

    def head_config(self, label_names: Sequence[str] | None) -> dict[str, Any] | None:
        if label_names is None:
            return None
        names = list(label_names)
        return {"num_labels": len(names), "id2label": dict(enumerate(names)),
                "label2id": {name: i for i, name in enumerate(names)}}

    def check_labels(self, model_config: Any, label_names: Sequence[str], where: Any) -> None:
        """Raise unless every tag of the data is one the model predicts (a dev file may lack rare tags)."""
        model_names = self.label_names(model_config) or []
        missing = sorted(set(label_names) - set(model_names))
        if missing:
            raise ModelError(f"the model in '{where}' predicts tags {model_names} but the data also has {missing}; "
                             "use a teacher fine-tuned on this data's tags, or fine-tune the bare encoder on it")

    # --- training ------------------------------------------------------------------------------------------------

    def forward(self, model: Any, batch: Mapping[str, Any]) -> Any:
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                     token_type_ids=batch["token_type_ids"]).logits

    def fine_tune_loss(self, model: Any, batch: Mapping[str, Any]) -> Any:
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                     token_type_ids=batch["token_type_ids"], labels=batch["labels"]).loss

    def prediction_loss(self, student: Any, teacher: Any, batch: Mapping[str, Any], config: Any) -> dict[str, Any]:
        """Soft cross-entropy at temperature T over every real token (attention mask 1), [CLS] and [SEP] included:
        the teacher has a distribution there too. The hard-label term counts labelled tokens only."""
        from tinybert_edge.distillation import losses

        real = batch["attention_mask"].bool()
        terms = {"prediction": losses.prediction_loss(student[real], teacher[real], config.temperature)}
        if config.hard_label_weight:
            terms["hard_label"] = losses.hard_label_loss(student.reshape(-1, student.shape[-1]),
                                                         batch["labels"].reshape(-1))
        return terms

    # --- evaluation ----------------------------------------------------------------------------------------------

    def predictions(self, outputs: np.ndarray) -> np.ndarray:
        return np.nan_to_num(np.asarray(outputs), nan=-np.inf).argmax(axis=-1)

    def word_tags(self, outputs: np.ndarray, encoded: Any) -> tuple[list[list[str]], int]:
        """Each example's predicted tag per word (its first sub-token's argmax; "O" for words truncation cut off)
        in example order, and how many words were cut off."""
        data = encoded.examples
        predicted = [["O"] * len(words) for words in data.words]
        seen = [[False] * len(words) for words in data.words]
        ids = self.predictions(outputs)
        for row, (example, words) in enumerate(zip(encoded.features["example_index"], encoded.features["word_ids"])):
            previous = None
            for position, word in enumerate(words):
                if word is not None and word != previous:
                    predicted[example][word] = data.label_names[int(ids[row, position])]
                    seen[example][word] = True
                previous = word
        rows = sorted(set(encoded.features["example_index"]))
        cut = sum(flags.count(False) for flags in (seen[i] for i in rows))
        return [predicted[i] for i in rows], cut

    def metrics(self, outputs: np.ndarray, encoded: Any) -> dict[str, float]:
        data = encoded.examples
        rows = sorted(set(encoded.features["example_index"]))
        truth = [[data.label_names[t] for t in data.tags[i]] for i in rows]
        predicted, cut = self.word_tags(outputs, encoded)
        scores = entity_scores(truth, predicted)
        scores["truncated_words"] = float(cut)
        return scores

    def selection_metrics(self, data: Any) -> tuple[str, ...]:
        return ("entity_f1", "entity_precision", "entity_recall")

    def agreement(self, reference: np.ndarray, candidate: np.ndarray, encoded: Any = None) -> float:
        """Token-level argmax agreement over real tokens (positions where the reference is not NaN)."""
        real = ~np.isnan(np.asarray(reference)[..., 0])
        if not real.any():
            return 1.0
        return float(np.mean(self.predictions(reference)[real] == self.predictions(candidate)[real]))

    def parity_view(self, outputs: np.ndarray) -> np.ndarray:
        """Real tokens' logits less their mean over labels (softmax ignores it); padding contributes zeros."""
        values = np.nan_to_num(np.asarray(outputs, dtype=np.float64), nan=0.0)
        return values - values.mean(axis=-1, keepdims=True)

    def parity_metrics(self, reference: np.ndarray, candidate: np.ndarray, encoded: Any) -> dict[str, float]:
        """Entity F1 of the candidate's word tags against the reference's."""
        if not isinstance(getattr(encoded, "examples", None), TokenClassificationData):
            return {}
        expected, _ = self.word_tags(reference, encoded)
        got, _ = self.word_tags(candidate, encoded)
        return {"entity_f1_vs_reference": entity_scores(expected, got)["entity_f1"]}

    # --- export --------------------------------------------------------------------------------------------------

    def export_module(self, model: Any) -> Any:
        return logits_module(model)  # [batch, sequence, labels]

    # --- runtime and bundle --------------------------------------------------------------------------------------

    def manifest_fields(self, label_names: Sequence[str] | None,
                        model_config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {"task": self.name, "labels": list(label_names or []), "aggregation": "first"}

    def check_manifest(self, fields: Mapping[str, Any], where: str) -> None:
        labels = fields.get("labels")
        if not labels or not all(isinstance(t, str) and TAG.match(t) for t in labels):
            raise BundleError(f"the bundle '{where}' is a {self.name} bundle whose labels {labels!r} are not IOB2 "
                              "tags; repackage it")
        if fields.get("aggregation", "first") not in AGGREGATIONS:
            raise BundleError(f"the bundle '{where}' asks for aggregation {fields.get('aggregation')!r}; this "
                              f"runtime knows {', '.join(AGGREGATIONS)}")

    def runtime_encode(self, tokenizer: Any, item: Any, index: int, fields: Mapping[str, Any]) -> list[Any]:
        import dataclasses

        return [dataclasses.replace(tokenizer.encode(item, offsets=True), input_index=index)]

    def postprocess(self, outputs: np.ndarray, encodings: Sequence[Any], fields: Mapping[str, Any]) -> list[TaggedText]:
        """Each word takes its first sub-token's tag ("first" aggregation, as Hugging Face's pipeline); words are
        grouped into entities from their IOB tags, with character offsets in the original text."""
        labels = list(fields["labels"])
        results = []
        for encoding, row in zip(encodings, outputs):
            logits = np.asarray(row, dtype=np.float64)[: len(encoding)]
            probabilities = softmax(logits)
            words: list[tuple[int, int, str, float]] = []
            for position, word in enumerate(encoding.word_ids):
                if word is None or encoding.sequence_ids[position] != 0:
                    continue
                start, end = encoding.offsets[position]
                if words and position > 0 and encoding.word_ids[position - 1] == word:
                    words[-1] = (words[-1][0], end, words[-1][2], words[-1][3])  # a continuation extends the word
                    continue
                best = int(np.argmax(logits[position]))
                words.append((start, end, labels[best], float(probabilities[position, best])))
            text = encoding.texts[0] if encoding.texts else ""
            results.append(TaggedText(group_entities(words, text), [(s, e, t) for s, e, t, _ in words],
                                      len(encoding)))
        return results


def entity_scores(truth: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict[str, float]:
    """Entity-level micro precision, recall and F1 and each type's F1, by seqeval (conlleval's definition)."""
    from tinybert_edge.errors import require

    require("seqeval", package="seqeval", extra="ner", purpose="Entity-level NER metrics")
    from seqeval.metrics import classification_report

    report = classification_report([list(t) for t in truth], [list(p) for p in predicted], output_dict=True,
                                   zero_division=0)
    micro = report.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0})
    scores = {"entity_precision": float(micro["precision"]), "entity_recall": float(micro["recall"]),
              "entity_f1": float(micro["f1-score"]), "entities": float(micro["support"])}
    for kind, values in sorted(report.items()):
        if kind not in ("micro avg", "macro avg", "weighted avg"):
            scores[f"f1_{kind}"] = float(values["f1-score"])
    return scores
