"""Export and quantization: fp32/int8 ONNX (optimum-onnx + onnxruntime) and int8/fp16 TFLite (litert-torch +
ai-edge-quantizer), each written atomically with a metadata sidecar and optionally verified for parity.

Served as `tinybert_edge.converters` (see pyproject's package-dir). Heavy libraries load only when a function runs.
"""

from __future__ import annotations

from tinybert_edge.converters.chain import ExportFailure, export
from tinybert_edge.converters.artifact import Artifact
from tinybert_edge.converters.config import ExportConfig, QuantizationConfig
from tinybert_edge.converters.gate import AccuracyBudgetError, quantize_onnx_gated
from tinybert_edge.converters.onnx_export import export_onnx
from tinybert_edge.converters.onnx_quantize import quantize_onnx
from tinybert_edge.converters.parity import ParityCheck, ParityReport, ParityThresholds, verify_parity
from tinybert_edge.converters.tflite_export import export_tflite

__all__ = [
    "AccuracyBudgetError",
    "Artifact",
    "ExportConfig",
    "ExportFailure",
    "ParityCheck",
    "ParityReport",
    "ParityThresholds",
    "QuantizationConfig",
    "export",
    "export_onnx",
    "export_tflite",
    "quantize_onnx",
    "quantize_onnx_gated",
    "verify_parity",
]
