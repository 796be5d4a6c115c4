"""Parity of an exported artifact with its reference model: every metric is gathered, then one ParityError names
each threshold that failed and by how much. The task (see tinybert_edge.tasks) says what a decision is (argmax for
a classifier) and which view of the outputs the cosine compares (row-centred logits for a classifier)."""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from tinybert_edge.errors import ConfigError, ParityError
from tinybert_edge.runtime.sessions import MODEL_INPUTS, InferenceSession

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ParityThresholds:
    """Limits on how far a candidate's logits may stray from the reference's."""

    max_abs_diff: float
    min_cosine: float  # compared with the cosine of the row-centred logits over the whole eval set (see compare_logits)
    min_argmax_agreement: float  # compared with the task's agreement (its decision: a label, a tag, an answer)
    # Compared with the task's gated parity metric (Task.parity_gated_metric: answer F1 against the reference for
    # question answering) when the examples are the task's own data; tasks without one ignore it.
    min_task_metric: float = 0.0
    # The max_abs_diff limit for per-token outputs (Task.per_token: a tag per token, start/end logits), where one
    # example holds a value per token and label instead of one per label; None: max_abs_diff.
    per_token_max_abs_diff: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_abs_diff", "per_token_max_abs_diff"):
            value = getattr(self, name)
            if name == "per_token_max_abs_diff" and value is None:
                continue
            if not (isinstance(value, (int, float)) and value > 0):
                raise ConfigError(f"{name}={value!r} is not allowed; allowed: a number > 0 (math.inf disables it)")
        for name in ("min_cosine", "min_argmax_agreement", "min_task_metric"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and -1.0 <= value <= 1.0):
                raise ConfigError(f"{name}={value!r} is not allowed; allowed: a number from -1 to 1")

    @classmethod
    def fp32(cls) -> "ParityThresholds":
        # Same arithmetic in another runtime: differences are float reassociation and fused kernels (~1e-5 on
        # logits). 1e-3 leaves room for long sequences; an argmax may flip only on near-exact ties.
        return cls(max_abs_diff=1e-3, min_cosine=0.9999, min_argmax_agreement=0.99, min_task_metric=0.99)

    @classmethod
    def fp16(cls) -> "ParityThresholds":
        # fp16 weights keep ~3 significant digits; logits move by ~1e-3 of their scale.
        return cls(max_abs_diff=5e-2, min_cosine=0.999, min_argmax_agreement=0.98, min_task_metric=0.98)

    @classmethod
    def int8(cls) -> "ParityThresholds":
        # Dynamic int8 costs BERT-sized classifiers under a point of accuracy (ONNX Runtime's BERT-base MRPC example:
        # 86.0 -> 85.3), and the flips sit near the decision boundary: 97% agreement allows that with headroom.
        # A broken kernel (e.g. u8 x s8 saturation) moves logits by whole units, which the 1.0 absolute limit
        # catches even where the argmax happens to survive, and drags the set cosine far below 0.98.
        # Task metrics (QA: answer F1 against the fp32 answers) at 0.95: a sound int8 model that moves an answer's
        # boundary by a word keeps most of its F1; one that answers elsewhere scores 0 on that question.
        # Per-token outputs get 2.0: the largest of 128 x 9 values per example instead of 2 grows with their count
        # (a sound int8 NER student on CoNLL-2003 test: max|diff| 1.02 over 4M values, token agreement 0.997,
        # entity F1 against its fp32 self 0.997), while a broken kernel still moves logits by whole units.
        return cls(max_abs_diff=1.0, min_cosine=0.98, min_argmax_agreement=0.97, min_task_metric=0.95,
                   per_token_max_abs_diff=2.0)

    @classmethod
    def for_precision(cls, precision: str) -> "ParityThresholds":
        presets = {"fp32": cls.fp32, "fp16": cls.fp16, "int8": cls.int8}
        if precision not in presets:
            raise ConfigError(f"precision={precision!r} is not allowed; allowed: {', '.join(presets)}")
        return presets[precision]()


@dataclass(frozen=True)
class ParityReport:
    max_abs_diff: float
    mean_abs_diff: float
    cosine: float  # the gated one: row-centred logits of the whole eval set as one vector each
    min_cosine: float  # per example, raw logits (diagnostic)
    mean_cosine: float  # per example, raw logits (diagnostic)
    argmax_agreement: float
    n_examples: int
    thresholds: ParityThresholds
    reference_backend: str = ""
    candidate_backend: str = ""
    failures: tuple[str, ...] = field(default=())
    inputs: str = ""  # what the examples were: the user's data, a dev split, or generated sentences
    # The task's own agreement measures (entity F1, answer F1 against the reference's decisions; see
    # Task.parity_metrics), recorded beside the gated numbers when the examples are the task's data.
    task_metrics: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["failures"] = list(self.failures)
        data["passed"] = self.passed
        # JSON has no infinity; a disabled limit is written as null.
        data["thresholds"] = {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in data["thresholds"].items()}
        return data


