"""Sentence embeddings: a sentence-transformers-style encoder (BERT, then pooling over its tokens, then an optional
L2 normalisation) distilled into a smaller one, exported with the pooling inside the graph, searched on the device.

The teacher is any sentence-transformers folder: `modules.json` lists its Transformer, Pooling and Normalize modules
and `1_Pooling/config.json` says how tokens are pooled (all-MiniLM-L6-v2: the mean over real tokens, then L2 norm).
Those settings travel with the model as `config.json["sentence_embedding"]` ({"pooling": "mean", "normalize": true}),
so a student and its exports pool as the teacher does. A folder without them is refused unless the settings are
given (`EmbeddingTask(pooling="mean", normalize=True)`).

Data are plain texts: any text file (one per line) or a column of a TSV/CSV/JSONL file (`TextEmbeddingData`). No
labels are needed to distil: the student learns the teacher's embeddings, attention and hidden states (stage 1, the
TinyBERT terms), then the teacher's sentence vectors (stage 2: MSE between the vectors, plus an optional cosine
term). Evaluation data are pairs: with a score column (STS-B) the metric is the Spearman correlation of the pair's
cosine similarity with the gold score; without one (question -> paragraph, as SQuAD) each first text is a query
whose relevant document is its second text, searched among all distinct second texts: recall@1, recall@10, MRR@10.

The output array is the sentence vector [batch, width]. Empty and whitespace-only texts are embedded as what the
tokenizer makes of them, "[CLS] [SEP]": a defined, fixed vector (the same for every empty text), not an error.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from tinybert_edge.data import EncodedData
from tinybert_edge.errors import BundleError, ConfigError, DataError, ModelError
from tinybert_edge.tasks.base import Task

log = logging.getLogger(__name__)

#: config.json key that carries the pooling settings of a model of this task.
CONFIG_KEY = "sentence_embedding"
#: Pooling modes this SDK can put inside an exported graph.
POOLING_MODES = ("mean", "cls")
#: How to supply pooling settings for a folder that has none (named in the error).
POOLING_FLAG = ("the pooling settings: --pooling mean|cls (tinybert-edge distill, with --no-normalize for vectors "
                "without L2 norm), EmbeddingTask(pooling='mean' or 'cls', normalize=True or False) in Python, or "
                "sentence-transformers' modules.json and 1_Pooling/config.json (and 2_Normalize/) in the folder")
#: Score columns tried, in order, for evaluation pairs (GLUE's STS-B: "score").
SCORE_COLUMNS = ("score", "similarity", "label")
#: Text columns tried, in order, when a table's text column is not named.
TEXT_COLUMNS = ("text", "sentence", "sentence1", "question", "query", "anchor")
PAIR_COLUMNS = ("sentence2", "context", "paragraph", "document", "positive")
#: Retrieval cut-offs reported by `metrics`.
RECALL_AT = (1, 10)
MRR_AT = 10
#: Cosine difference under which two neighbours count as tied in `EmbeddingTask.agreement`: dynamic int8 moves a pair's
#: cosine by ~0.006 at the median and 0.014 at the 90th percentile (a 3 x 384 MiniLM student on 249 STS-B dev texts,
#: vectors at mean cosine 0.997 to fp32), so which of two neighbours within 0.01 of each other comes first is noise;
#: 10% of those texts have a runner-up within 0.001 of their nearest. A broken export moves far more (and fails the
#: cosine limit).
NEIGHBOUR_TIE = 0.01
ST_MODULES = "modules.json"


# --- pooling settings ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pooling:
    """How token vectors become the sentence vector: `mode` "mean" (over real tokens) or "cls" (the [CLS] token),
    then an L2 normalisation when `normalize`."""

    mode: str = "mean"
    normalize: bool = True

    def __post_init__(self) -> None:
        if self.mode not in POOLING_MODES:
            raise ConfigError(f"pooling = {self.mode!r} is not allowed; allowed: {', '.join(POOLING_MODES)}")
        if not isinstance(self.normalize, bool):
            raise ConfigError(f"normalize = {self.normalize!r} must be true or false")

    def to_dict(self) -> dict[str, Any]:
        return {"pooling": self.mode, "normalize": self.normalize}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str) -> "Pooling":
        try:
            return cls(str(values["pooling"]), bool(values.get("normalize", False)))
        except (KeyError, TypeError) as exc:
            raise ModelError(f"{where}: '{CONFIG_KEY}' in config.json is {values!r}, not "
                             "{'pooling': 'mean'|'cls', 'normalize': true|false}; export the model again") from exc


def read_pooling(folder: str | Path) -> Pooling | None:
    """The pooling settings of a model folder: config.json's "sentence_embedding" (what this SDK writes), else a
    sentence-transformers `modules.json` with its Pooling (and Normalize) module; None when the folder has neither.
    Modules this SDK cannot put inside a graph (a Dense projection, max pooling) are refused by name."""
    folder = Path(folder)
    where = f"the model folder '{folder}'"
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = {}
    if isinstance(config, dict) and isinstance(config.get(CONFIG_KEY), Mapping):
        return Pooling.from_dict(config[CONFIG_KEY], where)
    if not (folder / ST_MODULES).is_file():
        return None
    try:
        modules = json.loads((folder / ST_MODULES).read_text(encoding="utf-8"))
        types = [(str(m["type"]).rsplit(".", 1)[-1], str(m.get("path", ""))) for m in modules]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{where}: {ST_MODULES} is not a readable sentence-transformers module list ({exc}); fix "
                         f"it, or remove it and give {POOLING_FLAG}") from exc
    pooling_path = next((path for kind, path in types if kind == "Pooling"), None)
    others = [kind for kind, _ in types if kind not in ("Transformer", "Pooling", "Normalize")]
    if others:
        raise ModelError(f"{where}: its sentence-transformers modules include {others}, which this SDK cannot put "
                         "inside an exported graph (it supports Transformer, Pooling and Normalize); use an encoder "
                         "without them")
    if pooling_path is None:
        return None
    try:
        settings = json.loads((folder / pooling_path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{where}: {pooling_path}/config.json cannot be read ({exc}); restore it, or give "
                         f"{POOLING_FLAG}") from exc
    chosen = [name for name, on in settings.items() if name.startswith("pooling_mode_") and on]
    modes = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls"}
    if len(chosen) != 1 or chosen[0] not in modes:
        raise ModelError(f"{where}: its Pooling module uses {chosen or 'no mode'}; this SDK exports exactly one of "
                         "mean tokens or the CLS token")
    return Pooling(modes[chosen[0]], any(kind == "Normalize" for kind, _ in types))


def sentence_transformers_files(pooling: Pooling, width: int, max_length: int) -> dict[str, str]:
    """The files that make a folder holding a BERT model a sentence-transformers model that pools as `pooling`
    (relative path -> text). A Normalize module also needs its (empty) 2_Normalize/ folder: see
    write_sentence_transformers_files."""
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if pooling.normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    pooling_config = {"word_embedding_dimension": width, "pooling_mode_cls_token": pooling.mode == "cls",
                      "pooling_mode_mean_tokens": pooling.mode == "mean", "pooling_mode_max_tokens": False,
                      "pooling_mode_mean_sqrt_len_tokens": False}
    return {ST_MODULES: json.dumps(modules, indent=2), "1_Pooling/config.json": json.dumps(pooling_config, indent=2),
            "sentence_bert_config.json": json.dumps({"max_seq_length": max_length, "do_lower_case": False})}


def write_sentence_transformers_files(folder: Path, pooling: Pooling, width: int, max_length: int) -> None:
    for name, text in sentence_transformers_files(pooling, width, max_length).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    if pooling.normalize:
        (folder / "2_Normalize").mkdir(exist_ok=True)


def pool(hidden: Any, attention_mask: Any, pooling: Pooling) -> Any:
    """The sentence vector from token vectors [batch, seq, width] (torch): the mean over tokens whose mask is 1
    (sentence-transformers' Pooling: sum / max(count, 1e-9)) or the first token, then x / max(||x||, 1e-12)."""
    import torch
    from torch.nn import functional as F

    if pooling.mode == "cls":
        vector = hidden[:, 0]
    else:
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        vector = (hidden * mask).sum(1) / torch.clamp(mask.sum(1), min=1e-9)
    return F.normalize(vector, p=2, dim=-1) if pooling.normalize else vector


def model_pooling(model: Any) -> Pooling:
    """The pooling settings a loaded model carries in its config (set when it was loaded or built)."""
    values = getattr(model.config, CONFIG_KEY, None)
    if not isinstance(values, Mapping):
        raise ModelError(f"the model {type(model).__name__} carries no pooling settings (config.{CONFIG_KEY}); load "
                         f"it with tinybert_edge.models.load_model(folder, 'embedding'), or give {POOLING_FLAG}")
    return Pooling.from_dict(values, f"the model {type(model).__name__}")


class SentenceEncoder:
    """What `EmbeddingTask.model_class()` returns: builds and loads a transformers BertModel (no pooler layer) with
    the pooling settings attached to its config, from the folder or, when it has none, from the task's override."""

    def __init__(self, override: Pooling | None) -> None:
        self.override = override

    def __call__(self, config: Any) -> Any:
        from transformers import BertModel

        if not isinstance(getattr(config, CONFIG_KEY, None), Mapping):
            if self.override is None:
                raise ModelError(f"a new sentence encoder needs pooling settings; give {POOLING_FLAG}")
            setattr(config, CONFIG_KEY, self.override.to_dict())
        config.architectures = ["BertModel"]
        return BertModel(config, add_pooling_layer=False)

    def from_pretrained(self, folder: str | Path, **kwargs: Any) -> Any:
        from transformers import BertModel

        for key in ("num_labels", "id2label", "label2id", "problem_type", "ignore_mismatched_sizes"):
            kwargs.pop(key, None)
        found = read_pooling(folder)
        if self.override is not None and found is not None and found != self.override:
            log.warning("'%s' pools as %s; the pooling given (%s) replaces it", folder, found.to_dict(),
                        self.override.to_dict())
        pooling = self.override or found
        if pooling is None:
            raise ModelError(f"the model folder '{folder}' has no pooling settings (no sentence-transformers "
                             f"{ST_MODULES} with a Pooling module, no '{CONFIG_KEY}' in config.json), so its sentence "
                             f"vector is undefined; give {POOLING_FLAG}")
        model = BertModel.from_pretrained(folder, add_pooling_layer=False, **kwargs)
        setattr(model.config, CONFIG_KEY, pooling.to_dict())
        model.config.architectures = ["BertModel"]
        return model


# --- data ------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TextEmbeddingData:
    """Texts to embed. A training corpus needs only `texts`; evaluation pairs add `text_pairs` and, for a
    similarity benchmark (STS-B), `scores` (one gold similarity per pair)."""

    texts: list[str]
    text_pairs: list[str] | None = None
    scores: list[float] | None = None
    source: str = ""
    #: the tinybert_edge.tasks name, or a configured EmbeddingTask (pooling given) that reads and encodes these.
    task: Any = "embedding"

    def __post_init__(self) -> None:
        if self.text_pairs is not None and len(self.text_pairs) != len(self.texts):
            raise DataError(f"{self.source}: {len(self.texts)} texts but {len(self.text_pairs)} second texts")
        if self.scores is not None and (self.text_pairs is None or len(self.scores) != len(self.texts)):
            raise DataError(f"{self.source}: similarity scores need one second text and one score per text")

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int], source_suffix: str = "") -> "TextEmbeddingData":
        idx = list(indices)
        pick = (lambda values: None if values is None else [values[i] for i in idx])
        return TextEmbeddingData([self.texts[i] for i in idx], pick(self.text_pairs), pick(self.scores),
                                 self.source + source_suffix, self.task)

    def label_of(self, index: int) -> str:
        return "" if self.scores is None else str(self.scores[index])

    def with_examples(self, texts: Sequence[str], labels: Sequence[Any], text_pairs: Sequence[str] | None,
                      source: str) -> "TextEmbeddingData":
        scores = None if self.scores is None else [float(y) for y in labels]
        return TextEmbeddingData(list(texts), None if text_pairs is None else list(text_pairs), scores, source,
                                 self.task)

    def strata(self) -> np.ndarray:
        return np.zeros(len(self), dtype=np.int64)


