"""The `harness` suite's own logic: variants per role, the CUDA target's selection, teacher-relative metrics at
every grid point, the emulated-ARM section, and failing targets as rows. Tiny models; no timing thresholds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tiny_bert
from tiny_bert import one_thread  # noqa: F401  (autouse fixture)
from tinybert_edge.benchmarks.rows import TEACHER_NAME
from tinybert_edge.benchmarks.runner import bench
from tinybert_edge.benchmarks.config import BenchConfig, Target
from tinybert_edge.benchmarks.suites import harness
from tinybert_edge.errors import BenchmarkError, ConfigError


# --- targets --------------------------------------------------------------------------------------------------------


def test_every_variant_of_both_roles_and_a_failed_export_is_named(tmp_path):
    teacher, student = tmp_path / "teacher", tmp_path / "student"
    built = {"onnx-fp32": tmp_path / "t-onnx", "tflite-int8": tmp_path / "t.tflite"}
    teacher_targets, missing = harness.variant_targets("teacher", teacher, built, {"onnx-int8": "ExportError: boom"})
    student_targets, none_missing = harness.variant_targets("student", student, built, {})

    # bench adds the teacher's PyTorch fp32 row itself (as TEACHER_NAME); the other four are the harness's.
    assert [t.name for t in teacher_targets] == ["teacher · PyTorch int8 (dynamic)", "teacher · ONNX fp32",
                                                 "teacher · ONNX int8", "teacher · TFLite int8"]
    assert harness.target_name("teacher", "PyTorch fp32") == TEACHER_NAME
    assert [(t.backend, t.precision) for t in student_targets] == [
        ("torch", "fp32"), ("torch-int8", "int8"), ("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("litert", "int8")]
    assert missing == {"teacher · ONNX int8": "ExportError: boom"} and none_missing == {}
    failed = next(t for t in teacher_targets if t.name == "teacher · ONNX int8")
    assert not failed.path.exists()  # bench turns it into a row with an error, the harness then says why



def test_executorch_rows_appear_only_when_the_format_is_asked_for(tmp_path):
    student = tmp_path / "student"
    built = {"executorch-int8": tmp_path / "model.pte"}
    default, _ = harness.variant_targets("student", student, built, {})
    asked, _ = harness.variant_targets("student", student, built, {}, formats=("onnx", "tflite", "executorch"))
    assert "student · ExecuTorch int8" not in [t.name for t in default]
    row = next(t for t in asked if t.name == "student · ExecuTorch int8")
    assert (row.backend, row.precision, row.path) == ("executorch", "int8", tmp_path / "model.pte")

def test_grid_is_batch_by_length_by_threads_with_a_headline_inside():
    config = harness.harness_config(min_seconds=0.0, min_iterations=1, warmup=0)
    assert len(config.grid()) == 2 * 3 * 2
    assert (harness.HEADLINE["seq_len"], harness.HEADLINE["batch_size"], harness.HEADLINE["threads"]) in config.grid()
    assert config.is_headline(harness.HEADLINE["batch_size"], harness.HEADLINE["threads"])


def test_a_folder_that_is_not_a_pipeline_run_is_refused_with_the_fix(tmp_path):
    (tmp_path / "student").mkdir()
    with pytest.raises(ConfigError, match="pipeline"):
        harness.load_run(tmp_path)
    with pytest.raises(ConfigError, match="tinybert-edge pipeline"):
        harness.find_run(tmp_path / "no-runs")


# --- CUDA -----------------------------------------------------------------------------------------------------------


def _providers(monkeypatch, providers: list[str], torch_cuda: bool) -> None:
    import onnxruntime
    import torch

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: list(providers))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: torch_cuda)


def _onnx_and_other_targets(tmp_path) -> list[Target]:
    return [Target("student · ONNX int8", "student", "onnxruntime", tmp_path / "m.onnx", "int8"),
            Target("student · TFLite int8", "student", "litert", tmp_path / "m.tflite", "int8"),
            Target("student · PyTorch fp32", "student", "torch", tmp_path, "fp32")]


def test_without_cuda_the_target_is_skipped_with_the_reason(monkeypatch, tmp_path):
    _providers(monkeypatch, ["CPUExecutionProvider"], torch_cuda=False)
    status = harness.cuda_status()
    assert status["available"] is False and status["torch_cuda"] is False and status["onnxruntime_cuda"] is False
    assert status["note"].startswith("skipped") and "CUDAExecutionProvider" in status["note"]
    assert harness.cuda_targets(_onnx_and_other_targets(tmp_path), status) == []


def test_with_the_cuda_provider_onnx_targets_run_on_cuda(monkeypatch, tmp_path):
    _providers(monkeypatch, ["CUDAExecutionProvider", "CPUExecutionProvider"], torch_cuda=False)
    status = harness.cuda_status()
    assert status["available"] is True and status["note"].startswith("measured: ONNX")
    assert "torch.cuda.is_available() is False" in status["note"]
    cuda = harness.cuda_targets(_onnx_and_other_targets(tmp_path), status)
    assert [(t.name, t.backend, t.device) for t in cuda] == [("student · ONNX int8 (cuda)", "onnxruntime", "cuda")]


def test_with_torch_cuda_fp32_pytorch_targets_run_on_cuda_but_not_dynamic_int8(monkeypatch, tmp_path):
    import torch

    _providers(monkeypatch, ["CPUExecutionProvider"], torch_cuda=True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Fake GPU")
    status = harness.cuda_status()
    assert status["available"] is True and status["device_name"] == "Fake GPU"
    assert "fp32 PyTorch on torch.cuda" in status["note"] and "onnxruntime-gpu" in status["note"]
    targets = _onnx_and_other_targets(tmp_path) + [
        Target("student · PyTorch int8", "student", "torch-int8", tmp_path, "int8")]
    cuda = harness.cuda_targets(targets, status)
    assert [(t.name, t.backend, t.device) for t in cuda] == [("student · PyTorch fp32 (cuda)", "torch", "cuda")]


def test_worker_opens_torch_on_cuda_and_the_session_refuses_what_cuda_cannot_run(monkeypatch, tmp_path):
    from tinybert_edge.benchmarks import worker
    from tinybert_edge.runtime import sessions
    from tinybert_edge.runtime.sessions import TorchSession

    asked = {}
    monkeypatch.setattr(sessions, "open_session", lambda backend, path, threads, **kwargs: asked.update(kwargs))
    worker._open("torch", "m", 2, "cuda")
    assert asked == {"device": "cuda"}
    monkeypatch.undo()
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    tiny_model = tiny_bert.save_classifier(tmp_path / "model")
    with pytest.raises(ConfigError, match="torch.cuda.is_available"):
        TorchSession(tiny_model, device="cuda")
    with pytest.raises(ConfigError, match="CPU only"):
        TorchSession(tiny_model, int8=True, device="cuda")
    with pytest.raises(ConfigError, match="allowed: cpu, cuda"):
        TorchSession(tiny_model, device="tpu")


class _FakeNvmlProcess:
    def __init__(self, pid: int, used: int | None) -> None:
        self.pid, self.usedGpuMemory = pid, used


def _fake_nvml(monkeypatch, processes_per_device: list[list[_FakeNvmlProcess]]) -> dict:
    import sys
    import types

    calls = {"init": 0, "shutdown": 0}
    module = types.ModuleType("pynvml")
    module.nvmlInit = lambda: calls.__setitem__("init", calls["init"] + 1)
    module.nvmlShutdown = lambda: calls.__setitem__("shutdown", calls["shutdown"] + 1)
    module.nvmlDeviceGetCount = lambda: len(processes_per_device)
    module.nvmlDeviceGetHandleByIndex = lambda index: index
    module.nvmlDeviceGetComputeRunningProcesses = lambda handle: processes_per_device[handle]
    monkeypatch.setitem(sys.modules, "pynvml", module)
    return calls


def test_cuda_memory_sums_this_process_over_devices_from_nvml(monkeypatch):
    import os

    from tinybert_edge.benchmarks.memory import MIB, cuda_memory_mb

    me, other = os.getpid(), os.getpid() + 1
    calls = _fake_nvml(monkeypatch, [[_FakeNvmlProcess(other, 900 * MIB), _FakeNvmlProcess(me, 300 * MIB)],
                                     [_FakeNvmlProcess(me, 20 * MIB)]])
    memory = cuda_memory_mb("onnxruntime")
    assert memory == {"allocator_peak_mb": None, "process_mb": 320.0, "note": None}
    assert calls == {"init": 1, "shutdown": 1}

    _fake_nvml(monkeypatch, [[_FakeNvmlProcess(other, 900 * MIB)]])
    memory = cuda_memory_mb("onnxruntime")
    assert memory["process_mb"] is None and "PID namespace" in memory["note"]


def test_cuda_memory_without_nvml_says_what_to_install(monkeypatch):
    import sys

    from tinybert_edge.benchmarks.memory import cuda_memory_mb

    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml now raises ImportError
    memory = cuda_memory_mb("onnxruntime")
    assert memory["process_mb"] is None and "pip install nvidia-ml-py" in memory["note"]


def test_device_memory_column_appears_only_when_a_row_has_it():
    from tinybert_edge.benchmarks.report import render_comparison_markdown
    from tinybert_edge.benchmarks.rows import device_memory_mb

    stats = {"p50_ms": 1.0, "p90_ms": 1.0, "p99_ms": 1.0}
    cpu = {"name": "a", "backend": "torch", "precision": "fp32", "latency": {"8": {"stats": stats}}}
    gpu = {"name": "b (cuda)", "backend": "torch", "precision": "fp32", "latency": {
        "8": {"stats": stats, "device_memory": {"allocator_peak_mb": 50.0, "process_mb": None}},
        "16": {"stats": stats, "device_memory": {"allocator_peak_mb": 70.0, "process_mb": 400.0}}}}
    assert device_memory_mb(cpu) is None and device_memory_mb(gpu) == 400.0
    assert "device MB" not in render_comparison_markdown([cpu])
    table = render_comparison_markdown([cpu, gpu])
    assert "device MB" in table and "| 400 |" in table.replace(".0 |", " |")


class _FakeOrtSession:
    def __init__(self, active: list[str]) -> None:
        self.session = type("Ort", (), {"get_providers": lambda _self: list(active)})()


def test_worker_asks_for_the_cuda_provider_first_and_refuses_a_silent_cpu_fallback(monkeypatch):
    from tinybert_edge.benchmarks import worker
    from tinybert_edge.runtime import sessions

    asked = {}

    def fake_open(backend, path, threads, **kwargs):
        asked.update(kwargs, backend=backend)
        return _FakeOrtSession(active)

    monkeypatch.setattr(sessions, "open_session", fake_open)
    active = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert isinstance(worker._open("onnxruntime", "m.onnx", 2, "cuda"), _FakeOrtSession)
    assert asked["backend"] == "onnxruntime" and asked["providers"][0] == "CUDAExecutionProvider"

    active = ["CPUExecutionProvider"]  # what ONNX Runtime does when the CUDA libraries are missing
    with pytest.raises(BenchmarkError, match="fell back"):
        worker._open("onnxruntime", "m.onnx", 2, "cuda")
    with pytest.raises(BenchmarkError, match="CPU only"):
        worker._open("litert", "m.tflite", 2, "cuda")


# --- numbers next to the teacher ------------------------------------------------------------------------------------


def _point(seq: int, batch: int, threads: int, p50: float, rss: float = 100.0, cold: float = 50.0,
           fraction: float | None = None, error: str | None = None) -> dict:
    return {"seq_len": seq, "batch_size": batch, "threads": threads, "error": error,
            "stats": None if error else {"p50_ms": p50, "p90_ms": p50, "p99_ms": p50},
            "peak_rss_mb": rss, "rss_increase_mb": rss / 2, "cold_start_ms": cold, "load_ms": cold / 2,
            "first_inference_ms": cold / 2, "import_ms": 1.0,
            "roofline": None if fraction is None else {"fraction_of_roofline": fraction, "achieved_gops": 1.0}}


def _rows() -> list[dict]:
    teacher = {"name": TEACHER_NAME, "role": "teacher", "precision": "fp32", "size_bytes": 800, "accuracy": 0.8,
               "sweep": [_point(128, 1, 2, 40.0, rss=400, cold=400, fraction=0.5), _point(128, 8, 2, 200.0)]}
    onnx = {"name": "student · ONNX int8", "role": "student", "precision": "int8", "size_bytes": 100,
            "accuracy": 0.78, "sweep": [_point(128, 1, 2, 10.0, rss=100, cold=80, fraction=0.3),
                                        _point(128, 8, 2, 0.0, error="worker killed by SIGKILL")]}
    tflite = {"name": "student · TFLite int8", "role": "student", "precision": "int8", "size_bytes": 200,
              "accuracy": 0.79, "sweep": [_point(128, 1, 2, 20.0)]}
    fp32 = {"name": "student · ONNX fp32", "role": "student", "precision": "fp32", "size_bytes": 400,
            "accuracy": 0.79, "sweep": [_point(128, 1, 2, 5.0)]}  # faster, but not int8: not the headline row
    return [teacher, onnx, tflite, fp32]


def test_speedup_at_every_point_is_against_the_teacher_at_that_point():
    rows = _rows()
    harness.attach_point_speedups(rows, TEACHER_NAME)
    onnx = rows[1]["sweep"]
    assert onnx[0]["speedup_vs_teacher"] == pytest.approx(40.0 / 10.0)
    assert onnx[1]["speedup_vs_teacher"] is None  # the failed point has no speedup
    assert rows[0]["sweep"][1]["speedup_vs_teacher"] == pytest.approx(1.0)
    assert rows[2]["sweep"][0]["speedup_vs_teacher"] == pytest.approx(2.0)


def test_headline_metrics_use_the_fastest_student_int8_and_the_teacher_as_baseline():
    arm = [{"difference": {"max_abs_diff": 0.02, "argmax_agreement": 1.0}},
           {"difference": {"max_abs_diff": 0.05, "argmax_agreement": 0.9375}}, {"difference": None, "error": "x"}]
    metrics = harness.harness_metrics(_rows(), TEACHER_NAME, arm)
    by_start = {name.split(" @ ")[0].split(" (")[0]: m for name, m in metrics.items()}

    best = next(m for name, m in metrics.items() if name.startswith("best student int8 p50"))
    assert "student · ONNX int8" in next(n for n in metrics if n.startswith("best student int8 p50"))
    assert (best.value, best.baseline) == (10.0, 40.0)
    assert by_start["speedup of best student int8 vs teacher fp32"].value == pytest.approx(4.0)
    assert by_start["size reduction of best student int8 vs teacher fp32"].value == pytest.approx(8.0)
    assert by_start["memory reduction"].value == pytest.approx(4.0)
    assert by_start["accuracy retained by best student int8"].value == pytest.approx(0.78 / 0.8)
    assert by_start["cold-start ratio teacher fp32 / best student int8"].value == pytest.approx(5.0)
    roofline = by_start["fraction of the GEMM roofline, best student int8"]
    assert (roofline.value, roofline.baseline) == (0.3, 0.5)
    arm_diff = next(m for n, m in metrics.items() if "max |logit diff|" in n)
    arm_agree = next(m for n, m in metrics.items() if "argmax agreement" in n)
    assert arm_diff.value == pytest.approx(0.05) and arm_agree.value == pytest.approx(0.9375)
    assert arm_agree.met is False  # below the 0.99 target: reported, not hidden


def test_without_a_measured_teacher_there_are_no_speed_metrics_only_what_was_measured():
    rows = _rows()
    rows[0]["sweep"] = [_point(128, 1, 2, 0.0, error="worker exited with status 1")]
    metrics = harness.harness_metrics(rows, TEACHER_NAME, [])
    assert metrics == {}


# --- the report -----------------------------------------------------------------------------------------------------


def _report(arm_rows: list[dict]) -> dict:
    rows = _rows()
    rows.append({"name": "teacher · TFLite int8", "role": "teacher", "precision": "int8", "sweep": [],
                 "error": "not built: ExportError: litert-torch could not convert"})
    harness.attach_point_speedups(rows, TEACHER_NAME)
    return {"rows": rows, "teacher": TEACHER_NAME, "headline_point": dict(harness.HEADLINE),
            "cuda": {"note": "skipped: no CUDA target on this machine (torch.cuda.is_available() is False)"},
            "arm": {"note": "the student's int8 artifacts under QEMU", "rows": arm_rows}}


def test_sections_keep_emulated_arm_rows_apart_and_say_why_rows_failed():
    arm_rows = [
        {"name": f"student · TFLite int8 · {harness.ARM_LABEL}", "error": None,
         "result": {"runtime": "ai-edge-litert 2.3.0", "seq_len": 128, "bucket": 128, "stats": {"p50_ms": 900.0}},
         "difference": {"rows": 16, "max_abs_diff": 0.01, "mean_abs_diff": 0.001, "argmax_agreement": 1.0,
                        "min_cosine": 0.9999}},
        {"name": f"student · ONNX int8 · {harness.ARM_LABEL}", "result": {"stats": None}, "difference": None,
         "error": "no finished arm64 root filesystem at '/x'; build it with: sudo scripts/build_arm64_rootfs.sh /x"},
    ]
    text = harness.render_harness_sections(_report(arm_rows))
    native, _, emulated = text.partition(f"## {harness.ARM_LABEL}")
    assert harness.ARM_LABEL not in native  # no emulated row among the native tables
    assert "900" in emulated and "0.01" in emulated and "build_arm64_rootfs.sh" in emulated
    assert "`cuda`: skipped: no CUDA target" in native
    assert "teacher · TFLite int8: not built: ExportError" in native
    assert "4.00×" in native  # the ONNX int8 speedup at 128/1/2 in the every-point table
    assert "5.00×" in native  # its cold-start ratio against the teacher


def test_slim_report_drops_raw_samples_but_keeps_statistics():
    report = _report([{"name": "a", "result": {"samples_ms": [1.0]}, "reference": {"samples_ms": [2.0]}}])
    report["rows"][1]["sweep"][0]["samples_ms"] = [1.0, 2.0]
    slim = harness.slim_report(report)
    assert "samples_ms" not in slim["rows"][1]["sweep"][0] and slim["rows"][1]["sweep"][0]["stats"]["p50_ms"] == 10.0
    assert "samples_ms" not in slim["arm"]["rows"][0]["result"]
    assert report["rows"][1]["sweep"][0]["samples_ms"] == [1.0, 2.0]  # the full report is untouched


def test_arm_row_says_why_when_the_root_filesystem_is_missing(tmp_path):
    artifact = tmp_path / "m.onnx"
    artifact.write_bytes(b"not an onnx model")
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, input_ids=np.ones((2, 8), np.int64), attention_mask=np.ones((2, 8), np.int64))
    from tinybert_edge.benchmarks.arm import RunnerSettings

    rows = harness.arm_rows({"student · ONNX int8": artifact}, inputs, tmp_path / "no-rootfs",
                            RunnerSettings(min_iterations=1, min_seconds=0.0, warmup=0, timeout_s=120))
    assert len(rows) == 1 and rows[0]["emulated"] is True and rows[0]["difference"] is None
    assert rows[0]["name"].endswith(harness.ARM_LABEL)
    assert "build_arm64_rootfs.sh" in rows[0]["error"]


# --- failing targets become rows --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory) -> Path:
    return tiny_bert.save_classifier(tmp_path_factory.mktemp("teacher"))


def test_an_unloadable_artifact_and_a_missing_runtime_are_rows_that_say_why(tiny_teacher, tmp_path, monkeypatch):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x00 this is not a protobuf")
    tflite = tmp_path / "model.tflite"
    tflite.write_bytes(b"TFL3")
    # A runtime that is not installed, as the measuring subprocess sees it: the LiteRT packages fail to import.
    shadow = tmp_path / "shadow"
    for package in ("ai_edge_litert", "tflite_runtime"):
        (shadow / package).mkdir(parents=True)
        (shadow / package / "__init__.py").write_text("raise ImportError('not installed (test)')\n")
    monkeypatch.setenv("PYTHONPATH", str(shadow))
    targets = [Target("student · ONNX int8", "student", "onnxruntime", corrupt, "int8"),
               Target("student · TFLite int8", "student", "litert", tflite, "int8"),
               Target("student · PyTorch fp32", "student", "torch", tiny_teacher, "fp32")]
    config = BenchConfig(sequence_lengths=(16,), warmup=0, min_iterations=2, min_seconds=0.0, roofline=False,
                         timeout_s=120)
    inputs = {16: {"input_ids": np.ones((4, 16), np.int64), "attention_mask": np.ones((4, 16), np.int64)}}
    rows = bench(targets, inputs, config, progress=False)
    by_name = {row["name"]: row for row in rows}
    assert "cannot load" in by_name["student · ONNX int8"]["error"]
    assert "tinybert-edge[tflite]" in by_name["student · TFLite int8"]["error"]  # the pip line that fixes it
    healthy = by_name["student · PyTorch fp32"]
    assert healthy["error"] is None and healthy["latency"]["16"]["stats"]["n"] >= 2


def test_operator_profiles_are_a_section_of_the_report_with_the_litert_reason():
    from tinybert_edge.benchmarks.op_profile import LITERT_UNAVAILABLE

    share = {"gemm": 0.5, "attention": 0.2, "layernorm_gelu": 0.1, "quantize": 0.05, "other": 0.05, "overhead": 0.1}
    report = _report([])
    report["op_profile"] = {
        "student · ONNX int8": {"available": True, "points": [
            {"batch_size": 8, "seq_len": 128, "threads": 2, "wall_ms": 12.5, "share": share,
             "op_ms": {"DynamicQuantizeMatMul": 6.0, "QAttention": 2.5}}]},
        "student · TFLite int8": {"available": False, "reason": LITERT_UNAVAILABLE}}
    text = harness.render_harness_sections(report)
    section = text.partition("## Where the time goes")[2].partition(f"## {harness.ARM_LABEL}")[0]
    assert "| 8 | 128 | 12.50 | 50.0% | 20.0% | 10.0% | 5.0% | 5.0% | 10.0% | DynamicQuantizeMatMul 6.00" in section
    assert LITERT_UNAVAILABLE in section
    assert "## Where the time goes" not in harness.render_harness_sections(_report([]))