@dataclass
class ParityCheck:
    """What an exporter verifies its temporary artifact against before it moves the artifact into place.

    `batches` are dicts of int64 arrays (`input_ids`, `attention_mask`, `token_type_ids`; other keys such as
    `labels` are ignored), dynamically padded, of any batch size.
    """

    reference: InferenceSession
    batches: Sequence[Mapping[str, np.ndarray]]
    thresholds: ParityThresholds
    inputs: str = ""
    # The encoded examples the batches hold, in order (tinybert_edge.data.EncodedData), when they are the task's
    # own data: then the report also carries the task's metrics of agreement (Task.parity_metrics).
    encoded: Any = None
    # The reference's outputs on `batches`, computed by the first `measure` and reused by the next ones.
    _reference_outputs: Any = dataclasses.field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.batches = list(self.batches)
        if not self.batches:
            raise ConfigError("ParityCheck.batches is empty; give at least one batch of encoded examples")
        for i, batch in enumerate(self.batches):
            if "input_ids" not in batch or "attention_mask" not in batch:
                raise ConfigError(
                    f"ParityCheck.batches[{i}] has keys {sorted(batch)}; each batch needs input_ids and attention_mask"
                )

    def with_thresholds(self, thresholds: ParityThresholds) -> "ParityCheck":
        return ParityCheck(self.reference, self.batches, thresholds, self.inputs, self.encoded)

    def run(self, candidate: InferenceSession) -> ParityReport:
        if candidate._task is None:  # an artifact exported from the reference serves its task (its metadata
            candidate._task = self.reference.task  # may not be written yet)
        report = verify_parity(self.reference, candidate, self.batches, self.thresholds, self.encoded,
                               reference_outputs=self._reference())
        return dataclasses.replace(report, inputs=self.inputs)

    def measure(self, candidate: InferenceSession) -> ParityReport:
        """The report `run` would give, without raising on a miss: for searches that compare many candidates (the
        int8 agreement search, converters.gate). The reference runs once per check, for `run` and `measure` alike."""
        report = parity_report(self.reference, candidate, self.batches, self.thresholds, self.encoded,
                               reference_outputs=self._reference())
        return dataclasses.replace(report, inputs=self.inputs)

    def _reference(self) -> np.ndarray:
        if self._reference_outputs is None:
            self._reference_outputs = _outputs(self.reference, self.reference.task, self.batches)
        return self._reference_outputs


