"""LiteRT (TFLite) inference over the fixed-length signatures that `export_tflite` writes (`seq_<L>`).

Imports neither torch nor transformers: this is what runs on the device side.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from tinybert_edge.errors import MissingDependencyError, ModelError
from tinybert_edge.runtime.sessions import InferenceSession

log = logging.getLogger(__name__)

SIGNATURE_NAME = re.compile(r"^seq_(\d+)$")


def smallest_bucket(buckets: Sequence[int], length: int) -> int | None:
    """The smallest of `buckets` (signature sequence lengths) that holds `length` tokens; None when none does."""
    return min((bucket for bucket in buckets if bucket >= length), default=None)


def interpreter_class(purpose: str = "Running a TFLite model") -> Any:
    """LiteRT's Interpreter: ai_edge_litert (maintained) first, else tflite_runtime (stopped at 2.14)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError as exc:
            raise MissingDependencyError("ai-edge-litert", "tflite", purpose) from exc
    return Interpreter


def load_interpreter(path: Path, threads: int | None = None) -> Any:
    """An allocated LiteRT interpreter from a .tflite file (see interpreter_class)."""
    Interpreter = interpreter_class()
    try:
        return Interpreter(model_path=str(path), num_threads=threads)
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"LiteRT cannot load '{path}': {exc}") from exc


class LiteRtSession(InferenceSession):
    """A .tflite with one fixed-shape signature per sequence bucket. A batch of length s runs in the smallest
    bucket >= s, padded with pad id 0 and mask 0, row by row when the signature's batch is 1."""

    backend = "litert"

    def __init__(self, path: Path, threads: int | None = None, task: Any = None) -> None:
        from tinybert_edge.artifacts import read_metadata, tflite_file

        super().__init__(path, threads, task)
        self.file = tflite_file(path)
        self.interpreter = load_interpreter(self.file, threads)
        self.metadata = read_metadata(self.file)
        # bucket length -> (runner, batch size, input names, output names)
        self._buckets: dict[int, tuple[Any, int, tuple[str, ...], tuple[str, ...]]] = {}
        for key in self.interpreter.get_signature_list():
            runner = self.interpreter.get_signature_runner(key)
            inputs = runner.get_input_details()
            if "input_ids" not in inputs:
                raise ModelError(f"signature '{key}' of '{self.file}' has inputs {sorted(inputs)}; expected input_ids")
            batch, length = (int(d) for d in inputs["input_ids"]["shape"])
            named = SIGNATURE_NAME.match(key)
            if named and int(named.group(1)) != length:
                raise ModelError(f"signature '{key}' of '{self.file}' takes length {length}, not {named.group(1)}")
            outputs = tuple(runner.get_output_details())
            if not outputs:
                raise ModelError(f"signature '{key}' of '{self.file}' has no outputs; export it again")
            self._buckets[length] = (runner, batch, tuple(inputs), outputs)
        if not self._buckets:
            raise ModelError(f"'{self.file}' has no signatures; export it with tinybert_edge.converters.export_tflite")
        declared = self.metadata.get("sequence_buckets")
        if declared and sorted(declared) != self.buckets:
            log.warning("'%s' metadata lists buckets %s but its signatures take %s; using the signatures",
                        self.file, declared, self.buckets)

    @property
    def buckets(self) -> list[int]:
        return sorted(self._buckets)

    @property
    def max_sequence_length(self) -> int:
        return self.buckets[-1]

    def bucket_for(self, length: int) -> int:
        bucket = smallest_bucket(self.buckets, length)
        if bucket is not None:
            return bucket
        raise ModelError(
            f"sequences of length {length} are longer than every bucket of '{self.file}' ({self.buckets}); "
            f"truncate to {self.max_sequence_length} tokens or export a larger bucket"
        )

    def run(self, batch: Mapping[str, np.ndarray]) -> np.ndarray:
        ids = np.asarray(batch["input_ids"])
        rows, length = ids.shape
        bucket = self.bucket_for(length)
        runner, signature_batch, input_names, output_names = self._buckets[bucket]
        padded = {}
        for name in input_names:
            values = np.asarray(batch[name]) if name in batch else np.zeros_like(ids)
            full = np.zeros((rows, bucket), dtype=np.int32)  # pad id 0, mask 0, segment 0
            full[:, :length] = values
            padded[name] = full
        logits = []
        for start in range(0, rows, signature_batch):
            chunk = {name: array[start : start + signature_batch] for name, array in padded.items()}
            short = signature_batch - next(iter(chunk.values())).shape[0]
            if short:  # the last rows of a batch that does not divide into the signature's batch
                chunk = {name: np.pad(array, ((0, short), (0, 0))) for name, array in chunk.items()}
            out = runner(**chunk)
            # A per-token output has the bucket's length; the batch's own tokens are its first `length`.
            named = {name: out[name][: signature_batch - short, :length] if self.task.per_token
                     else out[name][: signature_batch - short] for name in output_names}
            logits.append(named[output_names[0]] if len(output_names) == 1 else self.task.stack_outputs(named))
        return np.concatenate(logits, axis=0).astype(np.float32, copy=False)
