"""Sequence classification (single texts or text pairs): the first Task.

Examples are `TextClassificationData` (texts, optional second texts, integer labels indexing label names); the head
is BertForSequenceClassification; fine-tuning uses cross-entropy and the prediction layer is distilled with soft
cross-entropy at temperature T (TinyBERT eq. 10), plus an optional hard-label term; the output array is the logits
[batch, labels]; the runtime turns them into the top label and every label's probability.

Metrics (scikit-learn): accuracy; Matthews correlation (`mcc`, CoLA's official metric); macro precision, recall and
F1 over the classes; and for two classes the F1 of the second class (`f1`, MRPC's and QQP's official metric: GLUE's
positive class is label 1, the second in sorted order). `details` adds the confusion matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from tinybert_edge.data import TextClassificationData, check_classes, encode, read_classification, split_data
from tinybert_edge.errors import BundleError, ModelError
from tinybert_edge.tasks.base import Task


@dataclass(frozen=True)
class Prediction:
    """One text's result: the top label and every label's probability (softmax of the logits)."""

    label: str
    label_id: int
    probabilities: dict[str, float]
    logits: list[float]
    num_tokens: int


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def config_label_names(config: Any) -> list[str] | None:
    """Label names in output order from a model config (a transformers config or config.json as a dict)."""
    if isinstance(config, Mapping):
        id2label = config.get("id2label")
        if not id2label:
            return None
        return [str(id2label.get(str(i), id2label.get(i, str(i)))) for i in range(len(id2label))]
    id2label = getattr(config, "id2label", None)
    if not id2label:
        return None
    return [str(id2label[i]) for i in range(config.num_labels)]


class SequenceClassification(Task):
    name = "text-classification"
    architecture = "BertForSequenceClassification"
    export_task = "text-classification"
    output_names = ("logits",)
    primary_metric = "accuracy"
    agreement_means = "the same top label"

    # --- data ----------------------------------------------------------------------------------------------------

    def read(self, spec: Any) -> TextClassificationData:
        from tinybert_edge.data import make_spec

        return read_classification(make_spec(spec))

    def encode(self, tokenizer: Any, data: TextClassificationData, max_length: int) -> Any:
        return encode(tokenizer, data, max_length)

    def split(self, data: TextClassificationData, fractions: Sequence[float], seed: int = 0) -> tuple:
        return split_data(data, fractions, seed)  # stratified by label

    def check_training_data(self, data: TextClassificationData, purpose: str = "training") -> None:
        check_classes(data, purpose)

    def label_names(self, model_config: Any) -> list[str] | None:
        return config_label_names(model_config)

    def align(self, data: TextClassificationData, model_config: Any) -> TextClassificationData:
        names = self.label_names(model_config)
        return data.with_label_names(names) if names else data

    # --- model ---------------------------------------------------------------------------------------------------

    def matches(self, config: Mapping[str, Any]) -> bool:
        architectures = config.get("architectures") or []
        return (any(str(a).endswith("ForSequenceClassification") for a in architectures)
                and config.get("problem_type") != "regression")

    def model_class(self) -> Any:
        from transformers import BertForSequenceClassification

        return BertForSequenceClassification

    def head_config(self, label_names: Sequence[str] | None) -> dict[str, Any] | None:
        if label_names is None:
            return None
        names = list(label_names)
        return {"num_labels": len(names), "id2label": dict(enumerate(names)),
                "label2id": {name: i for i, name in enumerate(names)}}

    def check_labels(self, model_config: Any, label_names: Sequence[str], where: Any) -> None:
        """Raise unless the model's labels are the data's labels (any order: callers re-index the data with
        TextClassificationData.with_label_names)."""
        model_names = self.label_names(model_config) or []
        if sorted(model_names) != sorted(label_names):
            raise ModelError(
                f"the model in '{where}' predicts labels {model_names} but the data has labels {list(label_names)}; "
                "use a teacher fine-tuned on this data's labels, or fine-tune the bare encoder on it"
            )

    # --- training ------------------------------------------------------------------------------------------------

    def forward(self, model: Any, batch: Mapping[str, Any]) -> Any:
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                     token_type_ids=batch["token_type_ids"]).logits

    def fine_tune_loss(self, model: Any, batch: Mapping[str, Any]) -> Any:
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                     token_type_ids=batch["token_type_ids"], labels=batch["labels"]).loss

    def prediction_loss(self, student: Any, teacher: Any, batch: Mapping[str, Any], config: Any) -> dict[str, Any]:
        from tinybert_edge.distillation import losses

        terms = {"prediction": losses.prediction_loss(student, teacher, config.temperature)}
        if config.hard_label_weight:
            terms["hard_label"] = losses.hard_label_loss(student, batch["labels"])
        return terms

    # --- evaluation ----------------------------------------------------------------------------------------------

    def predictions(self, outputs: np.ndarray) -> np.ndarray:
        return np.asarray(outputs).argmax(axis=-1)

    def metrics(self, outputs: np.ndarray, encoded: Any) -> dict[str, float]:
        return classification_metrics(np.asarray(encoded.labels), self.predictions(outputs),
                                      np.asarray(outputs).shape[-1] if np.asarray(outputs).ndim == 2 else None)

    def selection_metrics(self, data: Any) -> tuple[str, ...]:
        binary = len(getattr(data, "label_names", ()) or ()) == 2
        return ("accuracy", "mcc", "macro_f1", "macro_precision", "macro_recall") + (("f1",) if binary else ())

    def details(self, outputs: np.ndarray, encoded: Any) -> dict[str, Any]:
        """The confusion matrix: row i counts the examples whose label is class i, column j those predicted j."""
        from sklearn.metrics import confusion_matrix

        labels = np.asarray(encoded.labels)
        if not len(labels):
            return {}
        width = int(np.asarray(outputs).shape[-1])
        matrix = confusion_matrix(labels, self.predictions(outputs), labels=list(range(width)))
        return {"confusion_matrix": matrix.tolist()}

    def agreement(self, reference: np.ndarray, candidate: np.ndarray, encoded: Any = None) -> float:
        return float(np.mean(self.predictions(reference) == self.predictions(candidate)))

    def parity_view(self, outputs: np.ndarray) -> np.ndarray:
        """Logits less their row mean: softmax ignores a per-row constant, so this is all a prediction depends on."""
        values = np.asarray(outputs, dtype=np.float64)
        return values - values.mean(axis=1, keepdims=True)

    # --- export --------------------------------------------------------------------------------------------------

    def export_module(self, model: Any) -> Any:
        return logits_module(model)

    # --- runtime and bundle --------------------------------------------------------------------------------------

    def manifest_fields(self, label_names: Sequence[str] | None,
                        model_config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {"task": self.name, "labels": list(label_names or [])}

    def check_manifest(self, fields: Mapping[str, Any], where: str) -> None:
        if not fields.get("labels"):
            raise BundleError(f"the bundle '{where}' is a {self.name} bundle without labels; repackage it")

    def output_width(self, fields: Mapping[str, Any]) -> int | None:
        return len(fields["labels"])

    def postprocess(self, outputs: np.ndarray, encodings: Sequence[Any], fields: Mapping[str, Any]) -> list[Prediction]:
        labels = list(fields["labels"])
        probabilities = softmax(np.asarray(outputs, dtype=np.float64))
        results = []
        for encoding, row, probs in zip(encodings, outputs, probabilities):
            best = int(np.argmax(row))
            results.append(Prediction(labels[best], best, {label: float(p) for label, p in zip(labels, probs)},
                                      [float(v) for v in row], len(encoding)))
        return results


def classification_metrics(labels: np.ndarray, predicted: np.ndarray, num_classes: int | None = None) -> dict[str, float]:
    """Accuracy, Matthews correlation, macro precision/recall/F1 and, with two classes, the F1 of class 1 (scikit-learn;
    a class that is never predicted has precision 0, not a warning). NaN for every metric of an empty set."""
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, precision_recall_fscore_support

    names = ("accuracy", "mcc", "macro_precision", "macro_recall", "macro_f1")
    if not len(labels):
        return {name: float("nan") for name in names}
    classes = list(range(num_classes)) if num_classes else sorted(set(labels.tolist()) | set(predicted.tolist()))
    precision, recall, f1, _ = precision_recall_fscore_support(labels, predicted, labels=classes, average="macro",
                                                               zero_division=0)
    result = {"accuracy": float(accuracy_score(labels, predicted)), "mcc": float(matthews_corrcoef(labels, predicted)),
              "macro_precision": float(precision), "macro_recall": float(recall), "macro_f1": float(f1)}
    if len(classes) == 2:
        result["f1"] = float(f1_score(labels, predicted, pos_label=classes[1], labels=classes, zero_division=0))
    return result


def logits_module(model: Any) -> Any:
    """A Hugging Face model whose output has `.logits` (sequence or token classification) as a module of positional
    (input_ids, attention_mask, token_type_ids) -> logits, in eval mode: what litert-torch and ExecuTorch convert."""
    import torch

    class LogitsOnly(torch.nn.Module):
        def __init__(self, classifier: torch.nn.Module) -> None:
            super().__init__()
            self.classifier = classifier

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.classifier(input_ids=input_ids, attention_mask=attention_mask,
                                   token_type_ids=token_type_ids).logits

    return LogitsOnly(model).eval()
