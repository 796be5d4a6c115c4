"""Dynamic int8 ONNX (int8/uint8 weights, activations quantized per batch at run time) with onnxruntime's
`quantize_dynamic`, written as a folder that ORTModelForSequenceClassification loads
(`from_pretrained(folder, file_name="model_quantized.onnx")`; the file is the folder's only .onnx, so optimum also
finds it without `file_name`, with a warning)."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

from tinybert_edge.artifacts import INT8_ONNX_OPS, METADATA_FILE, Artifact, metadata_path, onnx_file, read_metadata
from tinybert_edge.converters.artifact import check_output_path
from tinybert_edge.converters.config import QuantizationConfig
from tinybert_edge.converters.onnx_export import ONNX_PACKAGES, op_type_counts
from tinybert_edge.converters.parity import ParityCheck
from tinybert_edge.errors import ExportError, ModelError, require
from tinybert_edge.version import __version__
from tinybert_edge.io import atomic_path, sha256_file, write_json_atomic

log = logging.getLogger(__name__)

QUANTIZED_FILE = "model_quantized.onnx"  # the name optimum's ORTQuantizer gives its output


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


def quantize_onnx(onnx: Artifact | str | Path, out_dir: str | Path, config: QuantizationConfig | None = None,
                  parity: ParityCheck | None = None, exclude_nodes: Sequence[str] = ()) -> Artifact:
    """Dynamic int8 copy of an fp32 ONNX export, in its own folder (model_quantized.onnx, config, tokenizer,
    metadata.json), checked against `parity` before it is moved into place.

    `exclude_nodes` names graph nodes that stay fp32 on top of the modules in `config.keep_fp32` (the accuracy
    gate, `quantize_onnx_gated`, passes the node groups it found most sensitive).
    """
    config = config or QuantizationConfig.for_this_cpu()
    quantization = require("onnxruntime.quantization", package="onnxruntime", extra="onnx", purpose="ONNX int8 quantization")
    import onnx as onnx_lib

    folder, source_file, source_meta = source_onnx(onnx)
    check_output_path(out_dir, "folder")
    _warn_if_saturating(config)
    excluded = nodes_in_modules(source_file, config.keep_fp32)
    excluded += [name for name in exclude_nodes if name not in excluded]
    weight_type = {"int8": quantization.QuantType.QInt8, "uint8": quantization.QuantType.QUInt8}[config.weight_type]
    started = time.perf_counter()
    with atomic_path(out_dir) as tmp:
        shutil.copytree(folder, tmp, ignore=shutil.ignore_patterns("*.onnx", "*.onnx_data", "*.onnx.data", METADATA_FILE))
        try:
            quantization.quantize_dynamic(
                source_file,
                tmp / QUANTIZED_FILE,
                op_types_to_quantize=list(config.op_types),
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
        except (ValueError, RuntimeError, KeyError, TypeError) as exc:
            raise ExportError(f"onnxruntime could not quantize '{source_file}' ({config.preset} preset): {exc}") from exc
        ops = op_type_counts(tmp / QUANTIZED_FILE)
        integer_ops = {op: n for op, n in ops.items() if op in INT8_ONNX_OPS}
        if not integer_ops:
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
            "quantization": {**config.to_dict(), "method": "onnxruntime.quantization.quantize_dynamic",
                             "nodes_excluded": len(excluded)},
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
