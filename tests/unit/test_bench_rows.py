"""Typed benchmark rows, the one place rounds are pooled, and the command line the suites share.

No timing: every latency here is a number the test chose."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tinybert_edge.benchmarks.latency import Measurement
from tinybert_edge.benchmarks.report import compare_to_teacher, render_comparison_markdown
from tinybert_edge.benchmarks.results import Metric, load_suite_results
from tinybert_edge.benchmarks.rounds import pool_measurements, pool_rounds, pooled_stats, rotated, round_p50s
from tinybert_edge.benchmarks.rows import (TEACHER_NAME, Row, device_memory_mb, latency_ms, peak_rss_mb,
                                           sequence_lengths, sweep_point)
from tinybert_edge.benchmarks.stats import LatencyStats, paired_p50_ratio_interval
from tinybert_edge.benchmarks.suites.command_line import SuiteOutcome, suite_main
from tinybert_edge.errors import DataError

COMMITTED_REPORT = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "harness" / "report.json"


def _measurement(seq_len: int, samples: list[float], threads: int = 2, peak: float = 300.0,
                 error: str | None = None) -> dict:
    m = Measurement(backend="onnxruntime", path="m.onnx", seq_len=seq_len, batch_size=1, threads=threads, error=error)
    if error is None:
        m.samples_ms = samples
        m.stats = LatencyStats.from_samples(samples)
        m.peak_rss_mb = peak
    return m.to_dict()


def _row(name: str = "student · ONNX int8", role: str = "student", accuracy: float | None = 0.9,
         p50s: dict[int, float] | None = None, **fields) -> Row:
    p50s = {64: 4.0, 128: 8.0} if p50s is None else p50s
    latency = {str(n): _measurement(n, [p * 0.9, p, p * 1.3]) for n, p in p50s.items()}
    sweep = list(latency.values()) + [_measurement(128, [p50s.get(128, 1.0) * 2] * 3, threads=1)]
    return Row(name=name, role=role, backend="onnxruntime", precision="int8", path=f"/runs/{name}",
               size_bytes=15 * 2**20, params=1_000_000, metrics={} if accuracy is None else {"accuracy": accuracy},
               latency=latency, sweep=sweep, **fields)


# --- the row and its JSON form ----------------------------------------------------------------------------------------


def test_a_row_reads_back_from_its_json_as_the_same_row_and_the_same_json():
    row = _row(metrics_n=40, extra={"agreement_with_student": 0.995, "bert_shape": None})
    teacher = _row(TEACHER_NAME, "teacher", accuracy=0.92, p50s={64: 40.0, 128: 80.0})
    for original in (row, row.compared_to(teacher), _row(accuracy=None, metrics_error="DataError: no labels")):
        text = json.dumps(original.to_dict())
        again = Row.from_dict(json.loads(text))
        assert again == original
        assert json.dumps(again.to_dict()) == text


def test_the_json_form_keeps_the_report_keys_code_and_readers_index():
    data = _row(metrics_n=40).compared_to(_row(TEACHER_NAME, "teacher", accuracy=0.92)).to_dict()
    assert list(data)[:12] == ["name", "role", "backend", "precision", "device", "path", "size_bytes", "params",
                               "accuracy", "latency", "sweep", "error"]
    assert data["latency"]["128"]["stats"]["p50_ms"] == 8.0 and data["accuracy"] == 0.9 and data["accuracy_n"] == 40
    assert data["accuracy_retained"] == pytest.approx(0.9 / 0.92) and "metrics" not in data
    assert "speedup" not in _row().to_dict()  # no comparison until one is made


def test_a_task_with_another_primary_metric_keeps_all_its_metrics():
    row = Row(name="student · ONNX int8", role="student", backend="onnxruntime", precision="int8", path="m",
              metrics={"spearman": 0.81, "pearson": 0.84}, primary_metric="pearson", metrics_n=1500)
    teacher = Row(name=TEACHER_NAME, role="teacher", backend="torch", precision="fp32", path="t",
                  metrics={"spearman": 0.86, "pearson": 0.88}, primary_metric="pearson")
    data = row.compared_to(teacher).to_dict()
    assert data["pearson"] == 0.84 and data["pearson_n"] == 1500 and data["metrics"]["spearman"] == 0.81
    assert data["pearson_retained"] == pytest.approx(0.84 / 0.88) and "accuracy" not in data
    assert Row.from_dict(data) == row.compared_to(teacher) and Row.from_dict(data).score == 0.84
    assert "| pearson |" in render_comparison_markdown([data]).splitlines()[0]


@pytest.mark.skipif(not COMMITTED_REPORT.is_file(), reason="no committed harness report")
def test_every_row_of_the_committed_harness_report_round_trips_byte_for_byte():
    rows = json.loads(COMMITTED_REPORT.read_text(encoding="utf-8"))["rows"]
    assert rows and all(json.dumps(Row.from_dict(r).to_dict()) == json.dumps(r) for r in rows)
    assert Row.from_dict(rows[0]).name == TEACHER_NAME


def test_compare_to_teacher_accepts_typed_rows_and_returns_their_json_copies():
    teacher = _row(TEACHER_NAME, "teacher", accuracy=0.92, p50s={64: 40.0, 128: 80.0})
    compared = compare_to_teacher([teacher, _row()], TEACHER_NAME)
    assert compared[1]["speedup"] == {"64": pytest.approx(10.0), "128": pytest.approx(10.0)}
    compared[1]["latency"]["64"]["stats"]["p50_ms"] = -1.0
    assert latency_ms(_row(), 64) == 4.0  # a copy: the caller's rows stay as they were


# --- the accessors ----------------------------------------------------------------------------------------------------


def test_p50_and_the_other_accessors_read_a_row_and_its_json_alike():
    row = _row(p50s={64: 4.0, 128: 8.0})
    row.latency["32"] = _measurement(32, [], error="worker killed by SIGKILL")
    for form in (row, row.to_dict()):
        assert latency_ms(form, 64) == 4.0 and latency_ms(form, "128") == 8.0
        assert latency_ms(form, 128, "p99_ms") == pytest.approx(np.percentile([7.2, 8.0, 10.4], 99))
        assert latency_ms(form, 32) is None and latency_ms(form, 16) is None  # failed, never measured
        assert peak_rss_mb(form) == 300.0 and device_memory_mb(form) is None
        assert sweep_point(form, 128, 1, 1)["stats"]["p50_ms"] == 16.0 and sweep_point(form, 128, 8, 2) is None
    assert sequence_lengths([row, _row(p50s={256: 1.0})]) == [32, 64, 128, 256]


def test_peak_rss_skips_failed_measurements_and_device_memory_prefers_the_driver():
    row = _row(p50s={64: 4.0})
    row.latency["128"] = _measurement(128, [], error="timed out", peak=9999.0) | {"peak_rss_mb": 9999.0}
    row.latency["64"]["device_memory"] = {"process_mb": 410.0, "allocator_peak_mb": 120.0}
    assert peak_rss_mb(row) == 300.0 and device_memory_mb(row) == 410.0


# --- rounds -----------------------------------------------------------------------------------------------------------


def test_each_round_starts_one_target_later():
    assert [rotated("abc", i) for i in range(4)] == [list("abc"), list("bca"), list("cab"), list("abc")]
    assert rotated([], 3) == []


def test_pooled_p50_comes_from_every_rounds_calls_and_each_round_keeps_its_own():
    rounds = [[1.0, 2.0, 3.0], [10.0, 11.0, 12.0, 13.0]]
    assert pooled_stats(rounds).p50_ms == float(np.median([1, 2, 3, 10, 11, 12, 13])) == 10.0
    assert round_p50s(rounds) == [2.0, 11.5]
    pooled = pool_measurements([_measurement(64, rounds[0], peak=200.0), _measurement(64, rounds[1], peak=250.0)])
    assert pooled["samples_ms"] == rounds[0] + rounds[1] and pooled["stats"]["p50_ms"] == 10.0
    assert pooled["stats"]["n"] == 7 and pooled["round_p50_ms"] == [2.0, 11.5] and pooled["peak_rss_mb"] == 250.0


def test_a_point_that_failed_in_any_round_stays_failed():
    ok, failed = _measurement(64, [1.0, 1.0]), _measurement(64, [], error="worker killed by SIGKILL")
    assert pool_measurements([ok, failed, ok])["error"] == "worker killed by SIGKILL"
    rows = pool_rounds([{"a": _row("a", p50s={64: 4.0, 128: 8.0})},
                        {"a": Row.from_dict({**_row("a").to_dict(), "latency": {"64": failed, "128": ok}})}])
    assert rows["a"]["latency"]["64"]["error"] == "worker killed by SIGKILL"
    assert rows["a"]["latency"]["128"]["round_p50_ms"] == [8.0, 1.0] and rows["a"]["name"] == "a"


def test_the_paired_interval_resamples_the_same_rounds_that_were_pooled():
    rng = np.random.default_rng(0)
    drift = rng.uniform(0.8, 1.3, size=8)
    ours = [tuple(d * rng.normal(5.0, 0.05, 50)) for d in drift]
    theirs = [tuple(d * rng.normal(6.0, 0.05, 50)) for d in drift]
    low, high = paired_p50_ratio_interval(ours, theirs)
    ratio = pooled_stats(ours).p50_ms / pooled_stats(theirs).p50_ms
    assert low <= ratio <= high < 1.0


# --- the suites' command line -----------------------------------------------------------------------------------------


def _parser():
    import argparse

    parser = argparse.ArgumentParser(prog="suite")
    parser.add_argument("--n", type=int, default=1)
    return parser


def test_suite_main_records_the_command_writes_the_file_and_prints_each_metric(tmp_path, capsys):
    seen = {}

    def measure(args, command):
        seen.update(n=args.n, command=command)
        return SuiteOutcome({"speedup": Metric(2.5, "x", baseline=1.0, target=2.0)}, {"note": "kept"},
                            details="the suite's own table", exit_code=3)

    assert suite_main("distill", _parser(), measure, ["--n", "4", "--results-dir", str(tmp_path)]) == 3
    written = load_suite_results(tmp_path / "distill.json")
    assert seen == {"n": 4, "command": f"python -m tinybert_edge.benchmarks.suites.distill --n 4 --results-dir {tmp_path}"}
    assert written["command"] == seen["command"] and written["extra"] == {"note": "kept"}
    out = capsys.readouterr().out.splitlines()
    assert out == ["speedup: 2.5 x (baseline 1) -> met (target 2)", "the suite's own table",
                   f"wrote {tmp_path / 'distill.json'}"]


def test_suite_main_passes_unknown_arguments_on_and_turns_an_sdk_error_into_exit_2(tmp_path, capsys):
    def measure(args, command):
        raise DataError(f"no such data: {args.passthrough}")

    assert suite_main("pipeline", _parser(), measure, ["-k", "bad", "--results-dir", str(tmp_path)],
                      passthrough=True) == 2
    assert capsys.readouterr().err.strip() == "error: no such data: ['-k', 'bad']"
    assert not (tmp_path / "pipeline.json").exists()
