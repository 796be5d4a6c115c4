"""`tinybert_edge.export`: fp32 ONNX, int8 ONNX and int8 TFLite from one model folder, each verified against
the PyTorch model when parity batches are given."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from tinybert_edge.converters.artifact import Artifact, check_output_path, check_source
from tinybert_edge.converters.config import ExportConfig, QuantizationConfig
from tinybert_edge.converters.parity import ParityCheck, ParityThresholds
from tinybert_edge.errors import ConfigError

log = logging.getLogger(__name__)

FORMATS = ("onnx", "tflite")


def export(model_dir: str | Path, out_dir: str | Path, formats: Sequence[str] = FORMATS, quantize: bool = True,
           config: ExportConfig | None = None, qconfig: QuantizationConfig | None = None,
           parity_batches: Sequence[Mapping[str, np.ndarray]] | None = None,
           thresholds: Mapping[str, ParityThresholds] | ParityThresholds | None = None) -> list[Artifact]:
    """Export `model_dir` into `out_dir`: onnx/ (fp32), onnx-int8/ (dynamic int8) and model_int8.tflite
    (model_fp32.tflite when quantize=False).

    `thresholds` is one ParityThresholds for every artifact or a mapping by precision ("fp32", "int8");
    missing precisions use ParityThresholds.fp32() / .int8().
    """
    formats = (formats,) if isinstance(formats, str) else tuple(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if not formats or unknown:
        raise ConfigError(f"formats={formats!r} is not allowed; allowed: a non-empty subset of {', '.join(FORMATS)}")
    config = config or ExportConfig()
    source = check_source(model_dir, config.sequence_buckets)  # fail before any slow work
    out = check_output_path(out_dir, "folder")

    reference = None
    if parity_batches is not None:
        from tinybert_edge.runtime.sessions import TorchSession

        reference = TorchSession(source.folder)

    def check(precision: str) -> ParityCheck | None:
        if reference is None:
            return None
        if isinstance(thresholds, ParityThresholds):
            chosen = thresholds
        else:
            chosen = (thresholds or {}).get(precision) or ParityThresholds.for_precision(precision)
        return ParityCheck(reference, list(parity_batches), chosen)

    artifacts: list[Artifact] = []
    if "onnx" in formats:
        from tinybert_edge.converters.onnx_export import export_onnx
        from tinybert_edge.converters.onnx_quantize import quantize_onnx

        fp32 = export_onnx(source.folder, out / "onnx", config, parity=check("fp32"))
        artifacts.append(fp32)
        if quantize:
            artifacts.append(quantize_onnx(fp32, out / "onnx-int8", qconfig or QuantizationConfig.for_this_cpu(),
                                           parity=check("int8")))
    if "tflite" in formats:
        from tinybert_edge.converters.tflite_export import export_tflite

        precision = "int8" if quantize else "fp32"
        artifacts.append(export_tflite(source.folder, out / f"model_{precision}.tflite", config,
                                       quantization="dynamic_int8" if quantize else None, parity=check(precision)))
    for artifact in artifacts:
        log.info("%s %s: %s (%d bytes)", artifact.format, artifact.precision, artifact.path, artifact.size_bytes)
    return artifacts
