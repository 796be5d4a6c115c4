"""The comparison report: each model variant against the teacher, as a Markdown table, and the `bench` report files.

A row is a `benchmarks.rows.Row`; reports hold its JSON form (`Row.to_dict()`). Every ratio is computed from
measurements of the same run, never from numbers quoted elsewhere.

`tinybert-edge bench --out DIR` writes report.json (schema below), report.md and the two plots (`benchmarks.plots`)
with `write_bench_report`: all four are made in a hidden staging folder inside DIR and moved into place only when
complete, report.json last, so an interrupted run leaves the previous report (or none), never half of one.
    {"schema_version": 1, "kind": "bench", "created_utc", "config": BenchConfig fields, "environment": {...},
     "thread_settings": {...}, "gemm_peaks": {"<threads>": measure_gemm_peak(...)}, "data": {...} | null,
     "teacher": name | null, "rows": [Row.to_dict(), ...]}
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

from tinybert_edge.benchmarks.plots import plot_accuracy_vs_latency, plot_latency_vs_sequence_length
from tinybert_edge.benchmarks.readme import format_number, markdown_cell
from tinybert_edge.benchmarks.rows import (Row, as_row, device_memory_mb, headline, peak_rss_mb,
                                           sequence_lengths)
from tinybert_edge.errors import ConfigError

log = logging.getLogger(__name__)

MIB = 1024 * 1024


def compare_to_teacher(rows: Sequence[Row | Mapping[str, Any]], teacher_name: str) -> list[dict[str, Any]]:
    """Copies of `rows` in their JSON form, each with the teacher-relative numbers of this run added (see
    `Row.compared_to`): `speedup` {seq_len: teacher p50 / row p50}, `size_reduction`, `memory_reduction` and
    `accuracy_retained` (the primary metric's, under its name). A number that cannot be computed (failed
    measurement, unknown accuracy) is None."""
    typed = [as_row(copy.deepcopy(row)) for row in rows]
    names = [row.name for row in typed]
    if teacher_name not in names:
        raise ConfigError(f"teacher_name = {teacher_name!r} is not a row; available: {', '.join(names)}")
    teacher = typed[names.index(teacher_name)]
    return [row.compared_to(teacher).to_dict() for row in typed]


def _times(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _roofline_cell(row: Row, seq_len: int) -> str:
    point = (headline(row, seq_len) or {}).get("roofline")
    if not point or point.get("achieved_gops") is None:
        return "—"
    fraction = point.get("fraction_of_roofline")
    return format_number(point["achieved_gops"]) + ("" if fraction is None else f" ({_percent(fraction)})")


def render_comparison_markdown(rows: Sequence[Row | Mapping[str, Any]]) -> str:
    """The comparison table: one line per row; a failed row or measurement shows its error text.

    With roofline data, one more column per length: achieved GFLOP/s (GOP/s for int8) and, in brackets, the
    fraction of this machine's GEMM roofline measured in the same run."""
    rows = [as_row(row) for row in rows]
    lengths = sequence_lengths(rows)
    metric = rows[0].primary_metric if rows else "accuracy"
    has_comparison = any(row.comparison is not None for row in rows)
    has_roofline = any((headline(row, n) or {}).get("roofline") for row in rows for n in lengths)
    header = ["model", "backend", "precision", "size MB", metric]
    header += [f"p50 / p90 / p99 ms @ {n}" for n in lengths]
    header += ["peak RSS MB"]
    has_device_memory = any(device_memory_mb(row) is not None for row in rows)
    if has_device_memory:
        header += ["device MB"]
    if has_comparison:
        header += [f"speedup @ {n}" for n in lengths] + ["size ×", "memory ×", f"{metric} retained"]
    if has_roofline:
        header += [f"G(FL)OP/s (% of roofline) @ {n}" for n in lengths]
    header += ["notes"]
    align = ["---", "---", "---", "---:", "---:"] + ["---:"] * (len(header) - 6) + ["---"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for row in rows:
        notes = []
        if row.error:
            notes.append(f"error: {row.error}")
        if row.metrics_error and row.metrics_error != row.error:
            notes.append(f"{row.primary_metric}: {row.metrics_error}")
        cells = [
            markdown_cell(row.name),
            markdown_cell(row.backend),
            markdown_cell(row.precision),
            format_number(row.size_bytes / MIB if row.size_bytes else None),
            _percent(row.score),
        ]
        for n in lengths:
            measurement = row.latency.get(str(n))
            if measurement and measurement.get("error"):
                notes.append(f"@{n}: {measurement['error']}")
                cells.append("failed")
            elif headline(row, n):
                stats = measurement["stats"]
                cells.append(" / ".join(format_number(stats[k]) for k in ("p50_ms", "p90_ms", "p99_ms")))
            else:
                cells.append("—")
        cells.append(format_number(peak_rss_mb(row)))
        if has_device_memory:
            cells.append(format_number(device_memory_mb(row)))
        if has_comparison:
            comparison = row.comparison
            cells += [_times(comparison.speedup.get(str(n)) if comparison else None) for n in lengths]
            cells += [_times(comparison.size_reduction if comparison else None),
                      _times(comparison.memory_reduction if comparison else None)]
            cells.append(_percent(comparison.metric_retained if comparison else None))
        if has_roofline:
            cells += [_roofline_cell(row, n) for n in lengths]
        cells.append(markdown_cell("; ".join(notes)) if notes else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --- the `tinybert-edge bench` report -------------------------------------------------------------------------------

BENCH_SCHEMA_VERSION = 1
REPORT_FILES = ("accuracy_vs_latency.png", "latency_vs_seq_len.png", "report.md", "report.json")


def bench_report(
    rows: Sequence[Row | Mapping[str, Any]],
    config: Any,
    gemm_peaks: Mapping[int, Mapping[str, Any]] | None = None,
    data: Any = None,
) -> dict[str, Any]:
    """The report document of one `bench` run: rows (raw samples and statistics), the run rules, the environment,
    the thread settings and the GEMM peaks."""
    from tinybert_edge.benchmarks.environment import environment

    rows = [as_row(row) for row in rows]
    teacher = next((row.name for row in rows if row.role == "teacher"), None)
    return {
        "schema_version": BENCH_SCHEMA_VERSION,
        "kind": "bench",
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": dataclasses.asdict(config),
        "environment": environment(),
        "thread_settings": {
            "headline_threads": config.threads,
            "thread_grid": list(config.thread_grid),
            "how": "OMP/MKL/OpenBLAS thread variables set per measurement subprocess; torch.set_num_threads, "
                   "ORT intra_op_num_threads (inter_op 1), LiteRT num_threads; each sweep entry records its threads",
        },
        "gemm_peaks": {str(t): dict(p) for t, p in (gemm_peaks or {}).items()},
        "data": None if data is None else {"source": data.source, "n": len(data),
                                           "labels": list(getattr(data, "label_names", None) or [])},
        "teacher": teacher,
        "rows": [row.to_dict() for row in rows],
    }


def environment_lines(report: Mapping[str, Any]) -> list[str]:
    env = report.get("environment") or {}
    flags = [name for name, present in (env.get("cpu_flags") or {}).items() if present]
    versions = env.get("versions") or {}
    runtimes = ", ".join(f"{k} {versions[k]}" for k in ("torch", "onnxruntime", "ai-edge-litert", "transformers") if k in versions)
    git = env.get("git") or {}
    revision = (git.get("revision") or "")[:12]
    lines = [
        f"- machine: {env.get('cpu_model', '?')}, {env.get('usable_cores', '?')} usable cores; flags: "
        f"{', '.join(flags) or 'none of interest'}; load average {env.get('load_average')}",
        f"- software: Python {env.get('python', '?')}, {runtimes}; git {revision or 'unknown'}"
        + (" (uncommitted changes)" if git.get("dirty") else ""),
    ]
    for threads, peak in sorted((report.get("gemm_peaks") or {}).items(), key=lambda kv: int(kv[0])):
        if peak.get("error"):
            lines.append(f"- GEMM peak, {threads} threads: not measured ({peak['error']})")
            continue
        int8 = peak.get("int8")
        lines.append(
            f"- GEMM peak, {threads} threads, {peak['size']}² matrices: fp32 {format_number(peak['fp32']['peak_gops'])} "
            f"GFLOP/s ({peak['fp32']['kernel']})"
            + (f", int8 {format_number(int8['peak_gops'])} GOP/s ({int8['kernel']})" if int8 else ", int8 not measured")
        )
    return lines


def render_bench_markdown(report: Mapping[str, Any]) -> str:
    """report.md of a `bench` run: what was measured on what, the comparison table, the plots and the sweep."""
    from tinybert_edge.benchmarks.sweep import render_sweep_markdown

    config = report["config"]
    data = report.get("data")
    lines = [
        "# tinybert-edge benchmark",
        "",
        *(environment_lines(report)),
        f"- method: {config['warmup']} warm-up calls, then at least {config['min_iterations']} calls and "
        f"{config['min_seconds']:g} s per point, each point in its own subprocess; headline: batch "
        f"{config['batch_size']}, {config['threads']} threads; p50/p90/p99 in ms",
    ]
    if data:
        lines.append(f"- accuracy and inputs: {data['n']} examples of `{data['source']}`, labels {', '.join(data['labels'])}")
    if report.get("teacher"):
        lines.append(f"- speedup, size, memory and accuracy ratios are against `{report['teacher']}`, measured in this run")
    lines += [
        "",
        render_comparison_markdown(report["rows"]),
        "![accuracy against latency](accuracy_vs_latency.png)",
        "![latency against sequence length](latency_vs_seq_len.png)",
        "",
        "## Every measured point",
        "",
        render_sweep_markdown(report["rows"]),
    ]
    return "\n".join(lines)


def write_bench_report(report: Mapping[str, Any], out: str | os.PathLike[str]) -> Path:
    """Write report.json, report.md, accuracy_vs_latency.png and latency_vs_seq_len.png into `out`.

    Everything is made in a staging folder inside `out` first and then renamed into place, report.json last:
    an exception or interrupt before that leaves the previous report untouched and no partial file."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out '{out}' is a file; allowed: a folder (created when missing)")
    out.mkdir(parents=True, exist_ok=True)
    # Serialise first: a value JSON cannot hold fails here, before any file is touched.
    text = json.dumps(report, indent=2, allow_nan=False, default=_jsonable) + "\n"
    staging = Path(tempfile.mkdtemp(prefix=".bench-report-", suffix=".partial", dir=out))
    try:
        rows = report["rows"]
        lengths = sequence_lengths(rows)
        try:
            plot_accuracy_vs_latency(rows, staging / REPORT_FILES[0], seq_len=max(lengths) if lengths else 128)
            plot_latency_vs_sequence_length(rows, staging / REPORT_FILES[1])
        except ImportError:
            log.warning("matplotlib is not installed; no plots (pip install 'tinybert-edge[demo]')")
        (staging / "report.md").write_text(render_bench_markdown(report), encoding="utf-8")
        (staging / "report.json").write_text(text, encoding="utf-8")
        # report.json marks a complete report: it goes first and comes back last.
        (out / "report.json").unlink(missing_ok=True)
        for name in REPORT_FILES:
            if (staging / name).exists():
                os.replace(staging / name, out / name)
            elif (out / name).exists():
                (out / name).unlink()  # a plot of an older run must not sit beside this run's report
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("report: %s", (out / "report.md").resolve())
    return out / "report.json"


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")
