"""Accuracy of a model or artifact on labelled data, through the same `InferenceSession` every backend shares."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinybert_edge.data import EncodedData, TextClassificationData
from tinybert_edge.runtime.sessions import InferenceSession

log = logging.getLogger(__name__)


@dataclass
class EvalResult:
    accuracy: float
    n: int
    predictions: np.ndarray
    logits: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "n": self.n}


def session_logits(session: InferenceSession, encoded: EncodedData, batch_size: int = 64) -> np.ndarray:
    """Logits for every example, batches padded to their longest member, in the data's order."""
    # Sorting by length keeps padding small; the result is put back in the original order.
    order = np.argsort([len(ids) for ids in encoded.input_ids], kind="stable")
    logits = session.predict(encoded.batches(batch_size, order=order.tolist()))
    result = np.empty_like(logits)
    result[order] = logits
    return result


def evaluate_session(session: InferenceSession, encoded: EncodedData, batch_size: int = 64) -> EvalResult:
    logits = session_logits(session, encoded, batch_size)
    predictions = logits.argmax(axis=-1)
    accuracy = float((predictions == encoded.labels).mean()) if len(encoded) else float("nan")
    return EvalResult(accuracy=accuracy, n=len(encoded), predictions=predictions, logits=logits)


def evaluate(model: str | Path, data: TextClassificationData | str | Path, backend: str = "torch",
             max_length: int = 128, threads: int | None = None, batch_size: int = 64,
             model_folder: str | Path | None = None) -> EvalResult:
    """Accuracy of the model folder or artifact `model` on `data` (a file path or loaded data).

    The tokenizer and labels are read from `model_folder`, else from the model folder or the folder holding the
    artifact, else from the source model named in the artifact's metadata sidecar; the data's labels are matched
    to the model's labels by name.
    """
    from tinybert_edge.data import encode, load_data
    from tinybert_edge.models import load_tokenizer
    from tinybert_edge.runtime import open_session

    path = Path(model)
    if not isinstance(data, TextClassificationData):
        data = load_data(data)
    folder = Path(model_folder) if model_folder else _model_folder(path)
    tokenizer = load_tokenizer(folder)
    session = open_session(backend, path, threads)
    label_names = config_label_names(folder)
    if label_names is not None:
        data = data.with_label_names(label_names)
    return evaluate_session(session, encode(tokenizer, data, max_length), batch_size)


def _model_folder(path: Path) -> Path:
    import json

    from tinybert_edge.errors import ModelError

    folder = path if path.is_dir() else path.parent
    if (folder / "config.json").is_file():
        return folder
    sidecar = path.with_name(path.name + ".json")
    if sidecar.is_file():
        source = json.loads(sidecar.read_text(encoding="utf-8")).get("source_model")
        if source and (Path(source) / "config.json").is_file():
            return Path(source)
    raise ModelError(
        f"no config.json or tokenizer beside '{path}' and no readable source model in its metadata; "
        "pass the model folder it was exported from (--model-folder)"
    )


def config_label_names(folder: Path) -> list[str] | None:
    """Label names in output order from a model folder's config.json id2label (None when it has none)."""
    import json

    config = Path(folder) / "config.json"
    if not config.is_file():
        return None
    id2label = json.loads(config.read_text(encoding="utf-8")).get("id2label")
    if not id2label:
        return None
    return [id2label[str(i)] for i in range(len(id2label))]
