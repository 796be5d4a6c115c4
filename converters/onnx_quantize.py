"""Dynamic int8 ONNX (int8/uint8 weights, activations quantized per batch at run time) with onnxruntime's
`quantize_dynamic`, written as a folder that ORTModelForSequenceClassification loads
(`from_pretrained(folder, file_name="model_quantized.onnx")`; the file is the folder's only .onnx, so optimum also
finds it without `file_name`, with a warning)."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from tinybert_edge.artifacts import INT8_ONNX_OPS, METADATA_FILE, Artifact, metadata_path, onnx_file, read_metadata
from tinybert_edge.converters.artifact import check_output_path
from tinybert_edge.converters.config import ROWWISE_EMBEDDING, QuantizationConfig
from tinybert_edge.converters.embedding_int8 import LAYER_NORM_OPSET, default_opset, quantize_word_embeddings
from tinybert_edge.converters.onnx_export import ONNX_PACKAGES, op_type_counts
from tinybert_edge.converters.parity import ParityCheck
from tinybert_edge.errors import ConfigError, ExportError, ModelError, require
from tinybert_edge.version import __version__
from tinybert_edge.io import atomic_path, sha256_file, write_json_atomic

log = logging.getLogger(__name__)

QUANTIZED_FILE = "model_quantized.onnx"  # the name optimum's ORTQuantizer gives its output
# Static QDQ quantizes the weight-by-activation MatMuls (the GEMMs); the embedding Gather and the tiny pooler and
# classifier Gemms stay fp32 (a Gemm's bias cannot take an int32 scale after the pooler's Tanh).
STATIC_OP_TYPES = ("MatMul",)
# Fused com.microsoft operators of an optimized export: static QDQ finds no activation ranges inside them and
# degrades to weight-only int8, so static mode needs the plain graph.
FUSED_OPS = ("Attention", "EmbedLayerNormalization", "SkipLayerNormalization", "BiasGelu", "FastGelu")


def source_onnx(onnx: Artifact | str | Path) -> tuple[Path, Path, dict[str, Any]]:
    """(folder, .onnx file, metadata) of what to quantize: an Artifact, an ONNX folder or an .onnx file."""
    path = Path(onnx.path if isinstance(onnx, Artifact) else onnx)
    if not path.exists():
        raise ModelError(f"'{path}' does not exist; pass an ONNX folder from export_onnx or an .onnx file")
    file = onnx_file(path)
    folder = file.parent
    metadata = read_metadata(folder)
    if isinstance(onnx, Artifact) and not metadata:
        metadata = dict(onnx.metadata)
    if metadata.get("quantization"):
        raise ModelError(f"'{path}' is already quantized ({metadata['quantization'].get('preset')}); quantize the fp32 export")
    return folder, file, metadata


def _opset(file: Path, metadata: Mapping[str, Any]) -> int:
    """The ONNX opset of the model to quantize: its export's record (the agreement search quantizes one source
    dozens of times; this spares parsing it each time), else the file's own."""
    import onnx

    return int(metadata.get("opset") or default_opset(onnx.load(str(file), load_external_data=False)))


def nodes_in_modules(onnx_file: Path, modules: tuple[str, ...]) -> list[str]:
    """Names of the graph nodes that belong to the named model modules (e.g. "embeddings", "classifier").

    A node belongs to module M when the exporter's scope path in its name contains "/M/" (how torch names nodes)
    or when one of its weights is a parameter under M (how fused nodes such as EmbedLayerNormalization keep it).
    """
    import onnx

    if not modules:
        return []
    model = onnx.load(str(onnx_file), load_external_data=False)
    weights = {init.name for init in model.graph.initializer}

    def in_module(node) -> bool:
        for module in modules:
            scope = "/" + module.replace(".", "/") + "/"
            if scope in "/" + node.name:
                return True
            if any(name in weights and f".{module}." in f".{name}" for name in node.input):
                return True
        return False

    chosen = [node.name for node in model.graph.node if in_module(node)]
    if not chosen:
        log.warning("keep_fp32 %s matched no operator in '%s'; everything quantizable is quantized", modules, onnx_file)
    return chosen


