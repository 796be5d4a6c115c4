"""ONNX models that take strings: the tokenizer is in the graph (onnxruntime-extensions' `BertTokenizer` custom op,
domain `ai.onnx.contrib`), so a session needs that library's custom operators registered and nothing else: no
tokenizer, no vocabulary file, no torch.

The graph `export_onnx_text` writes takes `text`, a 1-D string tensor holding one text (or two: a sentence pair),
and returns `logits` [1, labels], `label_id` [1] and `label` [1] (the label's name). The BertTokenizer op reads a
1-D tensor of two strings as a pair and refuses three or more ("only support one or two query"), so the graph
classifies one text per call; `OnnxTextSession.classify` loops over a list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tinybert_edge.errors import DataError, ModelError, require

TEXT_INPUT = "text"
OUTPUTS = ("logits", "label_id", "label")


def session_options(threads: int | None = None) -> Any:
    """onnxruntime SessionOptions with onnxruntime-extensions' custom operators registered."""
    ort = require("onnxruntime", package="onnxruntime", extra="onnx", purpose="Running an ONNX model")
    extensions = require("onnxruntime_extensions", package="onnxruntime-extensions", extra="onnx-text",
                         purpose="Running an ONNX model with the tokenizer in its graph")
    options = ort.SessionOptions()
    options.register_custom_ops_library(extensions.get_library_path())
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return options


class OnnxTextSession:
    """An ONNX model with the tokenizer in its graph (an `onnx-text-<precision>` folder or its model.onnx): strings
    in, logits and labels out."""

    backend = "onnxruntime-extensions"

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        from tinybert_edge.artifacts import onnx_file

        self.path = Path(path)
        self.file = onnx_file(self.path)
        options = session_options(threads)
        try:
            self.session = ort.InferenceSession(str(self.file), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"ONNX Runtime cannot load '{self.file}': {exc}") from exc
        inputs = [i.name for i in self.session.get_inputs()]
        if inputs != [TEXT_INPUT]:
            raise ModelError(f"'{self.file}' takes {inputs}, not one string tensor '{TEXT_INPUT}'; it is not an ONNX "
                             "model with the tokenizer in its graph (export it with formats=('onnx-text',))")

    def run_text(self, text: str, pair: str | None = None) -> tuple[np.ndarray, str]:
        """(logits [labels], label) of one text (or one pair)."""
        if not isinstance(text, str) or (pair is not None and not isinstance(pair, str)):
            raise DataError(f"text is a {type(text).__name__}; pass a str")
        strings = np.array([text] if pair is None else [text, pair], dtype=object)
        logits, _, label = self.session.run(list(OUTPUTS), {TEXT_INPUT: strings})
        return np.asarray(logits[0], dtype=np.float32), str(label[0])

    def classify(self, texts: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        """(logits [n, labels], labels) of each text, one call per text."""
        rows, labels = [], []
        for text in texts:
            logits, label = self.run_text(text)
            rows.append(logits)
            labels.append(label)
        return (np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)), labels
