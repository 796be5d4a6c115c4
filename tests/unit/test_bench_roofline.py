"""The roofline column: FLOPs of a BERT counted by hand, the GEMM peak subprocess, and the fraction of peak."""

from __future__ import annotations

import json

import pytest

import tiny_bert
from tiny_bert import one_thread  # noqa: F401  (autouse fixture)
from tinybert_edge.benchmarks.roofline import BertShape, attach_roofline, bert_flops, measure_gemm_peak, model_shape, roofline_point


def test_bert_flops_of_a_tiny_config_by_hand():
    # L=2, H=32, I=64, C=2, S=16. Per layer: QKV+output 8*S*H^2 = 131072, FFN 4*S*H*I = 131072;
    # pooler 2*H^2 = 2048, classifier 2*H*C = 128; attention QK^T + AV per layer 4*S^2*H = 32768.
    flops = bert_flops(BertShape(layers=2, hidden=32, intermediate=64, labels=2), seq_len=16)
    assert flops["linear"] == 2 * (131072 + 131072) + 2048 + 128 == 526464
    assert flops["attention"] == 2 * 32768 == 65536
    assert flops["total"] == 592000
    assert bert_flops(BertShape(2, 32, 64, 2), seq_len=16, batch_size=3)["total"] == 3 * 592000


def test_bert_flops_agree_with_torch_flop_counter():
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    # Eager attention: its QK^T and AV are matmuls the counter sees (it does not count the CPU SDPA kernel).
    model = tiny_bert.classifier(layers=2, hidden=32, heads=2, attn_implementation="eager")
    ids = torch.randint(5, 100, (2, 16))
    with FlopCounterMode(display=False) as counter:
        model(input_ids=ids, attention_mask=torch.ones_like(ids))
    expected = bert_flops(BertShape(2, 32, 64, 2), seq_len=16, batch_size=2)["total"]
    assert counter.get_total_flops() == expected


def test_tinybert4_matches_the_paper():
    assert bert_flops(BertShape(4, 312, 1200, 2), 128)["total"] / 1e9 == pytest.approx(1.2, abs=0.06)


def test_model_shape_from_folder_and_from_export_metadata(tmp_path):
    student = tiny_bert.save_classifier(tmp_path / "student", layers=2, hidden=32, heads=2)
    assert model_shape(student) == BertShape(2, 32, 64, 2)
    tflite = tmp_path / "tflite-int8" / "model.tflite"
    tflite.parent.mkdir()
    tflite.write_bytes(b"")
    assert model_shape(tflite) is None
    tflite.with_name("model.tflite.json").write_text(json.dumps({"source_model": str(student)}))
    assert model_shape(tflite) == BertShape(2, 32, 64, 2)


def test_roofline_fraction_for_fp32_and_dynamic_int8():
    shape = BertShape(2, 32, 64, 2)
    flops = bert_flops(shape, 16)
    peak = {"fp32": {"peak_gops": 100.0}, "int8": {"peak_gops": 400.0}}
    fp32 = roofline_point(shape, "fp32", 16, 1, p50_ms=1.0, peak=peak)
    assert fp32["achieved_gops"] == pytest.approx(flops["total"] / 1e-3 / 1e9)
    assert fp32["fraction_of_roofline"] == pytest.approx(flops["total"] / 100e9 / 1e-3)
    int8 = roofline_point(shape, "int8", 16, 1, p50_ms=1.0, peak=peak)
    assert int8["unit"] == "GOP/s"
    assert int8["bound_ms"] == pytest.approx((flops["linear"] / 400e9 + flops["attention"] / 100e9) * 1e3)
    assert roofline_point(shape, "fp32", 16, 1, 1.0, peak={"error": "x"})["fraction_of_roofline"] is None


def test_attach_roofline_fills_headline_and_sweep(tmp_path):
    student = tiny_bert.save_classifier(tmp_path / "student", layers=2, hidden=32, heads=2)
    m = {"seq_len": 16, "batch_size": 2, "threads": 1, "stats": {"p50_ms": 2.0}, "error": None}
    rows = [{"path": str(student), "precision": "fp32", "latency": {"16": m}, "sweep": [m]},
            {"path": str(tmp_path / "nowhere"), "precision": "fp32", "latency": {}, "sweep": []}]
    attach_roofline(rows, {1: {"fp32": {"peak_gops": 50.0}, "int8": None}})
    assert rows[0]["latency"]["16"]["roofline"]["ops"] == 2 * 592000
    assert rows[0]["latency"]["16"]["roofline"]["fraction_of_roofline"] > 0
    assert rows[1]["bert_shape"] is None


def test_gemm_peak_is_measured_in_a_subprocess():
    peak = measure_gemm_peak(threads=1, size=64, min_seconds=0.05)
    assert "error" not in peak, peak
    assert peak["threads"] == 1 and peak["size"] == 64
    assert peak["fp32"]["peak_gops"] > 0 and peak["fp32"]["peak_gops"] >= peak["fp32"]["p50_gops"]
    assert peak["fp32"]["ops"] == 2 * 64**3
    if peak["int8"] is not None:
        assert peak["int8"]["kernel"] in ("torch._int_mm", "onnxruntime MatMulInteger")


def test_fp32_peak_is_the_faster_of_onnxruntime_and_torch():
    pytest.importorskip("onnxruntime")
    peak = measure_gemm_peak(threads=1, size=64, min_seconds=0.05)
    kernels = {k["kernel"]: k["peak_gops"] for k in peak["fp32_kernels"]}
    assert "onnxruntime MatMul" in kernels and len(kernels) == 2
    assert peak["fp32"]["peak_gops"] == max(kernels.values())