def read_texts(spec: Any) -> TextEmbeddingData:
    """Texts from a `DataSpec` (or path): a plain-text file (.txt, or format "text") is one text per non-empty line;
    a TSV/CSV/JSONL file or saved dataset gives its text column (named, or guessed among TEXT_COLUMNS), with the
    second-text column and the score column when named or present (evaluation pairs)."""
    from tinybert_edge.data import READERS, detect_format, make_spec
    from tinybert_edge.io import resolve_path

    spec = make_spec(spec)
    path = resolve_path(spec.path)
    if not path.exists():
        raise DataError(f"data path '{path}' does not exist; pass a text file (one text per line) or a table with "
                        "a text column")
    fmt = spec.format or ("text" if path.suffix.lower() in (".txt", ".text", "") and path.is_file() else None)
    if fmt == "text":
        try:
            with open(path, encoding=spec.encoding, errors=spec.encoding_errors) as handle:
                texts = [line.strip() for line in handle if line.strip()]
        except (OSError, UnicodeDecodeError, LookupError) as exc:
            raise DataError(f"{path}: cannot be read as {spec.encoding} text ({exc}); pass --encoding or "
                            "--encoding-errors replace") from exc
        if not texts:
            raise DataError(f"{path}: the file has no non-empty lines; put one text per line")
        return TextEmbeddingData(texts, source=str(path))
    fmt = fmt or detect_format(path)
    header, rows = READERS.get(fmt)(path, spec)
    if not rows:
        raise DataError(f"{path}: the dataset is empty (no data rows); point --data at a file with texts")
    text_column = spec.text_column or next((c for c in TEXT_COLUMNS if c in header), None)
    if text_column is None or text_column not in header:
        raise DataError(f"{path}: no text column {text_column or ''} among {header}; name it with --text-column")
    pair_column = spec.text_pair_column or next((c for c in PAIR_COLUMNS if c in header), None)
    if pair_column is not None and pair_column not in header:
        raise DataError(f"{path}: no column '{pair_column}' among {header}; check --text-pair-column")
    score_column = spec.label_column or (next((c for c in SCORE_COLUMNS if c in header), None) if pair_column else None)
    texts, pairs, scores = [], [], []
    for index, row in enumerate(rows):
        text = str(row.get(text_column) or "").strip()
        if not text:
            continue
        texts.append(text)
        if pair_column:
            pairs.append(str(row.get(pair_column) or ""))
        if score_column:
            try:
                value = float(row.get(score_column))
            except (TypeError, ValueError):
                raise DataError(f"{path}: row {index + 1} has {row.get(score_column)!r} in the score column "
                                f"'{score_column}', not a number; fix it or name the score column with "
                                "--label-column") from None
            scores.append(value)
    if not texts:
        raise DataError(f"{path}: every row has an empty text in '{text_column}'; check --text-column")
    return TextEmbeddingData(texts, pairs if pair_column else None, scores if score_column else None, str(path))


