"""A model's or artifact's task metrics on data, through the same `InferenceSession` every backend shares; the task
(see tinybert_edge.tasks) turns the output arrays into its metrics."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinybert_edge.runtime.sessions import InferenceSession

log = logging.getLogger(__name__)


@dataclass
class EvalResult:
    """Every metric of the task, the number of examples, each example's decision and its output array; `extra`
    holds the task's non-scalar results (a classifier's confusion matrix, see Task.details)."""

    metrics: dict[str, float]
    n: int
    predictions: np.ndarray
    outputs: np.ndarray
    primary_metric: str = "accuracy"
    task: str = "text-classification"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def score(self) -> float:
        """The task's primary metric (what selects checkpoints and headlines reports)."""
        return self.metrics[self.primary_metric]

    @property
    def accuracy(self) -> float:
        return self.metrics["accuracy"]

    @property
    def logits(self) -> np.ndarray:
        return self.outputs

    def to_dict(self) -> dict[str, Any]:
        return {**self.metrics, "n": self.n}


def session_outputs(session: InferenceSession, encoded: Any, batch_size: int = 64, task: Any = None) -> np.ndarray:
    """Output arrays for every example, batches padded to their longest member, in the data's order. Per-token
    outputs come padded to the longest example, NaN where there is no token (see Task.concatenate)."""
    from tinybert_edge.tasks import get_task

    task = get_task(task if task is not None else session.task)
    # Sorting by length keeps padding small; the result is put back in the original order.
    order = np.argsort([len(ids) for ids in encoded.input_ids], kind="stable")
    arrays, masks = [], []
    for batch in encoded.batches(batch_size, order=order.tolist()):
        arrays.append(session.run(batch))
        masks.append(batch["attention_mask"])
    outputs = task.concatenate(arrays, masks)
    result = np.empty_like(outputs)
    result[order] = outputs
    return result


def evaluate_session(session: InferenceSession, encoded: Any, batch_size: int = 64, task: Any = None) -> EvalResult:
    """The task's metrics of `session` on `encoded` (the session's task when `task` is None)."""
    from tinybert_edge.tasks import get_task

    task = get_task(task if task is not None else session.task)
    outputs = session_outputs(session, encoded, batch_size, task)
    return EvalResult(metrics=task.metrics(outputs, encoded), n=len(encoded), predictions=task.predictions(outputs),
                      outputs=outputs, primary_metric=task.primary_metric, task=task.name,
                      extra=task.details(outputs, encoded))


def evaluate(model: str | Path, data: Any, backend: str | None = None, max_length: int = 128,
             threads: int | None = None, batch_size: int = 64, model_folder: str | Path | None = None) -> EvalResult:
    """The task metrics of the model folder or artifact `model` on `data` (a file path or loaded data).

    The tokenizer and labels come from `model_folder`, else from the artifact itself or the model folder it was
    exported from (see tinybert_edge.artifacts); the data's labels are matched to the model's labels by name.
    `backend` defaults to the artifact's own runtime.
    """
    from tinybert_edge.artifacts import Artifact
    from tinybert_edge.errors import ModelError
    from tinybert_edge.models import load_tokenizer
    from tinybert_edge.runtime import open_session

    artifact = Artifact.open(model)
    task = artifact.task
    if isinstance(data, (str, Path)):
        data = task.read(data)
    folder = Path(model_folder) if model_folder else artifact.tokenizer_dir()
    if folder is None:
        raise ModelError(
            f"no config.json or tokenizer beside '{model}' and no readable source model in its metadata; "
            "pass the model folder it was exported from (--model-folder)"
        )
    tokenizer = load_tokenizer(folder)
    session = open_session(backend or artifact.runtime, artifact.path if artifact.format == "pytorch" else model,
                           threads)
    from tinybert_edge.tasks.base import read_model_config

    config = (read_model_config(model_folder) if model_folder else artifact.config) or {
        "id2label": dict(enumerate(artifact.label_names or []))}
    data = task.align(data, config)
    return evaluate_session(session, task.encode(tokenizer, data, max_length), batch_size, task)
