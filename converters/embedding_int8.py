"""Row-wise int8 word embeddings in a fused ONNX BERT graph.

ONNX Runtime's dynamic quantizer turns the fused EmbedLayerNormalization into QEmbedLayerNormalization with one
scale for the whole word table (30k rows), coarse enough that the int8 agreement search often keeps the node fp32,
and the fp32 table is most of the file (SST-2's 3-layer student: 58.6 MB int8 ONNX against 18.1 MB of TFLite).
Here the table is stored int8 with one scale per row (the row's max |value| / 127), and the node is unfused into
standard operators that any ONNX runtime runs:

    word  = Cast(Gather(table_int8, input_ids)) * Gather(row_scales, input_ids)
    x     = word + Gather(position_table, 0..L-1 or position_ids) + Gather(segment_table, token_type_ids)
    out   = LayerNormalization(x, gamma, beta, epsilon)
    mask_index = ReduceSum(attention_mask, axis 1)       (what the fused node gave the fused Attention nodes)

The position and segment tables stay fp32 (a few hundred rows). Per-row error is at most half a row's step, so the
embedding output moves far less than with one table-wide scale.
"""

from __future__ import annotations

import logging
from typing import Any, Collection

import numpy as np

from tinybert_edge.errors import ConfigError

log = logging.getLogger(__name__)

FUSED_EMBEDDING = "EmbedLayerNormalization"
LAYER_NORM_OPSET = 17  # the first ONNX opset with a standard LayerNormalization, which the unfused form needs


def default_opset(model: Any) -> int:
    """The ONNX (default domain) opset an onnx.ModelProto is written in."""
    return next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), 0)


def quantize_word_embeddings(model: Any, keep_fp32: Collection[str] = ()) -> list[str]:
    """Rewrite, in place, every EmbedLayerNormalization of `model` (an onnx.ModelProto) whose word table is an fp32
    initializer and whose name is not in `keep_fp32`, as above; returns the names of the nodes rewritten. A node
    without an attention mask input (its mask index would be a dummy) is left as it is, with a warning. The graph
    must be at opset LAYER_NORM_OPSET or later (ConfigError otherwise: export at that opset, or keep onnxruntime's
    one-scale form, QuantizationConfig(embedding_table="ort"))."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    opset = default_opset(model)
    if opset < LAYER_NORM_OPSET:
        raise ConfigError(f"the word table can be stored int8 row by row only in graphs of ONNX opset "
                          f"{LAYER_NORM_OPSET} or later (LayerNormalization), not {opset}; export at opset "
                          f"{LAYER_NORM_OPSET} or later, or use QuantizationConfig(embedding_table=\"ort\")")
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    consumers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    rewritten: list[str] = []
    nodes = list(graph.node)
    for index, node in enumerate(nodes):
        if node.op_type != FUSED_EMBEDDING or node.name in keep_fp32:
            continue
        inputs = list(node.input) + [""] * (9 - len(node.input))
        ids, segments, word, positions, segment_table, gamma, beta, mask, position_ids = inputs
        table = initializers.get(word)
        fp32_table = table is not None and table.data_type == TensorProto.FLOAT
        if not fp32_table or not mask:
            log.warning("%s node '%s' keeps its fp32 word table: %s", FUSED_EMBEDDING, node.name,
                        "it has no attention mask input" if fp32_table else "its word table is not an fp32 initializer")
            continue
        epsilon = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "epsilon"), 1e-12)
        prefix = node.name or f"embedding_{index}"

        def name(suffix: str) -> str:
            return f"{prefix}_{suffix}"

        values = numpy_helper.to_array(table).astype(np.float32)
        scales = np.abs(values).max(axis=1, keepdims=True) / 127.0
        scales[scales == 0] = 1.0  # an all-zero row (padding) stays zero at any scale
        quantized = np.clip(np.rint(values / scales), -127, 127).astype(np.int8)
        graph.initializer.extend([numpy_helper.from_array(quantized, name(f"{word}_int8_rows")),
                                  numpy_helper.from_array(scales.astype(np.float32), name(f"{word}_row_scales")),
                                  numpy_helper.from_array(np.array(1, dtype=np.int64), name("one")),
                                  numpy_helper.from_array(np.array(0, dtype=np.int64), name("zero")),
                                  numpy_helper.from_array(np.array([1], dtype=np.int64), name("axis_1"))])
        new = [
            helper.make_node("Gather", [name(f"{word}_int8_rows"), ids], [name("word_int8")], name=name("word_gather")),
            helper.make_node("Gather", [name(f"{word}_row_scales"), ids], [name("word_scales")],
                             name=name("scale_gather")),
            helper.make_node("Cast", [name("word_int8")], [name("word_float")], to=TensorProto.FLOAT,
                             name=name("word_cast")),
            helper.make_node("Mul", [name("word_float"), name("word_scales")], [name("word")], name=name("word_scale")),
        ]
        if position_ids:
            new.append(helper.make_node("Gather", [positions, position_ids], [name("position")],
                                        name=name("position_gather")))
        else:  # positions 0..L-1, as the fused node makes them
            new += [
                helper.make_node("Shape", [ids], [name("ids_shape")], name=name("shape")),
                helper.make_node("Gather", [name("ids_shape"), name("one")], [name("length")], axis=0,
                                 name=name("length")),
                helper.make_node("Range", [name("zero"), name("length"), name("one")], [name("position_ids")],
                                 name=name("range")),
                helper.make_node("Gather", [positions, name("position_ids")], [name("position")],
                                 name=name("position_gather")),
            ]
        summed = name("word_position")
        new.append(helper.make_node("Add", [name("word"), name("position")], [summed], name=name("add_position")))
        if segments and segment_table:
            new += [helper.make_node("Gather", [segment_table, segments], [name("segment")],
                                     name=name("segment_gather")),
                    helper.make_node("Add", [summed, name("segment")], [name("sum")], name=name("add_segment"))]
            summed = name("sum")
        outputs = list(node.output) + [""] * (3 - len(node.output))
        new.append(helper.make_node("LayerNormalization", [summed, gamma, beta], [outputs[0]], axis=-1,
                                    epsilon=float(epsilon), name=name("layer_norm")))
        if outputs[1]:  # the fused Attention nodes' mask index: each row's count of attended tokens
            new.append(helper.make_node("ReduceSum", [mask, name("axis_1")], [outputs[1]], keepdims=0,
                                        name=name("mask_index")))
        if outputs[2]:
            new.append(helper.make_node("Identity", [summed], [outputs[2]], name=name("embedding_sum")))
        position = list(graph.node).index(node)
        graph.node.remove(node)
        for offset, made in enumerate(new):
            graph.node.insert(position + offset, made)
        if consumers.get(word, 0) == 1:  # nothing else reads the fp32 table: it leaves the file
            graph.initializer.remove(table)
        rewritten.append(prefix)
    if rewritten:
        onnx.checker.check_model(model)
    return rewritten