def _model_inputs(batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    feed = {name: np.asarray(batch[name], dtype=np.int64) for name in MODEL_INPUTS if name in batch}
    if "token_type_ids" not in feed:
        feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
    return feed


def row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of `a` with the same row of `b`, in float64."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    norms = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    dots = np.sum(a64 * b64, axis=1)
    # Two all-zero rows agree exactly; one zero row against a non-zero one does not.
    both_zero = norms == 0
    return np.where(both_zero, np.where(np.all(a64 == b64, axis=1), 1.0, 0.0), dots / np.where(both_zero, 1.0, norms))


def _set_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine between two output matrices (each the task's parity view), flattened to one vector each (1.0 when
    both are zero)."""
    a, b = a.ravel(), b.ravel()
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    if norms == 0.0:
        return 1.0 if np.array_equal(a, b) else 0.0
    return float(np.dot(a, b) / norms)


def compare_logits(reference: np.ndarray, candidate: np.ndarray, thresholds: ParityThresholds,
                   reference_backend: str = "", candidate_backend: str = "", task: Any = None,
                   encoded: Any = None) -> ParityReport:
    """Metrics of `candidate` logits against `reference` logits, with the list of thresholds they miss.

    The cosine limit applies to the eval set as a whole: each matrix of logits, less its row means, as one vector.
    A per-example cosine is ill-conditioned where logits are short: with two labels an uncertain example's
    logits are a short 2-vector that a quantization-sized shift turns by tens of degrees, so the mean of per-row
    cosines of a sound int8 binary classifier sits near 0.96 while its argmax agrees on 98% of examples. The set
    cosine weighs every example by its margin, as a prediction does; a broken kernel that moves logits by whole
    units still drags it far down. The per-example minimum and mean are still reported.

    With `encoded` (the encoded examples the rows hold, in order), the task judges agreement on its own data (QA:
    the decoded answer per question) and its parity metrics are reported, the gated one (Task.parity_gated_metric)
    against `thresholds.min_task_metric`.
    """
    from tinybert_edge.tasks import get_task

    task = get_task(task) if task is not None else get_task()
    if reference.shape != candidate.shape:
        raise ParityError(f"output shapes differ: reference {reference.shape}, candidate {candidate.shape}")
    diff = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
    # Per-token outputs are NaN where a batch had no token (Task.concatenate): those positions are not compared.
    # A NaN the candidate returns where the reference has a number still fails every limit.
    padding = np.isnan(reference) if task.per_token else np.zeros(reference.shape, dtype=bool)
    diff[padding] = 0.0
    real = diff[~padding]
    flat_ref = np.where(padding, 0.0, reference).reshape(len(reference), -1)
    flat_cand = np.where(padding, 0.0, candidate).reshape(len(candidate), -1)
    per_row = row_cosine(flat_ref, flat_cand)
    cosine = _set_cosine(task.parity_view(reference), task.parity_view(candidate))
    agreement = task.agreement(reference, candidate, encoded)
    task_metrics = task.parity_metrics(reference, candidate, encoded) if encoded is not None else {}
    max_abs = float(diff.max())
    failures = []
    limit = thresholds.max_abs_diff
    if task.per_token and thresholds.per_token_max_abs_diff is not None:
        limit = thresholds.per_token_max_abs_diff
    if not max_abs <= limit:  # `not <=` also fails NaN
        failures.append(f"max_abs_diff {max_abs:.3g} > {limit:.3g} (over by {max_abs - limit:.3g}"
                        + ("; per-token outputs" if task.per_token else "") + ")")
    if not cosine >= thresholds.min_cosine:
        failures.append(f"cosine {cosine:.6f} < {thresholds.min_cosine} (short by {thresholds.min_cosine - cosine:.3g}; "
                        "row-centred logits over the eval set)")
    if not agreement >= thresholds.min_argmax_agreement:
        failures.append(
            f"argmax_agreement {agreement:.4f} < {thresholds.min_argmax_agreement} "
            f"(short by {thresholds.min_argmax_agreement - agreement:.3g}; agreement here means "
            f"{task.agreement_means})"
        )
    gated = task.parity_gated_metric
    if gated is not None and gated in task_metrics and not task_metrics[gated] >= thresholds.min_task_metric:
        failures.append(f"{gated} {task_metrics[gated]:.4f} < {thresholds.min_task_metric} (short by "
                        f"{thresholds.min_task_metric - task_metrics[gated]:.3g})")
    return ParityReport(
        max_abs_diff=max_abs,
        mean_abs_diff=float(real.mean()) if real.size else 0.0,
        cosine=cosine,
        min_cosine=float(per_row.min()),
        mean_cosine=float(per_row.mean()),
        argmax_agreement=agreement,
        n_examples=int(reference.shape[0]),
        thresholds=thresholds,
        reference_backend=reference_backend,
        candidate_backend=candidate_backend,
        failures=tuple(failures),
        task_metrics=task_metrics,
    )


def _outputs(session: InferenceSession, task: Any, batches: Sequence[Mapping[str, np.ndarray]]) -> np.ndarray:
    """`session`'s outputs on every batch, joined by the task (per-token outputs padded across batches)."""
    feeds = [_model_inputs(batch) for batch in batches]
    if not feeds:
        raise ConfigError("verify_parity got no batches; give at least one batch of encoded examples")
    return task.concatenate([session.run(feed) for feed in feeds], [feed["attention_mask"] for feed in feeds])


def parity_report(reference: InferenceSession, candidate: InferenceSession,
                  batches: Sequence[Mapping[str, np.ndarray]], thresholds: ParityThresholds,
                  encoded: Any = None, reference_outputs: np.ndarray | None = None) -> ParityReport:
    """Run both sessions on every batch (the reference only when its `reference_outputs` are not given), compare
    outputs and log the comparison; the report lists every failed metric without raising."""
    task = reference.task
    ref = _outputs(reference, task, batches) if reference_outputs is None else reference_outputs
    cand = _outputs(candidate, task, batches)
    report = compare_logits(ref, cand, thresholds, reference.backend, candidate.backend, task, encoded)
    log.info(
        "parity %s vs %s on %d examples: max|diff| %.3g, cosine %.6f (per example: min %.6f, mean %.6f), "
        "argmax agreement %.4f%s", candidate.backend, reference.backend, report.n_examples, report.max_abs_diff,
        report.cosine, report.min_cosine, report.mean_cosine, report.argmax_agreement,
        "".join(f", {name} {value:.4f}" for name, value in report.task_metrics.items()),
    )
    return report


def verify_parity(reference: InferenceSession, candidate: InferenceSession,
                  batches: Sequence[Mapping[str, np.ndarray]], thresholds: ParityThresholds,
                  encoded: Any = None, reference_outputs: np.ndarray | None = None) -> ParityReport:
    """Run both sessions on every batch, compare outputs, and raise one ParityError listing every failed metric.
    With `encoded` (the examples the batches hold, in order), the report also carries the task's own agreement
    measures (Task.parity_metrics). `reference_outputs`: the reference's outputs on `batches`, when already run."""
    report = parity_report(reference, candidate, batches, thresholds, encoded, reference_outputs)
    if report.failures:
        error = ParityError(
            f"{candidate.backend} artifact '{candidate.path}' disagrees with {reference.backend} on "
            f"{report.n_examples} examples: " + "; ".join(report.failures)
        )
        error.report = report  # type: ignore[attr-defined]
        raise error
    return report
