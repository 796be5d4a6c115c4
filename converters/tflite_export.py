"""PyTorch -> LiteRT (.tflite) with litert-torch, one signature `seq_<L>` per sequence bucket in a single file
(the signatures share their weight buffers), then optional dynamic int8 (ai-edge-quantizer's dynamic_wi8_afp32
recipe: int8 per-channel weights, activations quantized at run time) or fp16 weights.

Transformers do not convert with a dynamic sequence length, hence fixed buckets; the batch is fixed at 1 and
`LiteRtSession` runs larger batches row by row. Inputs are int32 input_ids, attention_mask, token_type_ids.
"""

from __future__ import annotations

import collections
import logging
import time
from pathlib import Path
from typing import Any

from tinybert_edge.converters.artifact import (Artifact, SourceModel, base_metadata, check_output_path, check_source,
                                               write_metadata)
from tinybert_edge.converters.config import ExportConfig
from tinybert_edge.converters.parity import ParityCheck
from tinybert_edge.errors import ConfigError, ExportError, require
from tinybert_edge.io import atomic_path

log = logging.getLogger(__name__)

TFLITE_QUANTIZATIONS = ("dynamic_int8", "fp16")
TFLITE_PACKAGES = ("litert-torch", "ai-edge-litert", "ai-edge-quantizer", "torch", "transformers")
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def signature_name(sequence_length: int) -> str:
    return f"seq_{sequence_length}"


def _precision(quantization: str | None) -> str:
    if quantization is None:
        return "fp32"
    if quantization not in TFLITE_QUANTIZATIONS:
        raise ConfigError(
            f"quantization={quantization!r} is not allowed; allowed: None (fp32), {', '.join(TFLITE_QUANTIZATIONS)}"
        )
    return "int8" if quantization == "dynamic_int8" else "fp16"


def _output_file(out_path: str | Path, precision: str) -> Path:
    path = Path(out_path)
    return path if path.suffix == ".tflite" else path / f"model_{precision}.tflite"


def _logits_module(source: SourceModel):
    """The classifier as a module of positional (input_ids, attention_mask, token_type_ids) returning logits."""
    import torch

    from tinybert_edge.models import load_classifier

    model = load_classifier(source.folder).eval()

    class LogitsOnly(torch.nn.Module):
        def __init__(self, classifier: torch.nn.Module) -> None:
            super().__init__()
            self.classifier = classifier

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.classifier(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).logits

    return LogitsOnly(model).eval()


def convert_buckets(source: SourceModel, config: ExportConfig) -> bytes:
    """fp32 flatbuffer with one `seq_<L>` signature per bucket."""
    litert_torch = require("litert_torch", package="litert-torch", extra="tflite", purpose="TFLite export")
    import torch

    module = _logits_module(source)
    converter = litert_torch.Converter()
    for length in config.sequence_buckets:
        # Named sample kwargs make the signature's input names input_ids/attention_mask/token_type_ids.
        shape = (config.tflite_batch_size, length)
        sample = {
            "input_ids": torch.ones(shape, dtype=torch.int32),
            "attention_mask": torch.ones(shape, dtype=torch.int32),
            "token_type_ids": torch.zeros(shape, dtype=torch.int32),
        }
        converter.signature(signature_name(length), module, sample_kwargs=sample)
    try:
        edge_model = converter.convert()
    except Exception as exc:  # litert-torch surfaces torch.export and MLIR failures as many untyped errors
        raise ExportError(f"litert-torch could not convert '{source.folder}' at lengths {config.sequence_buckets}: {exc}") from exc
    return edge_model.model_content()


def quantize_tflite(flatbuffer: bytes, quantization: str) -> bytes:
    """Apply ai-edge-quantizer: dynamic_wi8_afp32 for "dynamic_int8", fp16 weight casting for "fp16"."""
    require("ai_edge_quantizer", package="ai-edge-quantizer", extra="tflite", purpose="TFLite quantization")
    from ai_edge_quantizer import qtyping, quantizer, recipe

    if quantization == "dynamic_int8":
        qt = quantizer.Quantizer(bytearray(flatbuffer), recipe.dynamic_wi8_afp32())
    else:
        qt = quantizer.Quantizer(bytearray(flatbuffer))
        qt.add_weight_only_config(
            regex=".*",
            operation_name=qtyping.TFLOperationName.FULLY_CONNECTED,
            num_bits=16,
            algorithm_key=quantizer.AlgorithmName.FLOAT_CASTING,
        )
    try:
        result = qt.quantize(enable_progress_report=False)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ExportError(f"ai-edge-quantizer could not apply {quantization}: {exc}") from exc
    return bytes(result.quantized_model)


def tensor_dtype_counts(tflite_file: Path) -> dict[str, int]:
    """How many tensors of each dtype the model holds (an int8 model has int8 weight tensors)."""
    from tinybert_edge.runtime.litert import load_interpreter

    interpreter = load_interpreter(tflite_file, threads=1)
    return dict(collections.Counter(str(d["dtype"].__name__) for d in interpreter.get_tensor_details()))


def export_tflite(model_dir: str | Path, out_path: str | Path, config: ExportConfig | None = None,
                  quantization: str | None = "dynamic_int8", parity: ParityCheck | None = None) -> Artifact:
    """Export a BERT sequence classifier folder to one .tflite with a `seq_<L>` signature per bucket.

    `out_path` is the .tflite file, or a folder that receives `model_<precision>.tflite`. The file is written
    beside its destination, checked against `parity` when given, and only then renamed into place; its metadata
    goes to `<file>.json`.
    """
    config = config or ExportConfig()
    precision = _precision(quantization)
    require("litert_torch", package="litert-torch", extra="tflite", purpose="TFLite export")
    source = check_source(model_dir, config.sequence_buckets)
    out_file = check_output_path(_output_file(out_path, precision), "file")
    started = time.perf_counter()
    with atomic_path(out_file) as tmp:
        flatbuffer = convert_buckets(source, config)
        converted = time.perf_counter()
        if quantization is not None:
            flatbuffer = quantize_tflite(flatbuffer, quantization)
        tmp.write_bytes(flatbuffer)
        metadata: dict[str, Any] = base_metadata(source, "tflite", precision, config.sequence_buckets, TFLITE_PACKAGES)
        metadata.update({
            "signatures": {signature_name(b): b for b in config.sequence_buckets},
            "batch_size": config.tflite_batch_size,
            "input_names": list(INPUT_NAMES),
            "input_dtype": "int32",
            "quantization": None if quantization is None else {
                "method": "ai-edge-quantizer",
                "recipe": "dynamic_wi8_afp32" if quantization == "dynamic_int8" else "fp16 weight casting (FULLY_CONNECTED)",
            },
            "tensor_dtypes": tensor_dtype_counts(tmp),
            "convert_seconds": round(converted - started, 3),
            "export_seconds": round(time.perf_counter() - started, 3),
        })
        if quantization == "dynamic_int8" and not metadata["tensor_dtypes"].get("int8"):
            raise ExportError(f"dynamic int8 quantization of '{source.folder}' left no int8 tensors in the model")
        if parity is not None:
            from tinybert_edge.runtime.litert import LiteRtSession

            metadata["parity"] = parity.run(LiteRtSession(tmp)).to_dict()
    write_metadata(out_file, metadata)
    log.info("wrote %s TFLite '%s' (signatures %s) in %.1f s", precision, out_file,
             ", ".join(metadata["signatures"]), metadata["export_seconds"])
    return Artifact(out_file, "tflite", precision, metadata)