@dataclass
class EncodedPairs(EncodedData):
    """EncodedData of an embedding set: one row per distinct text to embed. `queries` rows come first (the first
    texts); `pair_rows[i]` is the row of text i's second text (None without pairs); `scores` the gold similarity of
    each pair (None without scores); `truncated` how many rows were longer than max_length and cut."""

    queries: int = 0
    pair_rows: np.ndarray | None = None
    scores: np.ndarray | None = None
    truncated: int = 0


def encode_texts(tokenizer: Any, data: TextEmbeddingData, max_length: int) -> EncodedPairs:
    """Each first text, then each distinct second text, tokenized alone (a sentence vector is one text's)."""
    rows = list(data.texts)
    pair_rows = None
    if data.text_pairs is not None:
        position: dict[str, int] = {}
        for text in data.text_pairs:
            if text not in position:
                position[text] = len(rows)
                rows.append(text)
        pair_rows = np.asarray([position[text] for text in data.text_pairs], dtype=np.int64)
    full = tokenizer(rows, truncation=False, padding=False, return_token_type_ids=True,
                     return_attention_mask=False)["input_ids"]
    truncated = sum(len(ids) > max_length for ids in full)
    if truncated:
        log.info("%s: %d of %d texts are longer than %d tokens and were truncated", data.source, truncated, len(rows),
                 max_length)
    encoded = tokenizer(rows, truncation=True, max_length=max_length, padding=False, return_token_type_ids=True)
    return EncodedPairs(
        input_ids=[list(x) for x in encoded["input_ids"]], token_type_ids=[list(x) for x in encoded["token_type_ids"]],
        labels=np.zeros(len(rows), dtype=np.float32), queries=len(data.texts), pair_rows=pair_rows,
        scores=None if data.scores is None else np.asarray(data.scores, dtype=np.float64), truncated=truncated)


