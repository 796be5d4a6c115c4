"""A MediaPipe Text Classifier model (`mediapipe.tasks.python.text.TextClassifier`) as the SDK runs it: raw strings
in, the scores of every label (in label order) and the top label out. MediaPipe tokenizes with the vocabulary the
model's metadata carries, so nothing else is needed beside the .tflite.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tinybert_edge.errors import DataError, ModelError, require


def text_classifier(file: Path, max_results: int = -1) -> Any:
    """MediaPipe's TextClassifier for a .tflite with Text Classifier metadata, returning every category."""
    require("mediapipe", package="mediapipe", extra="mediapipe", purpose="Running a MediaPipe Text Classifier model")
    from mediapipe.tasks.python.core.base_options import BaseOptions
    from mediapipe.tasks.python.text import TextClassifier, TextClassifierOptions

    options = TextClassifierOptions(base_options=BaseOptions(model_asset_path=str(file)), max_results=max_results)
    try:
        return TextClassifier.create_from_options(options)
    except (RuntimeError, ValueError) as exc:
        raise ModelError(f"MediaPipe cannot load '{file}' as a Text Classifier: {exc}; export it with "
                         "formats=('mediapipe',)") from exc


class MediaPipeTextSession:
    """A MediaPipe Text Classifier .tflite (a `mediapipe-<precision>` artifact or the file): strings in, scores in
    label order and labels out. MediaPipe runs one text per call."""

    backend = "mediapipe"

    def __init__(self, path: str | Path) -> None:
        from tinybert_edge.artifacts import tflite_file

        self.path = Path(path)
        self.file = tflite_file(self.path)
        self.classifier = text_classifier(self.file)

    def run_text(self, text: str) -> tuple[np.ndarray, str]:
        """(scores of every label in label order, the top label) of one text."""
        if not isinstance(text, str):
            raise DataError(f"text is a {type(text).__name__}; pass a str")
        result = self.classifier.classify(text)
        categories = result.classifications[0].categories
        scores = np.zeros(len(categories), dtype=np.float32)
        for category in categories:
            scores[category.index] = category.score
        top = max(categories, key=lambda c: c.score)
        return scores, top.category_name or str(top.index)

    def classify(self, texts: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        rows, labels = [], []
        for text in texts:
            scores, label = self.run_text(text)
            rows.append(scores)
            labels.append(label)
        return (np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)), labels

    def close(self) -> None:
        self.classifier.close()
