"""Sequence regression (single texts or text pairs scored by one number, as GLUE's STS-B similarity 0-5).

Examples are `TextRegressionData` (texts, optional second texts, float scores), read through the same readers as
classification (tinybert_edge.data.read_examples); the head is BertForSequenceClassification with one output and
problem_type "regression" (which is how `matches` tells such a folder from a classifier); fine-tuning and the
prediction layer's distillation both use the mean squared error (TinyBERT's choice for STS-B); the output array is
the score [batch, 1]; the metrics are Pearson and Spearman correlation (scipy, STS-B's official metrics) and the MSE;
the runtime returns each text's score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from tinybert_edge.data import CLASSIFICATION_FIX, SCORE_COLUMNS, DataSpec, Examples, _as_number, encode, make_spec, read_examples
from tinybert_edge.errors import DataError
from tinybert_edge.tasks.classification import SequenceClassification

# Agreement between two models' scores (parity, the pipeline's agreement column): within this fraction of the
# range the reference's scores span. See SequenceRegression.agreement.
AGREEMENT_TOLERANCE = 0.05
# Label columns tried, in order, when none is named (GLUE's STS-B calls it "score").
SCORE_COLUMN_GUESSES = (*SCORE_COLUMNS, "label", "labels", "target")
# Score strata of a split: quantile bins, so that train, dev and test keep the score distribution.
SPLIT_BINS = 5


@dataclass(frozen=True)
class TextRegressionData:
    """Texts (optionally pairs) with one float score each."""

    task: ClassVar[str] = "regression"  # the tinybert_edge.tasks name that reads and encodes these

    texts: list[str]
    labels: list[float]
    text_pairs: list[str] | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise DataError(f"{self.source}: {len(self.texts)} texts but {len(self.labels)} scores")
        if self.text_pairs is not None and len(self.text_pairs) != len(self.texts):
            raise DataError(f"{self.source}: {len(self.texts)} texts but {len(self.text_pairs)} second texts")

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int], source_suffix: str = "") -> "TextRegressionData":
        idx = list(indices)
        return TextRegressionData(texts=[self.texts[i] for i in idx], labels=[self.labels[i] for i in idx],
                                  text_pairs=None if self.text_pairs is None else [self.text_pairs[i] for i in idx],
                                  source=self.source + source_suffix)

    def label_of(self, index: int) -> float:
        """Example `index`'s score (what digests, augmentation and JSONL keep)."""
        return self.labels[index]

    def with_examples(self, texts: Sequence[str], labels: Sequence[float], text_pairs: Sequence[str] | None,
                      source: str) -> "TextRegressionData":
        return TextRegressionData(texts=list(texts), labels=[float(y) for y in labels],
                                  text_pairs=None if text_pairs is None else list(text_pairs), source=source)

    def strata(self) -> np.ndarray:
        """Each example's score quantile bin (SPLIT_BINS of them), so a split keeps the distribution of scores."""
        scores = np.asarray(self.labels, dtype=np.float64)
        if len(scores) < SPLIT_BINS:
            return np.zeros(len(scores), dtype=np.int64)
        edges = np.quantile(scores, np.linspace(0, 1, SPLIT_BINS + 1)[1:-1])
        return np.searchsorted(edges, scores, side="right").astype(np.int64)