def _warn_if_saturating(config: QuantizationConfig) -> None:
    from tinybert_edge.converters.cpu import this_cpu

    cpu = this_cpu()
    if config.weight_type == "int8" and not config.reduce_range and cpu.is_x86 and not cpu.has_vnni:
        log.warning(
            "int8 weights at full range on this x86 CPU without VNNI: ONNX Runtime's u8 x s8 kernels can saturate "
            "here and return wrong logits; use QuantizationConfig.avx2() (u8 weights) or reduce_range=True "
            "to run the model on this machine"
        )


class _CalibrationReader:
    """onnxruntime's CalibrationDataReader over tokenized batches, fed with the graph's own input names as int64."""

    def __init__(self, batches: Sequence[Mapping[str, np.ndarray]], input_names: Sequence[str]) -> None:
        self._feeds = iter([{name: np.ascontiguousarray(batch[name], dtype=np.int64) if name in batch
                             else np.zeros_like(np.asarray(batch["input_ids"]), dtype=np.int64)
                             for name in input_names} for batch in batches])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def calibration_rows(batches: Sequence[Mapping[str, np.ndarray]] | None, needed: int) -> int:
    """The number of calibration rows in `batches`; ConfigError naming the number needed when there are fewer."""
    rows = sum(len(np.asarray(b["input_ids"])) for b in batches or () if "input_ids" in b)
    if rows < needed:
        raise ConfigError(
            f"static int8 calibrates activation ranges on at least {needed} examples "
            f"(QuantizationConfig.calibration_examples); got {rows}: pass at least {needed} tokenized dev rows as "
            f"`calibration`, lower calibration_examples, or use mode='dynamic', which needs no calibration"
        )
    return rows


def _quantize_static(quantization: Any, source_file: Path, target: Path, config: QuantizationConfig,
                     calibration: Sequence[Mapping[str, np.ndarray]], excluded: Sequence[str]) -> None:
    import onnx as onnx_lib

    graph = onnx_lib.load(str(source_file), load_external_data=False).graph
    fused = sorted({node.op_type for node in graph.node if node.op_type in FUSED_OPS})
    if fused:
        raise ExportError(
            f"static int8 needs the unoptimized fp32 export, but '{source_file}' holds fused operators {fused}; "
            "export it again with ExportConfig(optimize=False)")
    types = {"int8": quantization.QuantType.QInt8, "uint8": quantization.QuantType.QUInt8}
    method = {"minmax": quantization.CalibrationMethod.MinMax, "entropy": quantization.CalibrationMethod.Entropy,
              "percentile": quantization.CalibrationMethod.Percentile}[config.calibration_method]
    reader = _CalibrationReader(calibration, [i.name for i in graph.input])
    quantization.quantize_static(
        source_file, target, reader,
        quant_format=quantization.QuantFormat.QDQ,
        op_types_to_quantize=list(STATIC_OP_TYPES),
        per_channel=config.per_channel,
        reduce_range=config.reduce_range,
        activation_type=types[config.activation_type],
        weight_type=types[config.weight_type],
        nodes_to_exclude=list(excluded),
        calibrate_method=method,
        # As in dynamic mode: the activation x activation products (QK^T, AV) stay fp32.
        extra_options={"MatMulConstBOnly": True},
    )


