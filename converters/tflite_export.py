"""PyTorch -> LiteRT (.tflite) with litert-torch, one signature `seq_<L>` per sequence bucket in a single file
(the signatures share their weight buffers), then optional dynamic int8 (ai-edge-quantizer's dynamic_wi8_afp32
recipe: int8 per-channel weights, activations quantized at run time) or fp16 weights.

Transformers do not convert with a dynamic sequence length, hence fixed buckets; the batch is fixed at 1 and
`LiteRtSession` runs larger batches row by row. Inputs are int32 input_ids, attention_mask, token_type_ids.

Size of a multi-signature file (`compact_flatbuffer`). litert-torch shares the weight *buffers* across signatures,
but each signature is its own subgraph with its own tensor table, and in TFLite a tensor's quantization parameters
(per-channel scales as float32, zero points as int64) and its name live in that table, not in the buffer. Measured
on the default student (MiniLM-L6 student, hidden 384, buckets 64 and 128): the second subgraph repeated 495,348
bytes of quantization parameters (366,264 of them the word-embedding table's 30,522 per-row scales and zero
points) and 144,606 bytes of torch module-path tensor names, so the file was 761,776 bytes (4.2%) larger than a
one-length file. `compact_flatbuffer` writes each distinct quantization-parameter table once and points every
tensor that uses it there (flatbuffers allow shared offsets), and, unless `ExportConfig.tflite_tensor_names`, drops
the debug names of tensors that no signature names. What stays per bucket is the position-embedding slice that
torch.export folds into a constant per length ([1, L, hidden] float32, 4*L*hidden bytes) and the operator list.
"""

from __future__ import annotations

import collections
import contextlib
import io
import logging
import os
import time
from pathlib import Path
from typing import Any, Iterator

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


def task_module(source: SourceModel):
    """The model as a module of positional (input_ids, attention_mask, token_type_ids) that returns the task's
    outputs (`Task.export_module`): what litert-torch converts."""
    from tinybert_edge.models import load_model

    return source.task.export_module(load_model(source.folder, source.task).eval())


@contextlib.contextmanager
def _conversion_steps_shown(shown: bool) -> Iterator[None]:
    """litert-torch prints ~60 conversion steps to stdout unless its `show_progress` setting (the environment
    variable LITERT_TORCH_SHOW_PROGRESS) is off. They are shown when the SDK logs at DEBUG (`--verbose`) or when the
    user set that variable; otherwise off for this conversion only, the variable restored afterwards."""
    name = "LITERT_TORCH_SHOW_PROGRESS"
    before = os.environ.get(name)
    if before is None:
        os.environ[name] = "y" if shown else "n"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)


def convert_buckets(source: SourceModel, config: ExportConfig) -> bytes:
    """fp32 flatbuffer with one `seq_<L>` signature per bucket."""
    litert_torch = require("litert_torch", package="litert-torch", extra="tflite", purpose="TFLite export")
    import torch

    module = task_module(source)
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
        with _conversion_steps_shown(log.isEnabledFor(logging.DEBUG)):
            return converter.convert().model_content()  # writing the bytes is a step it prints too
    except Exception as exc:  # litert-torch surfaces torch.export and MLIR failures as many untyped errors
        raise ExportError(f"litert-torch could not convert '{source.folder}' at lengths {config.sequence_buckets}: {exc}") from exc


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
        # ai-edge-quantizer 0.10 does not pass enable_progress_bar on to its transformation step, whose tqdm bar
        # then shows on stderr for any model of 100+ tensors: kept off the user's terminal unless DEBUG.
        hidden = contextlib.nullcontext() if log.isEnabledFor(logging.DEBUG) else contextlib.redirect_stderr(io.StringIO())
        with hidden:
            result = qt.quantize(enable_progress_bar=False, enable_progress_report=False)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ExportError(f"ai-edge-quantizer could not apply {quantization}: {exc}") from exc
    return bytes(result.quantized_model)


def _quantization_key(quantization: Any) -> tuple | None:
    """What makes two quantization-parameter tables interchangeable; None for tables not worth sharing."""
    import numpy as np

    if quantization is None or quantization.details is not None:
        return None
    if quantization.scale is None and quantization.zeroPoint is None:
        return None

    def raw(values: Any) -> bytes | None:
        return None if values is None else np.asarray(values).tobytes()

    return (raw(quantization.scale), raw(quantization.zeroPoint), raw(quantization.min), raw(quantization.max),
            quantization.quantizedDimension, quantization.detailsType)