def regression_data(examples: Examples) -> TextRegressionData:
    """Regression examples: every label must be a finite number. Class names, or a column of two integer values
    (class ids such as MRPC's 0/1), are refused with the fix: they are classification labels."""
    if examples.spec.label_names is not None:
        raise DataError(f"{examples.path}: label names {list(examples.spec.label_names)} were declared, but a "
                        "regression task has scores, not classes; drop --label-names, or "
                        f"{CLASSIFICATION_FIX} to train a classifier")
    scores = []
    for i, raw in enumerate(examples.raw_labels):
        value = _as_number(raw)
        if value is None:
            names = sorted({label for label in examples.raw_labels if _as_number(label) is None})
            raise DataError(
                f"{examples.where(i)}: the label column '{examples.label_column}' holds {raw!r}, not a number; a "
                f"regression task needs numeric scores, and {names[:5]} look like class labels: to train a classifier "
                f"{CLASSIFICATION_FIX}, or name the score column with --label-column"
            )
        scores.append(value)
    distinct = sorted(set(scores))
    if len(distinct) <= 2 and all(value == int(value) for value in distinct):
        raise DataError(
            f"{examples.path}: the label column '{examples.label_column}' holds only the values "
            f"{', '.join(f'{v:g}' for v in distinct)}: class ids, not scores, so regression would learn a two-class "
            f"problem as a number; to train a classifier {CLASSIFICATION_FIX}, or name the score column with "
            "--label-column"
        )
    return TextRegressionData(texts=examples.texts, labels=scores, text_pairs=examples.text_pairs,
                              source=str(examples.path))


@dataclass(frozen=True)
class Score:
    """One text's (or pair's) result on the device: the predicted score."""

    score: float
    num_tokens: int


def correlation(kind: str, a: np.ndarray, b: np.ndarray) -> float:
    """Pearson or Spearman correlation (scipy) of two score vectors; 0.0 when either is constant (no correlation
    can be measured: scipy would return NaN, which a "best checkpoint" comparison cannot order), NaN when empty."""
    from scipy import stats

    if len(a) < 2:
        return float("nan")
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    value = stats.pearsonr(a, b)[0] if kind == "pearson" else stats.spearmanr(a, b)[0]
    return float(value)


