"""ONNX int8 levers (static QDQ calibrated on dev rows, S8S8/U8S8) and the operator profile, on a 2-layer random BERT."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
sys.path.insert(0, str(Path(__file__).parent))

from test_converters import BUCKETS, SENTENCES, _bert_config, _write_tokenizer  # noqa: E402

from tinybert_edge.benchmarks.op_profile import (CATEGORIES, op_category, profile_grid, profile_onnx,  # noqa: E402
                                                 render_profile_markdown, summarize_trace)
from tinybert_edge.converters import ExportConfig, ParityCheck, ParityThresholds, QuantizationConfig  # noqa: E402
from tinybert_edge.converters import export_onnx, quantize_onnx  # noqa: E402
from tinybert_edge.errors import ConfigError, ExportError  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    import torch
    from transformers import BertForSequenceClassification

    folder = tmp_path_factory.mktemp("tiny-bert")
    _write_tokenizer(folder).save_pretrained(folder)
    torch.manual_seed(0)
    model = BertForSequenceClassification(_bert_config()).eval()
    with torch.no_grad():
        model.classifier.weight.mul_(20.0)
    model.save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="module")
def rows(tiny) -> list[dict[str, np.ndarray]]:
    from transformers import BertTokenizerFast

    tokenizer = BertTokenizerFast.from_pretrained(tiny)
    out = []
    for text in SENTENCES * 6:  # 36 rows, batch 1, unpadded
        enc = tokenizer([text], return_tensors="np")
        out.append({k: v.astype(np.int64) for k, v in enc.items()})
    return out


@pytest.fixture(scope="module")
def exports(tiny, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("exports")
    return {"fused": export_onnx(tiny, out / "fused", ExportConfig(sequence_buckets=BUCKETS)).path,
            "plain": export_onnx(tiny, out / "plain", ExportConfig(sequence_buckets=BUCKETS, optimize=False)).path}


def _op_types(folder: Path) -> set[str]:
    import onnx

    return {node.op_type for node in onnx.load(str(folder / "model_quantized.onnx")).graph.node}


def test_dynamic_mode_refuses_int8_activations():
    with pytest.raises(ConfigError, match="int8 activations need mode='static'"):
        QuantizationConfig(activation_type="int8")
    with pytest.raises(ConfigError, match="mode"):
        QuantizationConfig(mode="qat")


@pytest.mark.parametrize("activation_type", ["int8", "uint8"])
def test_static_qdq_is_calibrated_and_keeps_parity(tiny, exports, rows, tmp_path, activation_type):
    from tinybert_edge.runtime.sessions import TorchSession

    config = QuantizationConfig.avx512_vnni(mode="static", activation_type=activation_type, calibration_examples=32)
    check = ParityCheck(TorchSession(tiny), rows[:12], ParityThresholds.int8())
    artifact = quantize_onnx(exports["plain"], tmp_path / "static", config, parity=check, calibration=rows)
    ops = _op_types(artifact.path)
    assert {"QuantizeLinear", "DequantizeLinear", "MatMul"} <= ops  # QDQ around the weight GEMMs
    assert "DynamicQuantizeLinear" not in ops and "MatMulInteger" not in ops
    quantization = artifact.metadata["quantization"]
    assert quantization["method"] == "onnxruntime.quantization.quantize_static"
    assert quantization["activation_type"] == activation_type and quantization["calibration_rows"] == len(rows)
    assert artifact.metadata["parity"]["argmax_agreement"] >= 0.9


def test_static_qdq_needs_enough_calibration_rows(exports, rows, tmp_path):
    config = QuantizationConfig.avx512_vnni(mode="static", activation_type="int8", calibration_examples=100)
    with pytest.raises(ConfigError, match=r"at least 100 examples.*got 36"):
        quantize_onnx(exports["plain"], tmp_path / "static", config, calibration=rows)
    with pytest.raises(ConfigError, match="got 0"):
        quantize_onnx(exports["plain"], tmp_path / "static", config)
    assert not (tmp_path / "static").exists()


def test_static_qdq_refuses_a_fused_export(exports, rows, tmp_path):
    config = QuantizationConfig.avx512_vnni(mode="static", activation_type="int8", calibration_examples=8)
    with pytest.raises(ExportError, match=r"optimize=False"):
        quantize_onnx(exports["fused"], tmp_path / "static", config, calibration=rows)
    assert not (tmp_path / "static").exists()


def test_summarize_trace_takes_the_median_run_and_counts_overhead():
    def run(ts: int, dur: int) -> dict:
        return {"cat": "Session", "name": "model_run", "ts": ts, "dur": dur}

    def node(ts: int, op: str, dur: int) -> dict:
        return {"cat": "Node", "name": f"{op}_0_kernel_time", "ts": ts, "dur": dur, "args": {"op_name": op}}

    events = [run(0, 5000), node(10, "MatMul", 4000),  # warm-up: left out with runs=3
              run(10_000, 1000), node(10_010, "MatMulInteger", 500), node(10_600, "Softmax", 200),
              run(20_000, 1000), node(20_010, "MatMulInteger", 500), node(20_600, "Softmax", 200),
              run(30_000, 9000), node(30_010, "MatMulInteger", 8000), node(38_100, "Softmax", 200)]
    summary = summarize_trace(events, runs=3)
    assert summary["runs"] == 3 and summary["wall_ms"] == pytest.approx(1.0)
    assert summary["op_ms"] == {"MatMulInteger": pytest.approx(0.5), "Softmax": pytest.approx(0.2)}
    assert summary["category_ms"]["gemm"] == pytest.approx(0.5)
    assert summary["category_ms"]["attention"] == pytest.approx(0.2)
    assert summary["category_ms"]["overhead"] == pytest.approx(0.3)
    assert sum(summary["share"].values()) == pytest.approx(1.0)
    assert op_category("SkipLayerNormalization") == "layernorm_gelu" and op_category("Reshape") == "other"


def test_profile_of_a_dynamic_int8_model(exports, tmp_path):
    int8 = quantize_onnx(exports["fused"], tmp_path / "int8", QuantizationConfig.avx512_vnni())
    profile = profile_onnx(int8.path, batch_size=2, seq_len=16, threads=1, runs=3, warmup=1)
    assert set(profile["category_ms"]) == set(CATEGORIES) | {"overhead"}
    assert profile["category_ms"]["gemm"] > 0 and profile["category_ms"]["attention"] > 0
    assert sum(profile["share"].values()) == pytest.approx(1.0)
    assert profile["fused_attention_with_projections"] == ["QAttention"]
    grid = profile_grid({"int8": int8.path, "tflite": tmp_path / "model.tflite"}, (1,), (16,), threads=1, runs=2)
    assert grid["tflite"]["available"] is False and "no operator profiler" in grid["tflite"]["reason"]
    markdown = render_profile_markdown(grid)
    assert "| 1 | 16 |" in markdown and "no operator profiler" in markdown


def test_ffn_output_projections_are_found_by_node_name(exports):
    from tinybert_edge.benchmarks.suites.inference import ffn_output_nodes

    nodes = ffn_output_nodes(exports["fused"])
    assert nodes == [f"/bert/encoder/layer.{i}/output/dense/MatMul" for i in range(2)]


def test_openvino_nncf_int8_peer_is_calibrated_int8_and_keeps_the_labels(exports, rows, tmp_path):
    pytest.importorskip("nncf")
    import openvino as ov

    from tinybert_edge.benchmarks.suites.converters import openvino_nncf_int8
    from tinybert_edge.runtime.sessions import open_session

    ir = openvino_nncf_int8(exports["plain"], rows[:12], tmp_path / "ov" / "model.xml")
    assert ir.is_file() and ir.with_suffix(".bin").is_file()
    ops = {op.get_type_name() for op in ov.Core().read_model(str(ir)).get_ops()}
    assert "FakeQuantize" in ops  # NNCF's int8 marks; without calibration there would be none
    int8 = open_session("openvino", ir.parent, 1)  # the folder's only .xml
    fp32 = open_session("onnxruntime", exports["plain"], 1)
    got = np.array([int8.run(row)[0].argmax() for row in rows])
    want = np.array([fp32.run(row)[0].argmax() for row in rows])
    assert np.mean(got == want) >= 0.9
    with pytest.raises(ValueError, match="calibration"):
        openvino_nncf_int8(exports["plain"], [], tmp_path / "none" / "model.xml")


def test_openvino_session_names_a_missing_ir(tmp_path):
    pytest.importorskip("openvino")
    from tinybert_edge.errors import ModelError
    from tinybert_edge.runtime.sessions import open_session

    with pytest.raises(ModelError, match=r"model\.xml' does not exist.*\.bin beside it"):
        open_session("openvino", tmp_path / "model.xml", 1)


def test_int8_peers_are_built_once_and_a_failed_one_is_recorded(tiny, exports, rows, tmp_path):
    pytest.importorskip("nncf")
    import shutil

    from tinybert_edge.benchmarks.suites import inference

    shutil.copytree(exports["plain"], tmp_path / "onnx-fp32-unfused")
    sessions, notes = inference.int8_peers(tiny, tmp_path, 1, rows[:8], BUCKETS[-1])
    assert set(sessions) == {inference.OPENVINO_INT8, inference.LITERT_DEFAULTS}
    assert all(note["measured"] for note in notes.values())
    built = (tmp_path / "openvino-nncf-int8" / "model.xml").stat().st_mtime_ns
    row = {k: np.pad(v, ((0, 0), (0, BUCKETS[-1] - v.shape[1]))) for k, v in rows[0].items()}
    assert sessions[inference.LITERT_DEFAULTS].run(row).shape == (1, _bert_config().num_labels)
    # A second run reuses the built artifacts; without the unfused export the OpenVINO peer is recorded, not fatal.
    shutil.rmtree(tmp_path / "onnx-fp32-unfused")
    sessions, notes = inference.int8_peers(tiny, tmp_path, 1, rows[:8], BUCKETS[-1])
    assert (tmp_path / "openvino-nncf-int8" / "model.xml").stat().st_mtime_ns == built
    shutil.rmtree(tmp_path / "openvino-nncf-int8")
    sessions, notes = inference.int8_peers(tiny, tmp_path, 1, rows[:8], BUCKETS[-1])
    assert inference.OPENVINO_INT8 not in sessions and notes[inference.OPENVINO_INT8]["measured"] is False
    assert "onnx-fp32-unfused" in notes[inference.OPENVINO_INT8]["reason"]


def test_the_int8_budget_and_the_fastest_route_at_a_point():
    from tinybert_edge.benchmarks.suites.inference import fastest, within_budget

    assert within_budget(0.995, 0.801, 0.805)  # agreement on its limit, 0.4 points of accuracy lost
    assert not within_budget(0.994, 0.805, 0.805)  # labels flip too often
    assert not within_budget(1.0, 0.799, 0.805)  # 0.6 points of accuracy lost
    assert within_budget(0.996, None, None)  # no gold labels: agreement alone
    latency = {"ours onnx": {"b1/s128": {"p50_ms": 4.7}}, "ours tflite": {"b1/s128": {"p50_ms": 3.4}},
               "openvino": {"b1/s128": {"p50_ms": 4.4}}, "litert defaults": {"b1/s64": {"p50_ms": 1.0}}}
    assert fastest(["ours onnx", "ours tflite"], latency, "b1/s128") == "ours tflite"
    # A peer not measured at the point (one-length file) or not built at all is not the fastest there.
    assert fastest(["openvino", "litert defaults", "not built"], latency, "b1/s128") == "openvino"
    assert fastest(["not built"], latency, "b1/s128") is None


def test_timed_rounds_pause_before_each_variant_and_rotate_the_order(monkeypatch):
    # An in-process ONNX Runtime session's spinning workers slow the next session timed (rounds.SETTLE_SECONDS):
    # every variant of every round is timed only after the pause.
    from tinybert_edge.benchmarks import rounds
    from tinybert_edge.benchmarks.suites import inference

    events: list[str] = []
    monkeypatch.setattr(rounds.time, "sleep", lambda seconds: events.append(f"pause {seconds}"))
    calls = {name: (lambda name=name: events.append(name)) for name in ("a", "b", "c")}
    measured = inference.timed_rounds(calls, rounds=2, calls_per_round=2)
    assert {name: [len(r) for r in by_round] for name, by_round in measured.items()} == {n: [2, 2] for n in "abc"}
    timed = events[9:]  # after the warm-up calls (3 each)
    pause = f"pause {rounds.SETTLE_SECONDS}"
    assert timed == [pause, "a", "a", pause, "b", "b", pause, "c", "c", pause, "b", "b", pause, "c", "c", pause, "a", "a"]
