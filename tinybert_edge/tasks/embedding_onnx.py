"""Sentence-transformers pooling written into an exported ONNX graph (opset >= 13 operators only), so that the
graph's first output is the sentence vector itself and a device needs no pooling code.

The nodes compute what `tinybert_edge.tasks.embedding.pool` computes in torch:
mean:      v = sum_s(h[b, s] * m[b, s]) / max(sum_s m[b, s], 1e-9)      (cls: v = h[b, 0])
normalize: v = v / max(sqrt(sum_d v[b, d]^2), 1e-12)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

HIDDEN_OUTPUT = "last_hidden_state"
VECTOR_OUTPUT = "sentence_embedding"
PREFIX = "tinybert_edge_pooling/"


def add_pooling(onnx_file: Path, pooling: Any) -> None:
    """Rewrite `onnx_file` in place: add VECTOR_OUTPUT [batch, width] as the first graph output, computed from
    HIDDEN_OUTPUT and the attention_mask input (both must exist), keeping HIDDEN_OUTPUT as the second output."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from tinybert_edge.errors import ExportError

    model = onnx.load(str(onnx_file))
    graph = model.graph
    outputs = {o.name: o for o in graph.output}
    if HIDDEN_OUTPUT not in outputs or "attention_mask" not in {i.name for i in graph.input}:
        raise ExportError(f"'{onnx_file}' has outputs {sorted(outputs)} and inputs {[i.name for i in graph.input]}; "
                          f"pooling needs '{HIDDEN_OUTPUT}' and 'attention_mask' (an optimum feature-extraction export)")
    if VECTOR_OUTPUT in outputs:
        raise ExportError(f"'{onnx_file}' already has an output '{VECTOR_OUTPUT}'")
    name = lambda part: PREFIX + part  # noqa: E731
    graph.initializer.extend([
        numpy_helper.from_array(np.array([1], dtype=np.int64), name("axis_seq")),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), name("axis_last")),
        numpy_helper.from_array(np.array([0], dtype=np.int64), name("first")),
        numpy_helper.from_array(np.array(1e-9, dtype=np.float32), name("min_count")),
        numpy_helper.from_array(np.array(1e-12, dtype=np.float32), name("min_norm")),
    ])
    nodes = []
    if pooling.mode == "cls":
        nodes.append(helper.make_node("Gather", [HIDDEN_OUTPUT, name("first")], [name("cls")], axis=1))
        nodes.append(helper.make_node("Squeeze", [name("cls"), name("axis_seq")], [name("pooled")]))
    else:
        nodes += [
            helper.make_node("Cast", ["attention_mask"], [name("mask")], to=TensorProto.FLOAT),
            helper.make_node("Unsqueeze", [name("mask"), name("axis_last")], [name("mask3")]),
            helper.make_node("Mul", [HIDDEN_OUTPUT, name("mask3")], [name("masked")]),
            helper.make_node("ReduceSum", [name("masked"), name("axis_seq")], [name("summed")], keepdims=0),
            helper.make_node("ReduceSum", [name("mask3"), name("axis_seq")], [name("count")], keepdims=0),
            helper.make_node("Max", [name("count"), name("min_count")], [name("count_safe")]),
            helper.make_node("Div", [name("summed"), name("count_safe")], [name("pooled")]),
        ]
    if pooling.normalize:
        nodes += [
            helper.make_node("Mul", [name("pooled"), name("pooled")], [name("squares")]),
            helper.make_node("ReduceSum", [name("squares"), name("axis_last")], [name("sum_squares")], keepdims=1),
            helper.make_node("Sqrt", [name("sum_squares")], [name("norm")]),
            helper.make_node("Max", [name("norm"), name("min_norm")], [name("norm_safe")]),
            helper.make_node("Div", [name("pooled"), name("norm_safe")], [VECTOR_OUTPUT]),
        ]
    else:
        nodes.append(helper.make_node("Identity", [name("pooled")], [VECTOR_OUTPUT]))
    graph.node.extend(nodes)
    vector = helper.make_tensor_value_info(VECTOR_OUTPUT, TensorProto.FLOAT, ["batch_size", "hidden_size"])
    hidden = outputs[HIDDEN_OUTPUT]
    del graph.output[:]
    graph.output.extend([vector, hidden])
    onnx.checker.check_model(model)
    onnx.save(model, str(onnx_file))