class SequenceRegression(SequenceClassification):
    """One score per text or pair. Shares the classifier's model class, forward pass and exported graph (a
    BertForSequenceClassification with one output); everything about labels, losses, metrics and results differs."""

    name = "regression"
    export_task = "text-classification"
    output_names = ("logits",)
    primary_metric = "spearman"
    agreement_means = "a score within 5% of the reference's score scale"

    # --- data ----------------------------------------------------------------------------------------------------

    def read(self, spec: DataSpec | Any) -> TextRegressionData:
        return regression_data(read_examples(make_spec(spec), SCORE_COLUMN_GUESSES))

    def encode(self, tokenizer: Any, data: TextRegressionData, max_length: int) -> Any:
        return encode(tokenizer, data, max_length, label_dtype=np.float32)

    def check_training_data(self, data: Any, purpose: str = "training") -> None:
        if not isinstance(data, TextRegressionData):
            raise DataError(f"{data.source}: the regression task needs scores, but the data was read as "
                            f"{getattr(data, 'task', type(data).__name__)} (class labels); read it with "
                            "load_data(..., task='regression') (--task regression)")
        if len(set(data.labels)) < 2:
            raise DataError(f"{data.source}: every {purpose} example has the score {data.labels[0] if data.labels else '(none)'}; "
                            "regression needs scores that vary, so check --label-column and the file")

    def label_names(self, model_config: Any) -> list[str] | None:
        return None

    def align(self, data: Any, model_config: Any) -> Any:
        return data

    # --- model ---------------------------------------------------------------------------------------------------

    def matches(self, config: Mapping[str, Any]) -> bool:
        architectures = config.get("architectures") or []
        return (any(str(a).endswith("ForSequenceClassification") for a in architectures)
                and config.get("problem_type") == "regression")

    def head_config(self, label_names: Sequence[str] | None) -> dict[str, Any] | None:
        return {"num_labels": 1, "problem_type": "regression", "id2label": {0: "score"}, "label2id": {"score": 0}}

    def check_labels(self, model_config: Any, label_names: Sequence[str], where: Any) -> None:
        return None

    # --- training ------------------------------------------------------------------------------------------------

    def fine_tune_loss(self, model: Any, batch: Mapping[str, Any]) -> Any:
        """MSE between the score and the gold score (transformers' regression loss for problem_type regression)."""
        from torch.nn import functional as F

        scores = self.forward(model, batch)[:, 0]
        return F.mse_loss(scores, batch["labels"].to(scores.dtype))

    def prediction_loss(self, student: Any, teacher: Any, batch: Mapping[str, Any], config: Any) -> dict[str, Any]:
        """MSE between student and teacher scores (the paper's prediction loss for STS-B), plus an optional MSE
        against the gold score as the hard-label term."""
        from torch.nn import functional as F

        from tinybert_edge.distillation import losses

        terms = {"prediction": losses.regression_prediction_loss(student, teacher)}
        if config.hard_label_weight:
            terms["hard_label"] = F.mse_loss(student[:, 0], batch["labels"].to(student.dtype))
        return terms

    # --- evaluation ----------------------------------------------------------------------------------------------

    def predictions(self, outputs: np.ndarray) -> np.ndarray:
        values = np.asarray(outputs, dtype=np.float64)
        return values.reshape(len(values), -1)[:, 0]

    def metrics(self, outputs: np.ndarray, encoded: Any) -> dict[str, float]:
        gold = np.asarray(encoded.labels, dtype=np.float64)
        predicted = self.predictions(outputs)
        mse = float(np.mean((predicted - gold) ** 2)) if len(gold) else float("nan")
        return {"pearson": correlation("pearson", predicted, gold), "spearman": correlation("spearman", predicted, gold),
                "mse": mse}

    def selection_metrics(self, data: Any) -> tuple[str, ...]:
        return ("spearman", "pearson")

    def details(self, outputs: np.ndarray, encoded: Any) -> dict[str, Any]:
        return {}

    def agreement(self, reference: np.ndarray, candidate: np.ndarray, encoded: Any = None) -> float:
        """Fraction of examples whose candidate score is within AGREEMENT_TOLERANCE (5%) of the reference's score
        scale of the reference's: the larger of the range its scores span and their largest magnitude.

        A regression has no decision to compare, so two models agree on an example when their scores are closer
        than the resolution the task's scores carry. On STS-B's 0-5 scale 5% is a quarter point, just above the
        step of its gold scores (means of five annotators' integer ratings move in steps of 0.2) and far below what
        moves an example's rank much: an int8 model that keeps 97% of its scores that close keeps the correlation
        metrics, while a kernel that shifts scores by whole points fails. The scale is the reference's own, so the
        tolerance follows whatever units the model predicts in; it includes the magnitude because quantization error
        grows with the size of the outputs, not with their spread (an untrained head whose scores all sit near one
        value must not demand agreement far below the error int8 arithmetic makes on them)."""
        ref, cand = self.predictions(reference), self.predictions(candidate)
        if not len(ref):
            return float("nan")
        scale = max(float(np.ptp(ref)), float(np.max(np.abs(ref))))
        tolerance = max(AGREEMENT_TOLERANCE * scale, 1e-6)
        return float(np.mean(np.abs(ref - cand) <= tolerance))

    def parity_view(self, outputs: np.ndarray) -> np.ndarray:
        """The scores as they are. (Centring them would make the parity cosine the Pearson correlation of the two
        models' scores, which noise decides when a head's scores barely vary; the agreement above and the absolute
        difference limit are the gates that matter for a score, the cosine only catches gross corruption such as
        flipped signs.)"""
        return self.predictions(outputs)[:, None]

    # --- runtime and bundle --------------------------------------------------------------------------------------

    def manifest_fields(self, label_names: Sequence[str] | None,
                        model_config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        # Schema 1 requires "labels"; a regression bundle has none (readers that predate tasks refuse the empty
        # list rather than read the score as a one-class classifier).
        return {"task": self.name, "labels": []}

    def check_manifest(self, fields: Mapping[str, Any], where: str) -> None:
        return None

    def output_width(self, fields: Mapping[str, Any]) -> int | None:
        return 1

    def postprocess(self, outputs: np.ndarray, encodings: Sequence[Any], fields: Mapping[str, Any]) -> list[Score]:
        values = np.asarray(outputs, dtype=np.float64).reshape(len(encodings), -1)
        return [Score(float(row[0]), len(encoding)) for row, encoding in zip(values, encodings)]


__all__ = ["Score", "SequenceRegression", "TextRegressionData", "correlation", "regression_data"]