def quantize_onnx(onnx: Artifact | str | Path, out_dir: str | Path, config: QuantizationConfig | None = None,
                  parity: ParityCheck | None = None, exclude_nodes: Sequence[str] = (),
                  calibration: Sequence[Mapping[str, np.ndarray]] | None = None) -> Artifact:
    """int8 copy of an fp32 ONNX export, in its own folder (model_quantized.onnx, config, tokenizer,
    metadata.json), checked against `parity` before it is moved into place: dynamic (the default), or static QDQ
    (`config.mode == "static"`) with activation ranges calibrated on `calibration` (tokenized dev batches, at least
    `config.calibration_examples` rows, else ConfigError naming the number needed).

    `exclude_nodes` names graph nodes that stay fp32 on top of the modules in `config.keep_fp32` (the accuracy
    gate, `quantize_onnx_gated`, passes the node groups it found most sensitive).
    """
    config = config or QuantizationConfig.for_this_cpu()
    quantization = require("onnxruntime.quantization", package="onnxruntime", extra="onnx", purpose="ONNX int8 quantization")
    import onnx as onnx_lib

    folder, source_file, source_meta = source_onnx(onnx)
    check_output_path(out_dir, "folder")
    n_calibration = calibration_rows(calibration, config.calibration_examples) if config.mode == "static" else 0
    _warn_if_saturating(config)
    excluded = nodes_in_modules(source_file, config.keep_fp32)
    excluded += [name for name in exclude_nodes if name not in excluded]
    weight_type = {"int8": quantization.QuantType.QInt8, "uint8": quantization.QuantType.QUInt8}[config.weight_type]
    started = time.perf_counter()
    embedding_rows: list[str] = []  # the fused embeddings whose word table went int8 row by row
    with atomic_path(out_dir) as tmp:
        shutil.copytree(folder, tmp, ignore=shutil.ignore_patterns("*.onnx", "*.onnx_data", "*.onnx.data", METADATA_FILE))
        try:
            if config.mode == "static":
                _quantize_static(quantization, source_file, tmp / QUANTIZED_FILE, config, calibration or (), excluded)
            else:
                rows = config.embedding_table == ROWWISE_EMBEDDING and "EmbedLayerNormalization" in config.op_types
                if rows and _opset(source_file, source_meta) < LAYER_NORM_OPSET:
                    log.info("'%s' is below opset %d (no LayerNormalization): its word table takes onnxruntime's "
                             "one-scale QEmbedLayerNormalization", source_file, LAYER_NORM_OPSET)
                    rows = False
                # the fused embedding is quantized row-wise below, not with onnxruntime's one table-wide scale
                op_types = [op for op in config.op_types if not (rows and op == "EmbedLayerNormalization")]
                if op_types:
                    quantization.quantize_dynamic(
                        source_file,
                        tmp / QUANTIZED_FILE,
                        op_types_to_quantize=op_types,
                        per_channel=config.per_channel,
                        reduce_range=config.reduce_range,
                        weight_type=weight_type,
                        nodes_to_exclude=excluded,
                        # Only matmuls with a constant (weight) B input: activation x activation products (QK^T in an
                        # unfused graph) stay fp32, where int8 would cost accuracy for no size gain.
                        # Shape inference cannot type the outputs of the fused com.microsoft operators (Attention,
                        # SkipLayerNormalization); every activation in this graph is float32.
                        extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx_lib.TensorProto.FLOAT},
                    )
                # (onnxruntime takes an empty op list as "every op": with the embedding alone, it is not called)
                if rows:
                    quantized = onnx_lib.load(str(tmp / QUANTIZED_FILE if op_types else source_file))
                    embedding_rows = quantize_word_embeddings(quantized, keep_fp32=excluded)
                    onnx_lib.save(quantized, tmp / QUANTIZED_FILE)
        except (ValueError, RuntimeError, KeyError, TypeError, onnx_lib.checker.ValidationError) as exc:
            raise ExportError(f"onnxruntime could not quantize '{source_file}' ({config.preset} preset): {exc}") from exc
        ops = op_type_counts(tmp / QUANTIZED_FILE)
        integer_ops = {op: n for op, n in ops.items() if op in INT8_ONNX_OPS}
        if not integer_ops and not embedding_rows:
            raise ExportError(
                f"quantizing '{source_file}' produced no integer operators (op types: {sorted(ops)}); "
                f"op_types={config.op_types} found nothing to quantize"
            )
        metadata = {k: v for k, v in source_meta.items() if k not in ("parity", "export_seconds")}
        metadata.update({
            "sdk_version": __version__,
            "format": "onnx",
            "precision": "int8",
            "model_file": QUANTIZED_FILE,
            "source_onnx_sha256": sha256_file(source_file),
            "quantization": {**config.to_dict(), "method": f"onnxruntime.quantization.quantize_{config.mode}",
                             "nodes_excluded": len(excluded), "calibration_rows": n_calibration,
                             "embedding_rows_int8": embedding_rows},
            "op_types": ops,
            "integer_ops": integer_ops,
            "quantize_seconds": round(time.perf_counter() - started, 3),
        })
        metadata.setdefault("package_versions", {name: None for name in ONNX_PACKAGES})
        if parity is not None:
            from tinybert_edge.runtime.sessions import OnnxRuntimeSession

            metadata["parity"] = parity.run(OnnxRuntimeSession(tmp)).to_dict()
        write_json_atomic(metadata_path(tmp), metadata)
    log.info("wrote int8 ONNX '%s' (%s preset) in %.1f s", out_dir, config.preset, metadata["quantize_seconds"])
    return Artifact(Path(out_dir), "onnx", "int8", metadata)
