"""The benchmark harness: statistics, run rules, suite result files, reports, and real subprocess measurements.

No test asserts a timing threshold: these run on shared machines where latency is whatever it is.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tinybert_edge.benchmarks.runner import bench
from tinybert_edge.benchmarks.config import BenchConfig, Target
from tinybert_edge.benchmarks.environment import environment
from tinybert_edge.benchmarks.latency import Measurement, measure
from tinybert_edge.benchmarks.readme import END_MARKER, START_MARKER, render_markdown_table, replace_section
from tinybert_edge.benchmarks.plots import pareto_front, plot_accuracy_vs_latency, plot_latency_vs_sequence_length
from tinybert_edge.benchmarks.report import compare_to_teacher, render_comparison_markdown
from tinybert_edge.benchmarks.results import Metric, load_suite_results, write_suite_results
from tinybert_edge.benchmarks.stats import LatencyStats, paired_p50_ratio_interval
from tinybert_edge.errors import BenchmarkError, ConfigError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Short enough for a 2-core shared machine; the rules (min iterations AND min seconds) are what is tested.
QUICK = BenchConfig(sequence_lengths=(16,), batch_size=2, threads=1, warmup=2, min_iterations=7, min_seconds=0.2, timeout_s=300)


# --- statistics -------------------------------------------------------------------------------------------------


def test_stats_on_known_samples_match_hand_computed_percentiles():
    stats = LatencyStats.from_samples([float(v) for v in range(1, 101)], batch_size=4)
    # Linear interpolation between closest ranks: rank = q/100 * (n - 1), 0-based.
    assert stats.p50_ms == pytest.approx(50.5)  # between 50 and 51
    assert stats.p90_ms == pytest.approx(90.1)
    assert stats.p95_ms == pytest.approx(95.05)
    assert stats.p99_ms == pytest.approx(99.01)  # 99 + 0.01 * (100 - 99)
    assert stats.mean_ms == pytest.approx(50.5)
    assert stats.stdev_ms == pytest.approx(math.sqrt(sum((v - 50.5) ** 2 for v in range(1, 101)) / 99))
    assert (stats.min_ms, stats.max_ms, stats.n) == (1.0, 100.0, 100)
    assert stats.throughput_per_s == pytest.approx(4 * 1000 / 50.5)
    assert len(stats.samples_ms) == 100


def test_stats_of_few_samples_and_numbers_stay_numbers():
    stats = LatencyStats.from_samples([2.0, 4.0])
    assert stats.p50_ms == 3.0
    assert stats.p99_ms == pytest.approx(3.98)
    single = LatencyStats.from_samples([5.0])
    assert single.stdev_ms == 0.0 and single.p99_ms == 5.0
    assert all(isinstance(v, (int, float)) for v in stats.summary().values())


@pytest.mark.parametrize("samples", [[], [1.0, float("nan")], [-1.0]])
def test_stats_refuse_bad_samples(samples):
    with pytest.raises(BenchmarkError):
        LatencyStats.from_samples(samples)


# --- run rules --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("sequence_lengths", (), "non-empty tuple"),
        ("sequence_lengths", (64, 64), "distinct"),
        ("sequence_lengths", (0,), "integers >= 1"),
        ("batch_size", 0, ">= 1"),
        ("threads", 1.5, ">= 1"),
        ("warmup", -1, ">= 0"),
        ("min_iterations", 0, ">= 1"),
        ("min_seconds", -0.1, ">= 0.0"),
        ("min_seconds", float("nan"), "finite"),
        ("timeout_s", 0, "> 0.0"),
    ],
)
def test_bench_config_errors_name_field_value_and_allowed(field, value, allowed):
    with pytest.raises(ConfigError) as caught:
        BenchConfig(**{field: value})
    message = str(caught.value)
    assert f"BenchConfig.{field}" in message and repr(value) in message and allowed in message


def test_bench_config_defaults_and_presets_are_valid():
    config = BenchConfig()
    assert (config.sequence_lengths, config.batch_size, config.threads) == ((64, 128), 1, 2)
    assert (config.warmup, config.min_iterations, config.min_seconds, config.timeout_s) == (10, 50, 3.0, 600)
    assert BenchConfig(sequence_lengths=[32, 64]).sequence_lengths == (32, 64)
    assert BenchConfig.mlperf_like().min_iterations == 1024
    assert BenchConfig.quick().min_seconds < 1


def test_target_validation():
    with pytest.raises(ConfigError, match="Target.backend = 'tensorrt'.*allowed: torch, torch-int8, onnxruntime, litert"):
        Target("x", "student", "tensorrt", Path("m"), "fp32")
    with pytest.raises(ConfigError, match="Target.role"):
        Target("x", "pupil", "torch", Path("m"), "fp32")
    with pytest.raises(ConfigError, match="Target.device = 'cuda' is not allowed with backend 'litert'"):
        Target("x", "student", "litert", Path("m"), "int8", device="cuda")
    assert Target("x", "student", "torch", "m", "fp32").path == Path("m")


# --- suite result files -----------------------------------------------------------------------------------------


def test_metric_ratio_and_met_follow_the_direction():
    faster = Metric(value=5.0, unit="ms", direction="lower_is_better", baseline=20.0, target=10.0)
    assert faster.ratio == 0.25 and faster.met is True
    slower = Metric(value=12.0, unit="ms", direction="lower_is_better", target=10.0)
    assert slower.ratio is None and slower.met is False
    accuracy = Metric(value=0.91, unit="fraction", direction="higher_is_better", baseline=0.93, target=0.95)
    assert accuracy.ratio == pytest.approx(0.91 / 0.93) and accuracy.met is False
    assert Metric(value=0.95, unit="fraction", target=0.95).met is True  # the target itself counts as met
    assert Metric(value=3.0, unit="x").met is None
    assert Metric(value=3.0, unit="x", baseline=0).ratio is None


def test_a_ratio_interval_decides_met_by_what_the_measurement_can_show():
    # Ours 3% slower on the pooled p50s, but the interval reaches below 1: not shown slower, so met.
    tie = Metric(10.3, "ms", "lower_is_better", baseline=10.0, target=10.0, ratio_interval=(0.97, 1.08))
    assert tie.ratio == pytest.approx(1.03) and tie.met is True
    # The whole interval above 1: shown slower, even though the point estimate is the same.
    slower = Metric(10.3, "ms", "lower_is_better", baseline=10.0, target=10.0, ratio_interval=(1.01, 1.05))
    assert slower.met is False
    # Higher is better: met unless the interval lies wholly below target / baseline (here 0.5).
    assert Metric(0.9, "x", "higher_is_better", baseline=2.0, target=1.0, ratio_interval=(0.4, 0.49)).met is False
    assert Metric(0.9, "x", "higher_is_better", baseline=2.0, target=1.0, ratio_interval=(0.4, 0.5)).met is True
    # Written only where present, and read back the same.
    assert "ratio_interval" not in Metric(1.0, "ms", baseline=1.0).to_dict()
    data = tie.to_dict()
    assert data["ratio_interval"] == [0.97, 1.08] and Metric.from_dict(data) == tie


@pytest.mark.parametrize("interval", [(1.1, 0.9), (0.9, float("nan")), ("0.9", 1.1), (0.9,), (True, 1.0)])
def test_metric_refuses_bad_ratio_intervals(interval):
    with pytest.raises(ConfigError, match="Metric.ratio_interval"):
        Metric(1.0, "ms", "lower_is_better", baseline=1.0, target=1.0, ratio_interval=interval)
    with pytest.raises(ConfigError, match="non-zero baseline"):
        Metric(1.0, "ms", "lower_is_better", target=1.0, ratio_interval=(0.9, 1.1))


def test_paired_interval_cancels_drift_that_both_sides_share():
    rng = np.random.default_rng(3)
    drift = rng.uniform(0.7, 1.4, size=12)  # the machine's speed, round by round: a 2x swing
    base = [d * rng.normal(10.0, 0.2, size=200) for d in drift]
    ours = [d * rng.normal(11.0, 0.2, size=200) for d in drift]  # truly 10% slower
    low, high = paired_p50_ratio_interval(ours, base)
    assert low <= 1.1 <= high and high - low < 0.03 and low > 1.0
    same = paired_p50_ratio_interval(base, base)
    assert same == (1.0, 1.0)
    # Unpaired (the baseline's rounds shuffled) the same data cannot resolve the 10%.
    shuffled = [base[i] for i in rng.permutation(12)]
    low_u, high_u = paired_p50_ratio_interval(ours, shuffled)
    assert high_u - low_u > 5 * (high - low)


def test_paired_interval_needs_enough_rounds_and_matching_pairs():
    assert paired_p50_ratio_interval([[1.0]] * 4, [[1.0]] * 4) is None
    with pytest.raises(BenchmarkError, match="differ in number: 5 for ours, 6"):
        paired_p50_ratio_interval([[1.0]] * 5, [[1.0]] * 6)
    with pytest.raises(BenchmarkError, match="no timed call"):
        paired_p50_ratio_interval([[1.0]] * 4 + [[]], [[1.0]] * 5)
    with pytest.raises(BenchmarkError, match="confidence = 1.5"):
        paired_p50_ratio_interval([[1.0]] * 5, [[1.0]] * 5, confidence=1.5)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"value": "12 ms"}, "value"), ({"value": float("inf")}, "value"), ({"direction": "up"}, "direction"),
     ({"baseline": "a"}, "baseline")],
)
def test_metric_refuses_bad_fields(kwargs, field):
    with pytest.raises(ConfigError, match=f"Metric.{field}"):
        Metric(**{"value": 1.0, "unit": "ms", **kwargs})


def test_write_suite_results_schema(tmp_path):
    metrics = {
        "student_p50_ms_128": Metric(4.0, "ms", "lower_is_better", baseline=20.0, target=10.0),
        "accuracy_retained": Metric(0.97, "fraction", "higher_is_better", target=0.96),
    }
    path = write_suite_results("harness", metrics, "pytest", extra={"note": np.float32(1.5)}, results_dir=tmp_path)
    assert path == tmp_path / "harness.json"
    data = json.loads(path.read_text())
    assert data["schema_version"] == 1 and data["suite"] == "harness" and data["command"] == "pytest"
    assert {"timestamp", "git", "environment", "metrics", "extra"} <= set(data)
    assert data["metrics"]["student_p50_ms_128"] == {
        "value": 4.0, "unit": "ms", "baseline": 20.0, "ratio": 0.2, "target": 10.0,
        "direction": "lower_is_better", "met": True,
    }
    assert data["extra"] == {"note": 1.5}
    assert load_suite_results(path)["metrics"]["accuracy_retained"]["met"] is True
    assert list(tmp_path.iterdir()) == [path]


def test_write_suite_results_rejects_unknown_suite(tmp_path):
    with pytest.raises(ConfigError, match="suite = 'speed'.*allowed: pipeline, distill"):
        write_suite_results("speed", {"a": Metric(1.0, "x")}, "pytest", results_dir=tmp_path)


def test_write_suite_results_leaves_no_partial_file_on_failure(tmp_path):
    good = write_suite_results("bundle", {"size_mb": Metric(10.0, "MB", "lower_is_better")}, "first", results_dir=tmp_path)
    before = good.read_text()
    with pytest.raises(TypeError):
        write_suite_results("bundle", {"size_mb": Metric(9.0, "MB")}, "second", extra={"bad": object()}, results_dir=tmp_path)
    assert good.read_text() == before  # the previous complete file is still there
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle.json"]  # and no temporary sibling


def test_readme_table_is_generated_from_result_files(tmp_path):
    write_suite_results("sst2", {"accuracy": Metric(0.9, "fraction", target=0.95, baseline=0.93)}, "c", results_dir=tmp_path)
    table = render_markdown_table(sorted(tmp_path.glob("*.json")))
    assert "| sst2 | accuracy | 0.9 | fraction | 0.93 | 0.968 | 0.95 | higher | ❌ |" in table
    assert "95% confidence interval" not in table  # the note on intervals comes only with a metric that has one
    write_suite_results("converters", {"p50": Metric(10.3, "ms", "lower_is_better", baseline=10.0, target=10.0,
                                                     ratio_interval=(0.97, 1.08))}, "c", results_dir=tmp_path)
    table = render_markdown_table(sorted(tmp_path.glob("*.json")))
    assert "| converters | p50 | 10.3 | ms | 10 | 1.03 (0.97–1.08) | 10 | lower | ✅ |" in table
    assert "95% confidence interval" in table
    readme = f"# T\n\n{START_MARKER}\nold typed table\n{END_MARKER}\nrest\n"
    updated = replace_section(readme, table)
    assert "old typed table" not in updated and updated.endswith(f"{END_MARKER}\nrest\n")
    assert replace_section(updated, table) == updated
    with pytest.raises(ConfigError, match="bench:start"):
        replace_section("# no markers\n", table)


def test_environment_records_cpu_versions_and_threads():
    env = environment()
    assert env["logical_cores"] >= 1
    assert set(env["cpu_flags"]) >= {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp"}
    assert "numpy" in env["versions"] and "torch" in env["versions"]
    assert "OMP_NUM_THREADS" in env["thread_env"]
    assert env["git"] is None or len(env["git"]["revision"]) == 40


# --- report -----------------------------------------------------------------------------------------------------


def _measurement(seq_len: int, p50: float, peak: float, error: str | None = None) -> dict:
    m = Measurement(backend="torch", path="p", seq_len=seq_len, batch_size=1, threads=1, error=error)
    if error is None:
        m.samples_ms = [p50 * 0.9, p50, p50 * 1.1]
        m.stats = LatencyStats.from_samples(m.samples_ms)
        m.peak_rss_mb = peak
    return m.to_dict()


def _rows() -> list[dict]:
    def row(name, role, backend, precision, size, accuracy, p50s, peak, error=None):
        latency = {} if error else {str(n): _measurement(n, p, peak) for n, p in p50s.items()}
        return {"name": name, "role": role, "backend": backend, "precision": precision, "path": name,
                "size_bytes": size, "params": None, "accuracy": accuracy, "latency": latency, "error": error}

    return [
        row("teacher · torch fp32", "teacher", "torch", "fp32", 400 * 2**20, 0.92, {64: 40.0, 128: 80.0}, 800.0),
        row("student · ONNX int8", "student", "onnxruntime", "int8", 15 * 2**20, 0.90, {64: 4.0, 128: 8.0}, 200.0),
        row("student · torch fp32", "student", "torch", "fp32", 55 * 2**20, 0.91, {64: 10.0, 128: 20.0}, 400.0),
        row("student · LiteRT int8", "student", "litert", "int8", None, None, {}, None, error="ModelError: bad | file"),
    ]


def test_compare_to_teacher_ratios_from_the_same_run():
    rows = compare_to_teacher(_rows(), "teacher · torch fp32")
    teacher, onnx, _, litert = rows
    assert teacher["speedup"] == {"64": 1.0, "128": 1.0}
    assert onnx["speedup"] == {"64": pytest.approx(10.0), "128": pytest.approx(10.0)}
    assert onnx["size_reduction"] == pytest.approx(400 / 15)
    assert onnx["memory_reduction"] == pytest.approx(4.0)
    assert onnx["accuracy_retained"] == pytest.approx(0.90 / 0.92)
    assert litert["speedup"] == {"64": None, "128": None} and litert["accuracy_retained"] is None
    assert "speedup" not in _rows()[0]  # the input rows are not modified
    with pytest.raises(ConfigError, match="available: teacher"):
        compare_to_teacher(_rows(), "bert")


def test_comparison_markdown_shows_numbers_and_error_text():
    table = render_comparison_markdown(compare_to_teacher(_rows(), "teacher · torch fp32"))
    lines = table.splitlines()
    assert lines[0].startswith("| model | backend | precision | size MB | accuracy | p50 / p90 / p99 ms @ 64")
    assert len(lines) == 2 + 4
    assert all(line.count(" | ") == lines[0].count(" | ") for line in lines[2:] if "\\|" not in line)
    onnx = next(line for line in lines if "ONNX int8" in line)
    assert "10.00×" in onnx and "26.67×" in onnx and "97.8%" in onnx
    assert "error: ModelError: bad \\| file" in table  # the error text, its pipe escaped


def test_pareto_front_keeps_points_nobody_beats():
    points = [(80.0, 92.0), (8.0, 90.0), (20.0, 91.0), (30.0, 89.0), (8.0, 85.0)]
    assert sorted(pareto_front(points)) == [0, 1, 2]


def test_plots_are_png_files(tmp_path):
    rows = compare_to_teacher(_rows(), "teacher · torch fp32")
    scatter = plot_accuracy_vs_latency(rows, tmp_path / "accuracy_vs_latency.png", seq_len=128)
    lines = plot_latency_vs_sequence_length(rows, tmp_path / "latency_vs_seq.png")
    for path in (scatter, lines):
        assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["accuracy_vs_latency.png", "latency_vs_seq.png"]
    empty = plot_accuracy_vs_latency([], tmp_path / "empty.png")
    assert empty.read_bytes()[:8] == PNG_SIGNATURE


# --- real subprocess measurements ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=64, num_labels=2,
    )
    folder = tmp_path_factory.mktemp("tiny-bert")
    transformers.BertForSequenceClassification(config).save_pretrained(folder, safe_serialization=True)
    return folder


def _pool(rows: int, seq_len: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    mask = np.ones((rows, seq_len), dtype=np.int64)
    mask[:, seq_len // 2 :] = rng.integers(0, 2, (rows, seq_len - seq_len // 2))
    return {"input_ids": rng.integers(1, 100, (rows, seq_len)), "attention_mask": mask,
            "token_type_ids": np.zeros((rows, seq_len), dtype=np.int64)}


def test_bench_measures_in_subprocesses_and_survives_a_missing_target(tiny_bert, tmp_path):
    targets = [
        Target("teacher · torch fp32", "teacher", "torch", tiny_bert, "fp32", accuracy=0.5, params=1000),
        Target("missing", "student", "torch", tmp_path / "nope", "fp32"),
    ]
    rows = bench(targets, {16: _pool(5, 16)}, QUICK, progress=False)
    good, missing = rows
    assert good["error"] is None and good["size_bytes"] > 0
    m = Measurement.from_dict(good["latency"]["16"])
    assert m.error is None and m.ok
    assert len(m.samples_ms) >= QUICK.min_iterations and m.stats.n == len(m.samples_ms)
    assert m.timed_s >= QUICK.min_seconds  # the rule is min_iterations AND min_seconds
    assert (m.seq_len, m.batch_size, m.threads) == (16, 2, 1)
    assert m.peak_rss_mb > 0 and m.idle_rss_mb > 0 and m.rss_increase_mb is not None
    assert m.cold_start_ms >= m.load_ms > 0
    assert good["latency"]["16"]["stats"]["p99_ms"] >= good["latency"]["16"]["stats"]["p50_ms"]
    assert missing["error"] == f"'{tmp_path / 'nope'}' does not exist" and missing["latency"] == {}
    assert "does not exist" in render_comparison_markdown(rows)
    json.dumps(rows, allow_nan=False)  # rows are plain JSON


def test_a_crashing_target_becomes_an_error_with_the_last_stderr_line(tmp_path):
    pytest.importorskip("onnxruntime")
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"this is not an onnx graph")
    m = measure("onnxruntime", broken, _pool(2, 8), QUICK)
    assert not m.ok and m.stats is None
    assert m.error.startswith("tinybert_edge.errors.ModelError: ONNX Runtime")


def test_measure_refuses_inputs_of_the_wrong_shape(tmp_path):
    with pytest.raises(ConfigError, match="2-D"):
        measure("torch", tmp_path, {"input_ids": np.zeros((4,), dtype=np.int64)}, QUICK)
    with pytest.raises(ConfigError, match="no inputs for sequence lengths \\[16\\]"):
        bench([], {32: _pool(2, 32)}, QUICK, progress=False)


def _fake_worker(tmp_path: Path, monkeypatch, body: str) -> None:
    """Make `measure` start a stand-in worker module with the given body instead of the real one."""
    (tmp_path / "fake_bench_worker.py").write_text(body)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setattr("tinybert_edge.benchmarks.latency.WORKER_MODULE", "fake_bench_worker")


def test_a_hanging_worker_times_out_into_an_error(tmp_path, monkeypatch):
    _fake_worker(tmp_path, monkeypatch, "import time\ntime.sleep(120)\n")
    config = BenchConfig(sequence_lengths=(8,), timeout_s=1.0)
    m = measure("torch", tmp_path, _pool(2, 8), config)
    assert m.error == "timed out after 1 s (BenchConfig.timeout_s)" and m.samples_ms == []


def test_a_worker_killed_by_a_signal_becomes_an_error(tmp_path, monkeypatch):
    _fake_worker(tmp_path, monkeypatch, "import os, signal, sys\nprint('loading', file=sys.stderr, flush=True)\n"
                                        "os.kill(os.getpid(), signal.SIGKILL)\n")
    m = measure("torch", tmp_path, _pool(2, 8), QUICK)
    assert m.error == "worker killed by SIGKILL: loading"


def test_cuda_target_without_a_cuda_device_is_skipped(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA")
    graph = tmp_path / "model.onnx"
    graph.write_bytes(b"not loaded: the device check comes first")
    target = Target("student · ONNX fp32 CUDA", "student", "onnxruntime", graph, "fp32", device="cuda")
    (row,) = bench([target], {8: _pool(2, 8)}, BenchConfig(sequence_lengths=(8,), timeout_s=300), progress=False)
    assert row["error"] == "skipped: no CUDA device"
    assert row["latency"]["8"]["error"] == "skipped: no CUDA device"