def _shared_quantization_type():
    from ai_edge_litert import schema_py_generated as schema

    class SharedQuantization(schema.QuantizationParametersT):
        """Quantization parameters packed once per flatbuffer builder; every later Pack returns the same offset."""

        def __init__(self, source: Any) -> None:
            super().__init__()
            self.__dict__.update(source.__dict__)
            self._offsets: dict[int, int] = {}

        def Pack(self, builder: Any) -> int:  # noqa: N802 (the flatbuffers object API's name)
            if id(builder) not in self._offsets:
                self._offsets[id(builder)] = schema.QuantizationParametersT.Pack(self, builder)
            return self._offsets[id(builder)]

    return SharedQuantization


def compact_flatbuffer(flatbuffer: bytes, keep_tensor_names: bool = False) -> tuple[bytes, dict[str, int]]:
    """The same model with each distinct quantization-parameter table stored once (shared by every tensor, in every
    signature's subgraph, that uses it) and, unless `keep_tensor_names`, without the debug names of tensors that no
    signature refers to. Weights, operators and signatures are untouched, so outputs are bit-identical.

    Returns (flatbuffer, {"bytes_before", "bytes_after", "shared_quantization_tables", "names_dropped"}).
    """
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    shared_type = _shared_quantization_type()
    tables: dict[tuple, Any] = {}
    reused = 0
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            key = _quantization_key(tensor.quantization)
            if key is None:
                continue
            if key in tables:
                reused += 1
            else:
                tables[key] = shared_type(tensor.quantization)
            tensor.quantization = tables[key]
    dropped = 0
    if not keep_tensor_names:
        named = {(sig.subgraphIndex, io.tensorIndex) for sig in model.signatureDefs or ()
                 for io in list(sig.inputs or ()) + list(sig.outputs or ())}
        for index, subgraph in enumerate(model.subgraphs):
            for position, tensor in enumerate(subgraph.tensors):
                if (index, position) not in named and tensor.name:
                    tensor.name = None
                    dropped += 1
    compacted = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    return compacted, {"bytes_before": len(flatbuffer), "bytes_after": len(compacted),
                       "shared_quantization_tables": reused, "names_dropped": dropped}


def tensor_dtype_counts(tflite_file: Path) -> dict[str, int]:
    """How many tensors of each dtype the model holds (an int8 model has int8 weight tensors)."""
    from tinybert_edge.runtime.litert import load_interpreter

    interpreter = load_interpreter(tflite_file, threads=1)
    return dict(collections.Counter(str(d["dtype"].__name__) for d in interpreter.get_tensor_details()))


def export_tflite(model_dir: str | Path, out_path: str | Path, config: ExportConfig | None = None,
                  quantization: str | None = "dynamic_int8", parity: ParityCheck | None = None) -> Artifact:
    """Export a fine-tuned BERT model folder to one .tflite with a `seq_<L>` signature per bucket.

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
        flatbuffer, compaction = compact_flatbuffer(flatbuffer, keep_tensor_names=config.tflite_tensor_names)
        log.info("TFLite flatbuffer: %d -> %d bytes (%d quantization tables shared, %d debug names dropped)",
                 compaction["bytes_before"], compaction["bytes_after"], compaction["shared_quantization_tables"],
                 compaction["names_dropped"])
        tmp.write_bytes(flatbuffer)
        metadata: dict[str, Any] = base_metadata(source, "tflite", precision, config.sequence_buckets, TFLITE_PACKAGES)
        metadata.update({
            "signatures": {signature_name(b): b for b in config.sequence_buckets},
            "batch_size": config.tflite_batch_size,
            "input_names": list(INPUT_NAMES),
            "output_names": list(source.task.output_names),
            "input_dtype": "int32",
            "quantization": None if quantization is None else {
                "method": "ai-edge-quantizer",
                "recipe": "dynamic_wi8_afp32" if quantization == "dynamic_int8" else "fp16 weight casting (FULLY_CONNECTED)",
            },
            "tensor_dtypes": tensor_dtype_counts(tmp),
            "compaction": compaction,
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
