"""The Task seam: everything that differs between NLP tasks lives behind this one type.

A task owns, for its kind of example: reading and encoding (labels aligned to tokens where needed), the model head,
the fine-tuning loss and the prediction-layer distillation loss, the metrics, the exported outputs and their names,
how two models' outputs are judged to agree (parity), the torch-free post-processing of the runtime, and the task
fields of a bundle manifest. Data loading, training, distillation, export, evaluation, benchmarks and bundles ask
the task; none of them tests "is this a classifier". docs/tasks.md shows how each task maps onto these methods.

The module imports neither torch nor transformers: the device-side runtime calls `postprocess` and `manifest_fields`
without the training stack. Methods that train or build models import torch inside.
"""

from __future__ import annotations

import abc
import json
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np


class Task(abc.ABC):
    """One NLP task. Subclasses set the class attributes and implement the abstract methods.

    Outputs: every model of a task returns its outputs as one float32 array, the task's *output array*: the single
    output when `output_names` has one name, else the named outputs stacked on a new last axis in that order
    (question answering: start and end logits as [batch, seq, 2]). Sessions, parity checks and benchmarks pass
    that array around without knowing its shape; the task reads it.
    """

    #: Registry key, recorded in student folders, export metadata and bundle manifests.
    name: ClassVar[str]
    #: The Hugging Face architecture name a fine-tuned folder of this task declares (config.json "architectures").
    architecture: ClassVar[str]
    #: optimum-onnx's task name for `main_export`.
    export_task: ClassVar[str]
    #: Names of the exported graph's outputs, in the order the output array stacks them.
    output_names: ClassVar[tuple[str, ...]]
    #: The metric that selects checkpoints and headlines reports (a key of `metrics`), and whether higher is better.
    primary_metric: ClassVar[str]
    higher_is_better: ClassVar[bool] = True
    #: Whether the output array has a sequence axis after the batch axis (token classification, question answering).
    per_token: ClassVar[bool] = False
    #: What `agreement` counts, in words for messages ("the same top label").
    agreement_means: ClassVar[str] = "the same decision"
    #: The key of `parity_metrics` that a parity check gates by ParityThresholds.min_task_metric when its examples
    #: are the task's own data (question answering: answer F1 against the reference); None: reported, not gated.
    parity_gated_metric: ClassVar[str | None] = None
    #: Whether the runtime's inputs are plain texts (with optional second texts) that the tokenizer's batch encoder
    #: encodes; tasks with other inputs or encodings (offsets, windows) set False and implement `runtime_encode`.
    text_inputs: ClassVar[bool] = True
    #: What one runtime input is, in words for messages.
    input_description: ClassVar[str] = "a text"

    # --- data --------------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def read(self, spec: Any) -> Any:
        """Examples from a file or saved dataset described by a `tinybert_edge.data.DataSpec`."""

    @abc.abstractmethod
    def encode(self, tokenizer: Any, data: Any, max_length: int) -> Any:
        """`data` tokenized (truncated to `max_length`, unpadded) as a `tinybert_edge.data.EncodedData`."""

    def split(self, data: Any, fractions: Sequence[float], seed: int = 0) -> tuple[Any, Any, Any]:
        """Deterministic train/dev/test parts of one file's examples (`data.subset`): a seeded shuffle cut by
        `fractions`. Tasks whose examples are related (labels to stratify, paragraphs of one article) override it."""
        from tinybert_edge.errors import DataError

        if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
            raise DataError(f"split fractions {list(fractions)} must be three non-negative numbers that sum to 1")
        order = np.random.default_rng(seed).permutation(len(data))
        n_train = int(round(fractions[0] * len(data)))
        n_dev = int(round(fractions[1] * len(data)))
        parts = (order[:n_train], order[n_train : n_train + n_dev], order[n_train + n_dev :])
        for name, part in zip(("train", "dev", "test"), parts):
            if not len(part):
                raise DataError(f"{data.source}: the {name} split is empty with fractions {list(fractions)}; use "
                                "more data")
        return tuple(data.subset(sorted(p.tolist()), f"[{name}]")  # type: ignore[return-value]
                     for name, p in zip(("train", "dev", "test"), parts))

    def check_training_data(self, data: Any, purpose: str = "training") -> None:
        """Raise DataError when `data` cannot train a model of this task (checked before anything is loaded)."""

    def align(self, data: Any, model_config: Any) -> Any:
        """`data` re-indexed to the label order of a model's config (identity for tasks without labels)."""
        return data

    def record_settings(self, model_config: Any, data: Any) -> None:
        """Record in a model's config (a transformers PretrainedConfig, saved into config.json) how `data` was read
        where the model must be run the same way (question answering: the document stride); nothing by default.
        Fine-tuning and distillation call it before they save a model; `manifest_fields` reads it back."""

    def label_names(self, model_config: Any) -> list[str] | None:
        """The label names a model predicts, in output order (None for tasks without labels)."""
        return None

    # --- model -------------------------------------------------------------------------------------------------

    def matches(self, config: Mapping[str, Any]) -> bool:
        """Whether a model folder's config.json (a dict) is a fine-tuned model of this task."""
        return self.architecture in (config.get("architectures") or [])

    @abc.abstractmethod
    def model_class(self) -> Any:
        """The transformers class of this task's model (BertFor...)."""

    @abc.abstractmethod
    def head_config(self, label_names: Sequence[str] | None) -> dict[str, Any] | None:
        """Config keys a new task head needs (label count and names, problem type); None when the head needs
        label names and none were given."""

    def check_labels(self, model_config: Any, label_names: Sequence[str], where: Any) -> None:
        """Raise ModelError unless a model predicts `label_names` (tasks with labels override this)."""

    def teacher_as_is(self, folder: Path, out_dir: Path) -> Path | None:
        """For a task whose teacher is used as it is, never fine-tuned (embeddings): the teacher in `folder` saved
        at `out_dir` as a model folder of this task (reused when already there), and that folder; None (the default)
        for tasks whose teacher is fine-tuned when it is not yet a model of the task."""
        return None

    def check_student(self, student_config: Any, teacher_config: Any, config: Any) -> None:
        """Raise ConfigError when a student of this shape (`student_config`, a transformers config) cannot be
        distilled from the teacher by `config` (a DistillConfig). Distillation calls it once the student is built,
        before any training, so a shape that a later stage could not use fails in seconds, not after stage 1."""

    # --- training ----------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def forward(self, model: Any, batch: Mapping[str, Any]) -> Any:
        """The model's output array (a torch tensor) for a batch of torch tensors."""

    @abc.abstractmethod
    def fine_tune_loss(self, model: Any, batch: Mapping[str, Any]) -> Any:
        """The supervised loss of a batch (teacher fine-tuning)."""

    @abc.abstractmethod
    def prediction_loss(self, student: Any, teacher: Any, batch: Mapping[str, Any], config: Any) -> dict[str, Any]:
        """Prediction-layer distillation terms between output arrays (torch tensors); "prediction" is required,
        others (a hard-label term) optional. Weighted and summed by the caller."""

    # --- evaluation --------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def metrics(self, outputs: np.ndarray, encoded: Any) -> dict[str, float]:
        """Every metric of the task for output arrays of all examples of `encoded`; includes `primary_metric`."""

    def selection_metrics(self, data: Any) -> tuple[str, ...]:
        """The metrics of `metrics` that can select checkpoints for `data` (higher is better for each); a
        DistillConfig.metric outside them is refused before training."""
        return (self.primary_metric,)

    def details(self, outputs: np.ndarray, encoded: Any) -> dict[str, Any]:
        """Results beyond the scalar metrics, as plain JSON data (a classifier's confusion matrix); {} by default."""
        return {}

    @abc.abstractmethod
    def predictions(self, outputs: np.ndarray) -> np.ndarray:
        """The decision each output row stands for (class ids, scores, tag ids), for agreement between models."""

    @abc.abstractmethod
    def agreement(self, reference: np.ndarray, candidate: np.ndarray, encoded: Any = None) -> float:
        """Fraction of examples on which a candidate's decision is the reference's (parity and bundle checks).
        `encoded` (the encoded examples the rows hold, in order) lets a task whose decision needs more than the
        output array (question answering: the answer decoded over a question's windows) judge it as the user sees
        it; without it the task judges each row alone."""

    def parity_metrics(self, reference: np.ndarray, candidate: np.ndarray, encoded: Any) -> dict[str, float]:
        """Task-level agreement of a candidate's outputs with the reference's on the rows of `encoded` (the
        reference's decisions taken as the truth: entity F1 for NER, answer F1 for QA); {} where agreement says
        it all. Recorded in parity reports beside the gated numbers."""
        return {}

    def concatenate(self, arrays: Sequence[np.ndarray], masks: Sequence[np.ndarray] | None = None) -> np.ndarray:
        """One output array from the output arrays of consecutive batches. Per-token arrays (`per_token`) of
        batches padded to different widths are padded to the widest with NaN, and where each batch's attention
        mask (`masks`) is 0 the outputs become NaN too: they are no token's output, so metrics and parity checks
        skip them (a NaN from a broken model is never at a position the reference has a number)."""
        arrays = [np.asarray(a, dtype=np.float32) for a in arrays]
        if not self.per_token:
            return np.concatenate(arrays, axis=0)
        width = max(a.shape[1] for a in arrays)
        padded = []
        for index, array in enumerate(arrays):
            out = np.full((array.shape[0], width, *array.shape[2:]), np.nan, dtype=np.float32)
            out[:, : array.shape[1]] = array
            if masks is not None:
                mask = np.asarray(masks[index])[:, : array.shape[1]] == 0
                out[:, : array.shape[1]][mask] = np.nan
            padded.append(out)
        return np.concatenate(padded, axis=0)

    def decision_rows(self, output: np.ndarray) -> np.ndarray:
        """One example's output array as rows that each hold one decision over their last axis (a classifier's
        logits: one row; NER: a row per token; QA: the start and the end row over the sequence). Golden-vector
        checks compare the argmax of each row."""
        values = np.asarray(output, dtype=np.float64)
        return values.reshape(-1, values.shape[-1]) if values.ndim else values.reshape(1, 1)

    def parity_view(self, outputs: np.ndarray) -> np.ndarray:
        """What a parity check's cosine compares: the outputs as float64 (tasks whose decision ignores part of
        the output, such as a softmax's per-row constant, remove it here)."""
        return np.asarray(outputs, dtype=np.float64)

    # --- export ------------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def export_module(self, model: Any) -> Any:
        """A torch module of positional (input_ids, attention_mask, token_type_ids) that returns the outputs named
        by `output_names` (a tensor, or a tuple in that order): what litert-torch converts."""

    def finish_onnx_export(self, folder: Path, config: Mapping[str, Any]) -> dict[str, Any]:
        """Task-specific changes to a fresh ONNX export in `folder` (`config`: the source's config.json), made before
        the graph is optimized and checked; returns what the export metadata records. Nothing by default (the
        embedding task puts its pooling into the graph here)."""
        return {}

    # --- runtime and bundle (torch-free) ------------------------------------------------------------------------

    def golden_inputs(self, texts: Sequence[str]) -> list[Any]:
        """A bundle's golden cases from its golden texts: the texts themselves, or (text, pair) tuples for tasks
        whose input is a pair (question answering)."""
        return list(texts)

    def is_single_input(self, inputs: Any) -> bool:
        """Whether `predict(inputs)` was given one input (a text) rather than a list of them."""
        return isinstance(inputs, (str, bytes, bytearray))

    def runtime_encode(self, tokenizer: Any, item: Any, index: int, fields: Mapping[str, Any]) -> list[Any]:
        """The runtime's encodings (runtime.wordpiece.Encoding) of input number `index`: one for a text; tasks whose
        input is split into windows (question answering) give several, each carrying `input_index=index`."""
        return [tokenizer.encode(item)]

    @abc.abstractmethod
    def postprocess(self, outputs: np.ndarray, encodings: Sequence[Any], fields: Mapping[str, Any]) -> list[Any]:
        """User-facing results for output arrays, one per input (encodings of one input share its
        `input_index`). `fields` are the manifest's task fields."""

    @abc.abstractmethod
    def manifest_fields(self, label_names: Sequence[str] | None,
                        model_config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The bundle manifest's task fields ("task" and what `postprocess` reads); `model_config` is the packaged
        model's config.json (as a dict), which holds what `record_settings` recorded."""

    def check_manifest(self, fields: Mapping[str, Any], where: str) -> None:
        """Raise BundleError when a manifest's task fields cannot be used (checked before any model runs)."""

    def output_width(self, fields: Mapping[str, Any]) -> int | None:
        """The last axis of a [batch, width] output array the manifest's fields imply (a classifier's label count);
        None for output arrays whose shape the fields do not fix."""
        return None

    # --- helpers shared by every task ----------------------------------------------------------------------------

    def stack_outputs(self, named: Mapping[str, np.ndarray]) -> np.ndarray:
        """The output array from a runtime's named outputs (see the class docstring). Outputs named otherwise than
        `output_names` (a TFLite signature's output_0, output_1, ...) are taken in the order of their names."""
        names = self.output_names if all(name in named for name in self.output_names) else sorted(named)
        arrays = [np.asarray(named[name], dtype=np.float32) for name in names]
        return arrays[0] if len(arrays) == 1 else np.stack(arrays, axis=-1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def stack_rows(rows: Sequence[np.ndarray]) -> np.ndarray:
    """Per-example output arrays stacked on a new batch axis; per-token rows of different lengths padded along
    their sequence axis (axis 0) with NaN (see Task.concatenate)."""
    arrays = [np.asarray(r, dtype=np.float32) for r in rows]
    if not arrays:
        return np.zeros((0,), dtype=np.float32)
    if len({a.shape for a in arrays}) == 1:
        return np.stack(arrays)
    width = max(a.shape[0] for a in arrays)
    out = np.full((len(arrays), width, *arrays[0].shape[1:]), np.nan, dtype=np.float32)
    for index, array in enumerate(arrays):
        out[index, : array.shape[0]] = array
    return out


def read_model_config(folder: str | Path) -> dict[str, Any]:
    """config.json of a model folder as a dict ({} when it has none or it is unreadable)."""
    path = Path(folder) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}
