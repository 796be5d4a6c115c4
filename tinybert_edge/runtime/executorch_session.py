"""ExecuTorch (.pte) inference through `executorch.runtime.Runtime`, for the programs `export_executorch` writes:
batch 1, any sequence length from 2 to the exported maximum, int64 inputs (input_ids, attention_mask,
token_type_ids), the task's outputs.

A .pte is tied to the ExecuTorch release that wrote it (its flatbuffer schema, the operator set and the XNNPACK
delegate's serialised graph all change between releases), so a program whose recorded version or schema identifier
differs from the installed runtime's is refused with both versions named, before the runtime is asked to load it.
"""

from __future__ import annotations

import importlib.metadata
import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from tinybert_edge.errors import ModelError, require
from tinybert_edge.runtime.sessions import InferenceSession

log = logging.getLogger(__name__)

PTE_FILE = "model.pte"
# The kernels an int8 program's embedding tables need; importing executorch.kernels.quantized registers them.
QUANTIZED_KERNELS = ("quantized_decomposed::embedding_byte.out",)


def file_identifier(content: bytes) -> str:
    """The 4-character flatbuffer identifier of a .pte ("ET12"): bytes 4 to 8 of the file, "" when unreadable."""
    raw = bytes(content[4:8])
    return raw.decode("ascii") if len(raw) == 4 and raw.isascii() and raw.isalnum() else ""


def installed_version() -> str | None:
    try:
        return importlib.metadata.version("executorch")
    except importlib.metadata.PackageNotFoundError:
        return None


def schema_identifier() -> str | None:
    """The identifier of the program schema the installed ExecuTorch reads and writes (None when not found)."""
    import re
    from importlib.util import find_spec

    spec = find_spec("executorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        for schema in (Path(folder) / "schema" / "program.fbs", Path(folder) / "exir" / "_serialize" / "program.fbs"):
            if schema.is_file():
                found = re.search(r'file_identifier\s+"([^"]+)"', schema.read_text(encoding="utf-8", errors="replace"))
                if found:
                    return found.group(1)
    return None


def _release(version: str) -> tuple[str, ...]:
    return tuple(version.split("+")[0].split(".")[:2])


def check_version(file: Path, content: bytes, metadata: Mapping[str, Any]) -> None:
    """Raise ModelError when `content` (the .pte at `file`) was written by another ExecuTorch release than the
    installed one: by the version its export metadata records (major.minor compared), else by the schema identifier
    in the file's header."""
    installed = installed_version()
    recorded = metadata.get("executorch_version")
    if isinstance(recorded, str) and recorded and installed and _release(recorded) != _release(installed):
        raise ModelError(f"'{file}' was built with ExecuTorch {recorded}, but ExecuTorch {installed} is installed; a "
                         f".pte runs only on the release that wrote it: export it again with this version "
                         f"(tinybert-edge export --formats executorch) or install executorch=={recorded}")
    found, expected = file_identifier(content), schema_identifier()
    if not found.startswith("ET"):
        raise ModelError(f"'{file}' is not an ExecuTorch program (its header has no 'ET..' identifier); pass the "
                         f"{PTE_FILE} that tinybert-edge export wrote")
    if expected and found != expected:
        raise ModelError(f"'{file}' is an ExecuTorch program of schema {found}, but the installed ExecuTorch "
                         f"{installed} reads schema {expected}: it was built for another ExecuTorch version; export it "
                         "again with the installed version")


def load_runtime(purpose: str = "Running an ExecuTorch program") -> Any:
    """`executorch.runtime.Runtime.get()` with the quantized kernels registered (int8 embedding tables)."""
    runtime_module = require("executorch.runtime", package="executorch", extra="executorch", purpose=purpose)
    try:
        import executorch.kernels.quantized  # noqa: F401  (registers the quantized_decomposed kernels)
    except ImportError:
        pass
    runtime = runtime_module.Runtime.get()
    return runtime


class ExecuTorchSession(InferenceSession):
    """A .pte (or a folder holding one) in the ExecuTorch runtime with the XNNPACK delegate. A batch runs row by
    row at its padded length (the program's batch is 1). `metadata` overrides the sidecar (an export checking its
    temporary file)."""

    backend = "executorch"

    def __init__(self, path: Path, threads: int | None = None, task: Any = None,
                 metadata: Mapping[str, Any] | None = None) -> None:
        from tinybert_edge.artifacts import model_file, read_metadata

        super().__init__(path, threads, task)
        if metadata is not None and task is None and metadata.get("task"):
            self._task = metadata["task"]
        self.file = model_file(path, ".pte")
        self.metadata = dict(metadata) if metadata is not None else read_metadata(self.file)
        content = self.file.read_bytes()
        check_version(self.file, content, self.metadata)
        runtime = load_runtime()
        missing = [op for op in QUANTIZED_KERNELS if op not in runtime.operator_registry.operator_names]
        if missing and self.metadata.get("precision") == "int8":
            raise ModelError(f"the installed ExecuTorch lacks the kernels {missing} that the int8 program '{self.file}' "
                             "uses (executorch.kernels.quantized did not load); reinstall executorch")
        if threads:
            from executorch.extension.pybindings import portable_lib

            portable_lib._unsafe_reset_threadpool(int(threads))  # XNNPACK's thread pool is process-wide
        try:
            program = runtime.load_program(content)
            self.method = program.load_method("forward")
        except Exception as exc:  # the pybindings raise RuntimeError/ValueError with an error code
            raise ModelError(f"ExecuTorch {installed_version()} cannot load '{self.file}': {exc}; export it again "
                             "with this version") from exc
        self._program = program  # the method needs its program alive
        self._torch = __import__("torch")
        self.input_names = list(self.metadata.get("input_names") or ("input_ids", "attention_mask", "token_type_ids"))
        self.output_names = list(self.metadata.get("output_names") or ())

    @property
    def max_sequence_length(self) -> int | None:
        value = self.metadata.get("max_sequence_length")
        return int(value) if isinstance(value, int) else None

    def run(self, batch: Mapping[str, np.ndarray]) -> np.ndarray:
        torch = self._torch
        ids = np.asarray(batch["input_ids"])
        rows, length = ids.shape
        limit = self.max_sequence_length
        if limit is not None and length > limit:
            raise ModelError(f"sequences of length {length} are longer than '{self.file}' takes ({limit}); truncate "
                             f"to {limit} tokens or export with a larger --seq-lengths")
        feeds = [torch.from_numpy(np.ascontiguousarray(batch[name] if name in batch else np.zeros_like(ids),
                                                       dtype=np.int64)) for name in self.input_names]
        outputs = []
        for row in range(rows):
            result = self.method.execute([feed[row : row + 1] for feed in feeds])
            arrays = [np.asarray(value.numpy() if hasattr(value, "numpy") else value, dtype=np.float32)
                      for value in result]
            if len(arrays) == 1:
                outputs.append(arrays[0])
            else:
                outputs.append(self.task.stack_outputs(dict(zip(self.output_names, arrays))))
        return np.concatenate(outputs, axis=0).astype(np.float32, copy=False)
