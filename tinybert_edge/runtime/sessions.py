"""One `InferenceSession` interface over the runtimes the SDK evaluates, verifies and benchmarks."""

from __future__ import annotations

import abc
import logging
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from tinybert_edge.errors import ConfigError, ModelError, require
from tinybert_edge.registry import Registry

log = logging.getLogger(__name__)

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class InferenceSession(abc.ABC):
    """Runs a sequence classifier: int64 arrays [batch, seq] in, float32 logits [batch, labels] out."""

    backend: str = ""

    def __init__(self, path: Path, threads: int | None) -> None:
        self.path = Path(path)
        self.threads = threads

    @abc.abstractmethod
    def run(self, batch: Mapping[str, np.ndarray]) -> np.ndarray: ...

    @property
    def max_sequence_length(self) -> int | None:
        """The longest sequence the artifact accepts (None when only the model's position table limits it)."""
        return None

    def predict(self, batches) -> np.ndarray:
        """Logits for every batch of an iterable, stacked."""
        return np.concatenate([self.run(batch) for batch in batches], axis=0)


SESSIONS: Registry[type[InferenceSession]] = Registry("inference backend")


@SESSIONS.register("torch")
class TorchSession(InferenceSession):
    """A Hugging Face sequence-classification folder (safetensors) in eager PyTorch, fp32 or dynamic int8, on the
    CPU or (fp32 only) a CUDA device. `run` takes and returns host arrays, so a CUDA call includes the copies in
    and out, and returning the logits to the host waits for the device: a timed call is a finished call."""

    backend = "torch"

    def __init__(self, path: Path, threads: int | None = None, model: Any = None, int8: bool = False,
                 device: str = "cpu") -> None:
        super().__init__(path, threads)
        import torch

        from tinybert_edge.models import load_classifier

        if device not in ("cpu", "cuda"):
            raise ConfigError(f"device={device!r} is not allowed; allowed: cpu, cuda")
        if device == "cuda" and int8:
            raise ConfigError("PyTorch dynamic int8 runs on the CPU only; measure int8 on CUDA through 'onnxruntime'")
        if device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device='cuda' but torch.cuda.is_available() is False; install a CUDA build of torch "
                              "on a machine with an NVIDIA GPU, or use device='cpu'")
        if threads:
            torch.set_num_threads(threads)
        self.model = model if model is not None else load_classifier(path)
        self.model.eval()
        if int8:
            from tinybert_edge.runtime.torch_int8 import dynamic_int8

            self.model = dynamic_int8(self.model)
        self.device = torch.device(device)
        self.model.to(self.device)
        self._torch = torch

    def run(self, batch: Mapping[str, np.ndarray]) -> np.ndarray:
        torch = self._torch
        feed = {name: torch.from_numpy(np.ascontiguousarray(batch[name])).to(self.device)
                for name in MODEL_INPUTS if name in batch}
        with torch.inference_mode():
            return self.model(**feed).logits.float().cpu().numpy()


@SESSIONS.register("torch-int8")
class TorchInt8Session(TorchSession):
    backend = "torch-int8"

    def __init__(self, path: Path, threads: int | None = None, model: Any = None) -> None:
        super().__init__(path, threads, model=model, int8=True)


def _onnx_file(path: Path) -> Path:
    if path.is_file():
        return path
    candidates = sorted(path.glob("*.onnx"))
    if len(candidates) != 1:
        raise ModelError(f"'{path}' holds {len(candidates)} .onnx files; pass the path of the one to load")
    return candidates[0]


@SESSIONS.register("onnxruntime")
class OnnxRuntimeSession(InferenceSession):
    """An .onnx file (or a folder holding exactly one) in ONNX Runtime; CUDA when asked and available."""

    backend = "onnxruntime"

    def __init__(self, path: Path, threads: int | None = None, providers: list[str] | None = None) -> None:
        super().__init__(path, threads)
        ort = require("onnxruntime", package="onnxruntime", extra="onnx", purpose="Running an ONNX model")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        file = _onnx_file(Path(path))
        try:
            self.session = ort.InferenceSession(str(file), options, providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for unloadable graphs
            raise ModelError(f"ONNX Runtime {ort.__version__} cannot load '{file}': {exc}") from exc
        self.input_names = [i.name for i in self.session.get_inputs()]

    def run(self, batch: Mapping[str, np.ndarray]) -> np.ndarray:
        feed = {name: np.ascontiguousarray(batch[name], dtype=np.int64) for name in self.input_names}
        return np.asarray(self.session.run(None, feed)[0], dtype=np.float32)


SESSIONS.register("litert", "tinybert_edge.runtime.litert:LiteRtSession")


def open_session(backend: str, path: str | os.PathLike[str], threads: int | None = None, **kwargs: Any) -> InferenceSession:
    """Open `path` in the named backend (see `SESSIONS.names()`)."""
    return SESSIONS.get(backend)(Path(path), threads, **kwargs)
