"""An ONNX export run by OpenVINO on the CPU, at an inference precision the caller names and the session records.

OpenVINO's CPU plugin picks its own inference precision unless told: on CPUs with AMX it silently runs bf16. This
session always sets `INFERENCE_PRECISION_HINT` ("f32" for precision "fp32", "bf16" for "bf16") and reads back the
precision the compiled model reports, so a row says what actually ran. bf16 is refused, with the reason, on a CPU
whose OpenVINO capabilities do not list BF16 (no AVX512_BF16 or AMX-BF16): OpenVINO would emulate it or fall
back, and neither is what a bf16 row claims.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from tinybert_edge.errors import ConfigError, ModelError, require
from tinybert_edge.runtime.sessions import InferenceSession

log = logging.getLogger(__name__)

PRECISIONS = {"fp32": "f32", "bf16": "bf16"}


def cpu_capabilities(core: Any) -> list[str]:
    """OpenVINO's OPTIMIZATION_CAPABILITIES of the CPU device (e.g. FP32, BF16, INT8)."""
    return [str(c) for c in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")]


def _model_file(path: Path) -> Path:
    """An OpenVINO IR `.xml` (given, or the only one in a folder), else the folder's .onnx."""
    from tinybert_edge.artifacts import onnx_file

    if path.suffix == ".xml":
        if not path.is_file():
            raise ModelError(f"'{path}' does not exist; pass an OpenVINO IR .xml (with its .bin beside it) or an ONNX "
                             "file or folder")
        return path
    irs = sorted(path.glob("*.xml")) if path.is_dir() else []
    return irs[0] if len(irs) == 1 else onnx_file(path)


class OpenVinoSession(InferenceSession):
    """An .onnx file, an OpenVINO IR .xml (e.g. NNCF's int8), or a folder holding exactly one of either, compiled by
    OpenVINO for the CPU at `precision` (the precision of whatever the model itself does not fix: an int8 IR runs
    its quantized operations in int8 and the rest at `precision`)."""

    backend = "openvino"

    def __init__(self, path: Path, threads: int | None = None, task: Any = None, precision: str = "fp32") -> None:
        super().__init__(path, threads, task)
        if precision not in PRECISIONS:
            raise ConfigError(f"precision = {precision!r} is not allowed; allowed: {', '.join(PRECISIONS)}")
        ov = require("openvino", package="openvino", extra="openvino", purpose="Running an ONNX model in OpenVINO")
        core = ov.Core()
        capabilities = cpu_capabilities(core)
        if precision == "bf16" and "BF16" not in capabilities:
            raise ConfigError(
                f"bf16 refused: OpenVINO {ov.__version__} reports no native bf16 on this CPU (capabilities: "
                f"{', '.join(capabilities)}; bf16 needs AVX512_BF16 or AMX-BF16) and would emulate it; use "
                "precision='fp32'")
        config = {"INFERENCE_PRECISION_HINT": PRECISIONS[precision], "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        file = _model_file(Path(path))
        try:
            self.compiled = core.compile_model(core.read_model(str(file)), "CPU", config)
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises its own untyped errors for unloadable graphs
            raise ModelError(f"OpenVINO {ov.__version__} cannot compile '{file}': {exc}") from exc
        self.precision = precision
        hint = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        self.inference_precision = hint.to_string() if hasattr(hint, "to_string") else str(hint)
        self.capabilities = capabilities
        self.version = ov.__version__
        self.request = self.compiled.create_infer_request()
        self.input_names = [port.get_any_name() for port in self.compiled.inputs]
        log.info("OpenVINO %s: '%s' compiled at %s (asked %s)", ov.__version__, file, self.inference_precision,
                 precision)

    def run(self, batch: Mapping[str, np.ndarray]) -> np.ndarray:
        feed = {name: np.ascontiguousarray(batch[name], dtype=np.int64) if name in batch
                else np.zeros_like(batch["input_ids"], dtype=np.int64) for name in self.input_names}
        result = self.request.infer(feed)
        return np.asarray(result[self.compiled.outputs[0]], dtype=np.float32)
