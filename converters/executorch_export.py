"""PyTorch -> ExecuTorch (.pte) with the XNNPACK delegate, fp32 or int8, for PyTorch teams that ship with ExecuTorch.

The task's export module (positional input_ids, attention_mask, token_type_ids; see `Task.export_module`) is
captured with `torch.export` at batch 1 and a dynamic sequence length from 2 to the longest bucket, lowered with
`to_edge_transform_and_lower(..., XnnpackPartitioner())` and serialised with `.to_executorch()`. The session
(`tinybert_edge.runtime.executorch_session`) runs a larger batch row by row, as LiteRT does.

int8 (`quantize=True`) is two PT2E quantizers composed:
- the linear layers: XNNPACK's dynamic int8 (`get_symmetric_quantization_config(is_per_channel=True,
  is_dynamic=True)`): int8 per-channel weights, activations quantized per call, run by XNNPACK's QD8 kernels;
- the embedding tables (words, positions, token types): torchao's `EmbeddingQuantizer`, int8 per row. The word table
  is a quarter to a third of a small BERT's weights, so the standard XNNPACK quantizer alone, which leaves it fp32,
  barely shrinks the file. Three things make this work, each silently skipped otherwise: the quantized kernels'
  ahead-of-time library is imported (it registers `quantized_decomposed::embedding_byte.out`); quant fusion and
  constant propagation are enabled in `ExecutorchBackendConfig` (they fold the dequantize + embedding pair into
  `embedding_byte` with int8 weights); and `padding_idx` is cleared on every nn.Embedding (an embedding call with
  a padding index does not match the fused pattern; it only matters for training gradients).

The metadata records the ExecuTorch version that wrote the file: the session refuses a `.pte` written by another
version (see `executorch_session.check_version`).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

from tinybert_edge.converters.artifact import (Artifact, SourceModel, base_metadata, check_output_path, check_source,
                                               write_metadata)
from tinybert_edge.converters.config import ExportConfig
from tinybert_edge.converters.parity import ParityCheck
from tinybert_edge.errors import ExportError, require
from tinybert_edge.io import atomic_path
from tinybert_edge.runtime.executorch_session import PTE_FILE, file_identifier

log = logging.getLogger(__name__)

EXECUTORCH_PACKAGES = ("executorch", "torch", "torchao", "transformers")
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
# The fused int8 embedding lookup: its presence is what "the embedding tables are int8" means in a .pte.
INT8_EMBEDDING_OP = "quantized_decomposed.embedding_byte.out"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # torch.export and the edge passes raise dozens of DeprecationWarnings per graph that a user cannot act on.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _module(source: SourceModel, clear_padding_idx: bool):
    import torch

    from tinybert_edge.models import load_model

    model = load_model(source.folder, source.task).eval()
    if clear_padding_idx:
        for layer in model.modules():
            if isinstance(layer, torch.nn.Embedding):
                layer.padding_idx = None
    return source.task.export_module(model).eval()


def _sample(length: int):
    import torch

    ids = torch.ones((1, length), dtype=torch.long)
    return (ids, torch.ones_like(ids), torch.zeros_like(ids))


def _dynamic_shapes(longest: int):
    from torch.export import Dim

    # torch.export specialises sizes 0 and 1, so the shortest length is 2: [CLS] [SEP].
    seq = Dim("seq", min=2, max=longest)
    return tuple({1: seq} for _ in INPUT_NAMES)


def _quantized(module, sample, shapes):
    """The module with int8 linear layers (XNNPACK dynamic) and int8 embedding tables (embedding_byte)."""
    import torch

    require("executorch.kernels.quantized", package="executorch", extra="executorch",
            purpose="int8 embedding tables in a .pte")  # registers quantized_decomposed::embedding_byte.out
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                          get_symmetric_quantization_config)
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import ComposableQuantizer
    from torchao.quantization.pt2e.quantizer.embedding_quantizer import EmbeddingQuantizer

    linear = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True))
    graph = torch.export.export(module, sample, dynamic_shapes=shapes).module()
    prepared = prepare_pt2e(graph, ComposableQuantizer([EmbeddingQuantizer(), linear]))
    prepared(*sample)  # dynamic activations and weight observers need no calibration data; one pass sets them up
    return convert_pt2e(prepared)


def lower(source: SourceModel, longest: int, quantize: bool) -> tuple[bytes, dict[str, int]]:
    """The .pte bytes of `source` (dynamic sequence length 2..`longest`, batch 1) and its operator counts."""
    require("executorch.exir", package="executorch", extra="executorch", purpose="ExecuTorch export")
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import ExecutorchBackendConfig, to_edge_transform_and_lower

    sample, shapes = _sample(min(longest, 8)), _dynamic_shapes(longest)
    try:
        with _quiet(), torch.no_grad():
            module = _module(source, clear_padding_idx=quantize)
            if quantize:
                module = _quantized(module, sample, shapes)
            program = torch.export.export(module, sample, dynamic_shapes=shapes)
            edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
            executorch_program = edge.to_executorch(ExecutorchBackendConfig(do_quant_fusion_and_const_prop=quantize))
            ops = collections.Counter(str(node.target) for node in executorch_program.exported_program().graph.nodes
                                      if node.op == "call_function" and not str(node.target).startswith("<"))
            content = bytes(executorch_program.buffer)
    except Exception as exc:  # torch.export and the edge passes raise many untyped errors
        raise ExportError(f"ExecuTorch could not lower '{source.folder}' ({'int8' if quantize else 'fp32'}, lengths "
                          f"2..{longest}): {type(exc).__name__}: {exc}") from exc
    return content, dict(ops)


def export_executorch(model_dir: str | Path, out_path: str | Path, config: ExportConfig | None = None,
                      quantize: bool = True, parity: ParityCheck | None = None) -> Artifact:
    """Export a fine-tuned BERT model folder to one ExecuTorch program (`.pte`, XNNPACK delegate) that takes any
    sequence length up to the longest of `config.sequence_buckets` at batch 1; int8 linear layers and embedding
    tables with `quantize`, else fp32.

    `out_path` is the .pte file, or a folder that receives `model.pte`. The file is written beside its destination,
    checked against `parity` when given, and only then renamed into place; its metadata goes to `<file>.json`.
    """
    config = config or ExportConfig()
    require("executorch.exir", package="executorch", extra="executorch", purpose="ExecuTorch export")
    import importlib.metadata

    source = check_source(model_dir, config.sequence_buckets)
    out = Path(out_path)
    out_file = check_output_path(out if out.suffix == ".pte" else out / PTE_FILE, "file")
    precision = "int8" if quantize else "fp32"
    longest = max(config.sequence_buckets)
    started = time.perf_counter()
    with atomic_path(out_file) as tmp:
        content, ops = lower(source, longest, quantize)
        if quantize and not ops.get(INT8_EMBEDDING_OP):
            raise ExportError(f"int8 ExecuTorch export of '{source.folder}' left the embedding tables fp32 (no "
                              f"{INT8_EMBEDDING_OP} in the program; operators: {sorted(ops)})")
        tmp.write_bytes(content)
        metadata: dict[str, Any] = base_metadata(source, "executorch", precision, config.sequence_buckets,
                                                 EXECUTORCH_PACKAGES)
        metadata.update({
            "model_file": PTE_FILE,
            "executorch_version": importlib.metadata.version("executorch"),
            "file_identifier": file_identifier(content),
            "batch_size": 1,
            "max_sequence_length": longest,
            "input_names": list(INPUT_NAMES),
            "output_names": list(source.task.output_names),
            "input_dtype": "int64",
            "delegate": "XnnpackBackend",
            "quantization": None if not quantize else {
                "method": "torchao PT2E",
                "linear": "XNNPACKQuantizer dynamic int8, symmetric per-channel weights",
                "embedding": "EmbeddingQuantizer int8 per row (quantized_decomposed.embedding_byte)",
            },
            "op_types": ops,
            "export_seconds": round(time.perf_counter() - started, 3),
        })
        if parity is not None:
            from tinybert_edge.runtime.executorch_session import ExecuTorchSession

            metadata["parity"] = parity.run(ExecuTorchSession(tmp, metadata=metadata)).to_dict()
    write_metadata(out_file, metadata)
    log.info("wrote %s ExecuTorch '%s' (%d bytes, lengths 2..%d) in %.1f s", precision, out_file, len(content),
             longest, metadata["export_seconds"])
    return Artifact(out_file, "executorch", precision, metadata)
