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
    """Runs a model of some task: int64 arrays [batch, seq] in, the task's float32 output array out (logits
    [batch, labels] for classification; see tinybert_edge.tasks.base.Task)."""

    backend: str = ""

    def __init__(self, path: Path, threads: int | None, task: Any = None) -> None:
        self.path = Path(path)
        self.threads = threads
        self._task = task

    @property
    def task(self) -> Any:
        """The Task whose outputs this session returns: given, else recorded with the artifact or its model."""
        from tinybert_edge.tasks import get_task

        if self._task is None:
            from tinybert_edge.artifacts import Artifact
            from tinybert_edge.tasks import DEFAULT_TASK

            try:
                self._task = Artifact.open(self.path).task
            except ModelError:  # a model file with nothing beside it that says its task: logits of a classifier
                self._task = DEFAULT_TASK
        return get_task(self._task)

    @abc.abstractmethod
    def run(self, batch: Mapping[str, np.ndarray]) -> np.ndarray: ...

    @property
    def max_sequence_length(self) -> int | None:
        """The longest sequence the artifact accepts (None when only the model's position table limits it)."""
        return None

    def predict(self, batches) -> np.ndarray:
        """Output arrays for every batch of an iterable, stacked."""
        return np.concatenate([self.run(batch) for batch in batches], axis=0)


SESSIONS: Registry[type[InferenceSession]] = Registry("inference backend")


@SESSIONS.register("torch")
class TorchSession(InferenceSession):
    """A fine-tuned Hugging Face model folder (safetensors) in eager PyTorch, fp32 or dynamic int8, on the CPU or
    (fp32 only) a CUDA device; or an in-memory `model` (its task from its class unless given). `run` takes and
    returns host arrays, so a CUDA call includes the copies in and out, and returning the outputs to the host waits
    for the device: a timed call is a finished call."""

    backend = "torch"

    def __init__(self, path: Path, threads: int | None = None, model: Any = None, int8: bool = False,
                 device: str = "cpu", task: Any = None) -> None:
        from tinybert_edge.tasks import task_of_model

        super().__init__(path, threads, task)
        import torch

        from tinybert_edge.models import load_model

        if device not in ("cpu", "cuda"):
            raise ConfigError(f"device={device!r} is not allowed; allowed: cpu, cuda")
        if device == "cuda" and int8:
            raise ConfigError("PyTorch dynamic int8 runs on the CPU only; measure int8 on CUDA through 'onnxruntime'")
        if device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device='cuda' but torch.cuda.is_available() is False; install a CUDA build of torch "
                              "on a machine with an NVIDIA GPU, or use device='cpu'")
        if threads:
            torch.set_num_threads(threads)
        self.model = model if model is not None else load_model(path, self._task)
        self.model.eval()
        if self._task is None:
            self._task = task_of_model(self.model)
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
        if "token_type_ids" not in feed:
            feed["token_type_ids"] = torch.zeros_like(feed["input_ids"])
        with torch.inference_mode():
            return self.task.forward(self.model, feed).float().cpu().numpy()


@SESSIONS.register("torch-int8")
class TorchInt8Session(TorchSession):
    backend = "torch-int8"

    def __init__(self, path: Path, threads: int | None = None, model: Any = None, task: Any = None) -> None:
        super().__init__(path, threads, model=model, int8=True, task=task)


@SESSIONS.register("onnxruntime")
class OnnxRuntimeSession(InferenceSession):
    """An .onnx file (or a folder holding exactly one) in ONNX Runtime; CUDA when asked and available."""

    backend = "onnxruntime"

    def __init__(self, path: Path, threads: int | None = None, providers: list[str] | None = None,
                 task: Any = None) -> None:
        from tinybert_edge.artifacts import onnx_file

        super().__init__(path, threads, task)
        ort = require("onnxruntime", package="onnxruntime", extra="onnx", purpose="Running an ONNX model")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        file = onnx_file(path)
        try:
            self.session = ort.InferenceSession(str(file), options, providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for unloadable graphs
            raise ModelError(f"ONNX Runtime {ort.__version__} cannot load '{file}': {exc}") from exc
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, batch: Mapping[str, np.ndarray]) -> np.ndarray:
        feed = {name: np.ascontiguousarray(batch[name], dtype=np.int64) if name in batch
                else np.zeros_like(batch["input_ids"], dtype=np.int64) for name in self.input_names}
        outputs = self.session.run(None, feed)
        if len(outputs) == 1:
            return np.asarray(outputs[0], dtype=np.float32)
        return self.task.stack_outputs(dict(zip(self.output_names, outputs)))


SESSIONS.register("litert", "tinybert_edge.runtime.litert:LiteRtSession")
SESSIONS.register("executorch", "tinybert_edge.runtime.executorch_session:ExecuTorchSession")
SESSIONS.register("openvino", "tinybert_edge.runtime.openvino_session:OpenVinoSession")


def open_session(backend: str, path: str | os.PathLike[str], threads: int | None = None, **kwargs: Any) -> InferenceSession:
    """Open `path` in the named backend (see `SESSIONS.names()`)."""
    return SESSIONS.get(backend)(Path(path), threads, **kwargs)