# --- metrics ---------------------------------------------------------------------------------------------------------

def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    values = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(values, axis=-1, keepdims=True)
    return values / np.maximum(norms, 1e-12)


def similarity_metrics(first: np.ndarray, second: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Spearman (the STS benchmarks' official metric) and Pearson correlation of cos(first_i, second_i) with the
    gold scores (scipy, through tinybert_edge.tasks.regression.correlation)."""
    from tinybert_edge.tasks.regression import correlation

    cosines = np.sum(normalize_rows(first) * normalize_rows(second), axis=-1)
    return {"spearman": correlation("spearman", cosines, scores), "pearson": correlation("pearson", cosines, scores)}


def retrieval_metrics(queries: np.ndarray, documents: np.ndarray, relevant: np.ndarray) -> dict[str, float]:
    """Exact cosine search of each query over all documents: recall@k (the relevant document among the top k) for
    k in RECALL_AT and MRR@10 (mean of 1/rank of the relevant document, 0 beyond rank 10). Ties rank the relevant
    document after every document that scores as high (no credit for a tie)."""
    q, d = normalize_rows(queries), normalize_rows(documents)
    similarities = q @ d.T
    own = similarities[np.arange(len(q)), relevant]
    rank = np.sum(similarities > own[:, None], axis=1) + np.sum(similarities == own[:, None], axis=1)
    result = {f"recall@{k}": float(np.mean(rank <= k)) for k in RECALL_AT}
    result[f"mrr@{MRR_AT}"] = float(np.mean(np.where(rank <= MRR_AT, 1.0 / rank, 0.0)))
    return result


# --- the task --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Embedding:
    """One text's result on the device: its sentence vector and how many tokens it was read as (at most the
    bundle's max_length: longer texts are truncated)."""

    vector: np.ndarray
    num_tokens: int


def _width_error(student: int, teacher: int) -> ConfigError:
    return ConfigError(f"the student's sentence vectors are {student} wide and the teacher's {teacher}; MSE between "
                       f"them needs one width: give the student the teacher's hidden_size ({teacher}), e.g. --student "
                       "teacher-layers:2,4,6 or a from-teacher:config.json shape of that width")


class EmbeddingTask(Task):
    """Sentence embeddings (see the module docstring). `pooling`/`normalize` supply pooling settings for a teacher
    folder that has none (they override a folder's own, with a warning); `cosine_weight` adds
    cosine_weight * mean(1 - cos(s, t)) to the stage-2 MSE between student and teacher vectors."""

    name = "embedding"
    architecture = "BertModel"
    export_task = "feature-extraction"
    output_names = ("sentence_embedding",)
    primary_metric = "spearman"
    agreement_means = "the same nearest neighbour among the other texts"

    def __init__(self, pooling: str | None = None, normalize: bool = True, cosine_weight: float = 0.0) -> None:
        self.pooling_override = Pooling(pooling, normalize) if pooling is not None else None
        if not (isinstance(cosine_weight, (int, float)) and math.isfinite(cosine_weight) and cosine_weight >= 0):
            raise ConfigError(f"cosine_weight = {cosine_weight!r} must be a finite number >= 0")
        self.cosine_weight = float(cosine_weight)

    # --- data ----------------------------------------------------------------------------------------------------

    def read(self, spec: Any) -> TextEmbeddingData:
        data = read_texts(spec)
        return data if self.pooling_override is None and not self.cosine_weight else \
            TextEmbeddingData(data.texts, data.text_pairs, data.scores, data.source, self)

    def encode(self, tokenizer: Any, data: TextEmbeddingData, max_length: int) -> EncodedPairs:
        return encode_texts(tokenizer, data, max_length)

    def check_training_data(self, data: Any, purpose: str = "training") -> None:
        if not isinstance(data, TextEmbeddingData):
            raise DataError(f"{getattr(data, 'source', 'the data')}: the embedding task reads plain texts, but the "
                            f"data was read as {getattr(data, 'task', type(data).__name__)}; read it with "
                            "load_data(..., task='embedding') (--task embedding)")
        if not len(data):
            raise DataError(f"{data.source}: no {purpose} texts")

    # --- model ---------------------------------------------------------------------------------------------------

    def matches(self, config: Mapping[str, Any]) -> bool:
        return "BertModel" in (config.get("architectures") or []) and isinstance(config.get(CONFIG_KEY), Mapping)

    def model_class(self) -> SentenceEncoder:
        return SentenceEncoder(self.pooling_override)

    def head_config(self, label_names: Sequence[str] | None) -> dict[str, Any] | None:
        return {}

    def teacher_as_is(self, folder: Path, out_dir: Path) -> Path:
        """The teacher loaded with its pooling and saved as this SDK saves an embedding model (pooling in
        config.json, sentence-transformers module files beside it), so every session and export can open it."""
        from tinybert_edge.models import load_model, load_tokenizer, save_model

        if self.matches(json.loads((Path(out_dir) / "config.json").read_text(encoding="utf-8"))
                        if (Path(out_dir) / "config.json").is_file() else {}):
            return Path(out_dir)
        model = load_model(folder, self, role="teacher")
        save_model(model, load_tokenizer(folder), out_dir)
        write_sentence_transformers_files(Path(out_dir), model_pooling(model), model.config.hidden_size,
                                          model.config.max_position_embeddings)
        return Path(out_dir)

    def check_student(self, student_config: Any, teacher_config: Any, config: Any) -> None:
        """The prediction stage's MSE compares student and teacher sentence vectors, which are as wide as each
        model's hidden size: a narrower (or wider) student is refused before stage 1 trains, not after it."""
        if config.prediction_epochs > 0 and student_config.hidden_size != teacher_config.hidden_size:
            raise _width_error(student_config.hidden_size, teacher_config.hidden_size)

    # --- training ------------------------------------------------------------------------------------------------

    def forward(self, model: Any, batch: Mapping[str, Any]) -> Any:
        hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       token_type_ids=batch["token_type_ids"]).last_hidden_state
        return pool(hidden, batch["attention_mask"], model_pooling(model))

    def fine_tune_loss(self, model: Any, batch: Mapping[str, Any]) -> Any:
        raise ConfigError("the embedding task uses its teacher as it is: there is no fine-tuning loss; distil a "
                          "sentence-transformers teacher directly (tinybert-edge distill --task embedding)")

    def prediction_loss(self, student: Any, teacher: Any, batch: Mapping[str, Any], config: Any) -> dict[str, Any]:
        """MSE(v_S, v_T) over the batch and the vector width, + cosine_weight * mean(1 - cos(v_S, v_T))."""
        from torch.nn import functional as F

        if student.shape[-1] != teacher.shape[-1]:
            raise _width_error(student.shape[-1], teacher.shape[-1])
        loss = F.mse_loss(student, teacher)
        if self.cosine_weight:
            loss = loss + self.cosine_weight * (1 - F.cosine_similarity(student, teacher, dim=-1)).mean()
        return {"prediction": loss}

    # --- evaluation ----------------------------------------------------------------------------------------------

    def metrics(self, outputs: np.ndarray, encoded: Any) -> dict[str, float]:
        vectors = np.asarray(outputs, dtype=np.float64)
        pair_rows = getattr(encoded, "pair_rows", None)
        if pair_rows is None:
            raise DataError("sentence embeddings are evaluated on pairs, and these texts have none: give dev/test data "
                            "with a second-text column, scored (sentence1, sentence2, score, as GLUE's STS-B: "
                            "Spearman of cosine) or not (a query and its relevant document: retrieval recall and MRR); "
                            "--dev/--test, --text-pair-column, --label-column")
        queries = vectors[: encoded.queries]
        if encoded.scores is not None:
            return similarity_metrics(queries, vectors[pair_rows], encoded.scores)
        documents = np.arange(encoded.queries, len(vectors))
        return retrieval_metrics(queries, vectors[documents], pair_rows - encoded.queries)

    def selection_metrics(self, data: Any) -> tuple[str, ...]:
        return ("spearman", "pearson", *(f"recall@{k}" for k in RECALL_AT), f"mrr@{MRR_AT}")

    def predictions(self, outputs: np.ndarray) -> np.ndarray:
        """Each row's nearest neighbour (cosine) among the other rows: the decision a search makes."""
        vectors = normalize_rows(outputs)
        if len(vectors) < 2:
            return np.zeros(len(vectors), dtype=np.int64)
        nearest = np.empty(len(vectors), dtype=np.int64)
        for start in range(0, len(vectors), 1024):  # blocks of rows: memory stays linear in the set's size
            similarities = vectors[start : start + 1024] @ vectors.T
            rows = np.arange(len(similarities))
            similarities[rows, start + rows] = -np.inf
            nearest[start : start + len(similarities)] = similarities.argmax(axis=1)
        return nearest

    def agreement(self, reference: np.ndarray, candidate: np.ndarray, encoded: Any = None) -> float:
        """Fraction of rows whose nearest neighbour under the candidate is, by the reference's own similarities, as
        near as the reference's nearest (within NEIGHBOUR_TIE of cosine): a tie (a text present twice, or two
        documents equally close) is no disagreement, whichever of them each model happens to pick."""
        if not len(reference):
            return float("nan")
        vectors = normalize_rows(reference)
        chosen, best = self.predictions(candidate), self.predictions(reference)
        rows = np.arange(len(vectors))
        chosen_similarity = np.sum(vectors * vectors[chosen], axis=1)
        best_similarity = np.sum(vectors * vectors[best], axis=1)
        tied = (chosen != rows) & (chosen_similarity >= best_similarity - NEIGHBOUR_TIE)
        return float(np.mean((chosen == best) | tied))

    # --- export --------------------------------------------------------------------------------------------------

    def export_module(self, model: Any) -> Any:
        import torch

        task = self

        class SentenceVector(torch.nn.Module):
            """The encoder with pooling (and normalisation): (input_ids, attention_mask, token_type_ids) -> vector."""

            def __init__(self, encoder: torch.nn.Module) -> None:
                super().__init__()
                self.encoder = encoder

            def forward(self, input_ids, attention_mask, token_type_ids):
                return task.forward(self.encoder, {"input_ids": input_ids, "attention_mask": attention_mask,
                                                   "token_type_ids": token_type_ids})

        return SentenceVector(model).eval()

    def finish_onnx_export(self, folder: Path, config: Mapping[str, Any]) -> dict[str, Any]:
        """Put the pooling inside the graph: a first output "sentence_embedding" [batch, width] computed from
        "last_hidden_state" (which stays, second, for sentence-transformers' ONNX backend), and the
        sentence-transformers module files beside it, so the folder loads in SentenceTransformer(folder,
        backend="onnx")."""
        from tinybert_edge.tasks.embedding_onnx import add_pooling

        pooling = Pooling.from_dict(config[CONFIG_KEY], f"'{folder}'") if isinstance(config.get(CONFIG_KEY), Mapping) \
            else None
        if pooling is None:
            raise ModelError(f"'{folder}': the exported model carries no pooling settings; export a model loaded "
                             f"with its pooling ({POOLING_FLAG})")
        add_pooling(folder / "model.onnx", pooling)
        write_sentence_transformers_files(folder, pooling, int(config["hidden_size"]),
                                          int(config.get("max_position_embeddings", 512)))
        return {"pooling": pooling.to_dict()}

    # --- runtime and bundle --------------------------------------------------------------------------------------

    def manifest_fields(self, label_names: Sequence[str] | None,
                        model_config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {"task": self.name, "labels": []}

    def check_manifest(self, fields: Mapping[str, Any], where: str) -> None:
        width = fields.get("embedding_dimension")
        if width is not None and not (isinstance(width, int) and width > 0):
            raise BundleError(f"the bundle '{where}' has embedding_dimension {width!r}, not a positive integer; "
                              "repackage it")

    def output_width(self, fields: Mapping[str, Any]) -> int | None:
        return fields.get("embedding_dimension")

    def postprocess(self, outputs: np.ndarray, encodings: Sequence[Any], fields: Mapping[str, Any]) -> list[Embedding]:
        values = np.asarray(outputs, dtype=np.float32)
        return [Embedding(row, len(encoding)) for row, encoding in zip(values, encodings)]


__all__ = ["CONFIG_KEY", "Embedding", "EmbeddingTask", "EncodedPairs", "Pooling", "SentenceEncoder",
           "TextEmbeddingData", "pool", "read_pooling", "read_texts", "retrieval_metrics", "similarity_metrics"]
