"""The measurement harness, served as `tinybert_edge.benchmarks` (see pyproject's package-dir).

Where things are:
    config.py       BenchConfig (run rules) and Target (one artifact in one runtime)
    runner.py       bench(): every target over the grid, next to the teacher (the public `tinybert_edge.bench`)
    rows.py         Row: one variant's result, its JSON form, and the accessors for p50/p99, peak RSS, device memory
    latency.py      measure() and Measurement: one measurement in its own subprocess
    worker.py       the subprocess that loads, warms up and times the calls
    stats.py        LatencyStats: p50/p90/p95/p99, mean, stdev, throughput from the raw samples
    rounds.py       measurement rounds: the rotated order, samples pooled over rounds, per-round p50s
    memory.py       peak RSS (VmHWM) and the idle-interpreter baseline's imports
    environment.py  CPU model and flags, runtime versions, threads, git revision
    results.py      Metric and write_suite_results(): benchmarks/results/<suite>.json
    readme.py       render_markdown_table() and the README section generator
    report.py       compare_to_teacher(), the comparison table and the `bench --out` report files
    plots.py        accuracy against latency (Pareto front), latency against sequence length; figure(), save_png()
    sweep.py        the (sequence length, batch size, threads) grid of each row and its table
    roofline.py     FLOPs of a BERT per inference, this machine's GEMM peak, the roofline column
    compare.py      `bench compare A B`: per-point diff of two reports, regressions beyond the noise

Names resolve lazily, so the measuring subprocess imports nothing it does not use.
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {
    "BenchConfig": "tinybert_edge.benchmarks.config",
    "Target": "tinybert_edge.benchmarks.config",
    "bench": "tinybert_edge.benchmarks.runner",
    "Row": "tinybert_edge.benchmarks.rows",
    "TEACHER_NAME": "tinybert_edge.benchmarks.rows",
    "measure": "tinybert_edge.benchmarks.latency",
    "Measurement": "tinybert_edge.benchmarks.latency",
    "LatencyStats": "tinybert_edge.benchmarks.stats",
    "environment": "tinybert_edge.benchmarks.environment",
    "Metric": "tinybert_edge.benchmarks.results",
    "write_suite_results": "tinybert_edge.benchmarks.results",
    "render_markdown_table": "tinybert_edge.benchmarks.readme",
    "compare_to_teacher": "tinybert_edge.benchmarks.report",
    "render_comparison_markdown": "tinybert_edge.benchmarks.report",
    "plot_accuracy_vs_latency": "tinybert_edge.benchmarks.plots",
    "plot_latency_vs_sequence_length": "tinybert_edge.benchmarks.plots",
    "write_bench_report": "tinybert_edge.benchmarks.report",
    "bert_flops": "tinybert_edge.benchmarks.roofline",
    "measure_gemm_peak": "tinybert_edge.benchmarks.roofline",
    "compare": "tinybert_edge.benchmarks.compare",
    "compare_reports": "tinybert_edge.benchmarks.compare",
}

__all__ = list(_API)


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'tinybert_edge.benchmarks' has no attribute '{name}'")
    return getattr(importlib.import_module(_API[name]), name)
