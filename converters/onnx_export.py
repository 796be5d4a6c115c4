"""fp32 ONNX export through optimum-onnx, plus ONNX Runtime's BERT transformer optimizer (fused Attention,
SkipLayerNormalization, EmbedLayerNormalization and BiasGelu), written as a folder that optimum's
`ORTModelFor<Task>.from_pretrained` loads unchanged (the task's `export_task` names optimum's task)."""

from __future__ import annotations

import collections
import logging
import time
from pathlib import Path
from typing import Any

from tinybert_edge.converters.artifact import (Artifact, SourceModel, base_metadata, check_output_path, check_source,
                                               metadata_path)
from tinybert_edge.converters.config import ExportConfig
from tinybert_edge.converters.parity import ParityCheck
from tinybert_edge.errors import ExportError, require
from tinybert_edge.io import atomic_path, write_json_atomic

log = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
ONNX_PACKAGES = ("onnx", "onnxruntime", "optimum", "optimum-onnx", "torch", "transformers")
GELU_FUSIONS = ("Gelu", "FastGelu", "BiasGelu", "GemmFastGelu")


def expected_fusions(num_layers: int) -> dict[str, int]:
    """Fused-operator counts a standard BERT graph of `num_layers` layers reaches when every pattern matches."""
    return {
        "EmbedLayerNormalization": 1,
        "Attention": num_layers,
        "SkipLayerNormalization": 2 * num_layers,
        "Gelu (any fused form)": num_layers,
    }


def missing_fusions(stats: dict[str, int], num_layers: int) -> dict[str, tuple[int, int]]:
    """Fusions that fell short: name -> (found, expected)."""
    found = dict(stats)
    found["Gelu (any fused form)"] = sum(stats.get(name, 0) for name in GELU_FUSIONS)
    return {
        name: (found.get(name, 0), expected)
        for name, expected in expected_fusions(num_layers).items()
        if found.get(name, 0) < expected
    }


def optimize_bert_graph(onnx_file: Path, source: SourceModel) -> dict[str, Any]:
    """Fuse BERT subgraphs in place with onnxruntime.transformers; return fused-op counts and what did not fuse."""
    from onnxruntime.transformers.optimizer import optimize_model

    num_layers = int(source.config["num_hidden_layers"])
    # opt_level=0: only the Python pattern fusions, no ONNX Runtime graph rewrites baked into the file, so the
    # saved graph stays hardware-neutral; the runtime applies its own optimizations when it loads the model.
    optimized = optimize_model(
        str(onnx_file),
        model_type="bert",
        num_heads=int(source.config["num_attention_heads"]),
        hidden_size=int(source.config["hidden_size"]),
        opt_level=0,
    )
    stats = {name: int(count) for name, count in optimized.get_fused_operator_statistics().items()}
    optimized.save_model_to_file(str(onnx_file))
    missing = missing_fusions(stats, num_layers)
    for name, (found, expected) in missing.items():
        log.warning(
            "ONNX Runtime fused %d of %d expected %s operators in '%s'; the graph runs correctly but slower "
            "(fusions only match the exact subgraphs the exporter wrote)", found, expected, name, onnx_file,
        )
    return {"fused_operators": {k: v for k, v in stats.items() if v}, "missing_fusions": {k: list(v) for k, v in missing.items()}}


def op_type_counts(onnx_file: Path) -> dict[str, int]:
    import onnx

    model = onnx.load(str(onnx_file), load_external_data=False)
    return dict(collections.Counter(node.op_type for node in model.graph.node))


def _run_main_export(source: SourceModel, out: Path, config: ExportConfig) -> None:
    exporters = require("optimum.exporters.onnx", package="optimum-onnx", extra="onnx", purpose="ONNX export")
    try:
        exporters.main_export(
            str(source.folder),
            output=out,
            task=source.task.export_task,
            opset=config.opset,
            device="cpu",
            library_name="transformers",
            local_files_only=True,
            trust_remote_code=False,
            # We verify against our own reference (ParityCheck) with thresholds we choose, not optimum's atol.
            do_validation=False,
        )
    except (ValueError, RuntimeError, OSError, KeyError, TypeError) as exc:
        raise ExportError(f"optimum-onnx could not export '{source.folder}' to ONNX (opset {config.opset}): {exc}") from exc
    if not (out / ONNX_FILE).is_file():
        raise ExportError(f"optimum-onnx wrote no {ONNX_FILE} for '{source.folder}'; files: {sorted(p.name for p in out.iterdir())}")


def export_onnx(model_dir: str | Path, out_dir: str | Path, config: ExportConfig | None = None,
                parity: ParityCheck | None = None) -> Artifact:
    """Export a fine-tuned BERT model folder to an fp32 ONNX folder (dynamic batch and sequence axes).

    The folder holds model.onnx, config.json, the tokenizer files and metadata.json; it is written beside
    `out_dir`, checked against `parity` when given, and only then renamed onto `out_dir`.
    """
    config = config or ExportConfig()
    require("onnxruntime", package="onnxruntime", extra="onnx", purpose="ONNX export")
    source = check_source(model_dir, config.sequence_buckets)
    check_output_path(out_dir, "folder")
    started = time.perf_counter()
    with atomic_path(out_dir) as tmp:
        _run_main_export(source, tmp, config)
        metadata = base_metadata(source, "onnx", "fp32", config.sequence_buckets, ONNX_PACKAGES)
        metadata.update({"model_file": ONNX_FILE, "opset": config.opset, "optimized": config.optimize,
                         "quantization": None, "input_names": ["input_ids", "attention_mask", "token_type_ids"],
                         "output_names": list(source.task.output_names)})
        metadata.update(source.task.finish_onnx_export(tmp, source.config))
        if config.optimize:
            metadata.update(optimize_bert_graph(tmp / ONNX_FILE, source))
        metadata["op_types"] = op_type_counts(tmp / ONNX_FILE)
        metadata["export_seconds"] = round(time.perf_counter() - started, 3)
        if parity is not None:
            metadata["parity"] = check_onnx_parity(tmp, parity).to_dict()
        write_json_atomic(metadata_path(tmp), metadata)
    log.info("wrote fp32 ONNX '%s' in %.1f s", out_dir, metadata["export_seconds"])
    return Artifact(Path(out_dir), "onnx", "fp32", metadata)


def check_onnx_parity(folder: Path, parity: ParityCheck):
    from tinybert_edge.runtime.sessions import OnnxRuntimeSession

    return parity.run(OnnxRuntimeSession(folder))
