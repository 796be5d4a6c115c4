"""The comparison report: each model variant against the teacher, as a Markdown table and two plots.

A row is a plain dict (what `bench` returns):
    {"name", "role": "teacher"|"student", "backend", "precision", "device", "path", "size_bytes", "params",
     "accuracy", "latency": {"<seq_len>": Measurement.to_dict(), ...}, "sweep": [Measurement.to_dict(), ...],
     "error": None | str}
`latency` holds the headline point (BenchConfig.batch_size, BenchConfig.threads) of each sequence length; `sweep`
every point of the grid. A measurement may carry `roofline` (see `benchmarks.roofline`).
Every ratio is computed from measurements of the same run, never from numbers quoted elsewhere.

`tinybert-edge bench --out DIR` writes report.json (schema below), report.md and the two plots with
`write_bench_report`: all four are made in a hidden staging folder inside DIR and moved into place only when
complete, report.json last, so an interrupted run leaves the previous report (or none), never half of one.
    {"schema_version": 1, "kind": "bench", "created_utc", "config": BenchConfig fields, "environment": {...},
     "thread_settings": {...}, "gemm_peaks": {"<threads>": measure_gemm_peak(...)}, "data": {...} | null,
     "teacher": name | null, "rows": [row, ...]}
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
from typing import Any, Iterable, Mapping, Sequence

from tinybert_edge.benchmarks.readme import format_number, markdown_cell
from tinybert_edge.errors import ConfigError, require
from tinybert_edge.io import atomic_path

log = logging.getLogger(__name__)

MIB = 1024 * 1024


def _latency(row: Mapping[str, Any], seq_len: int | str) -> Mapping[str, Any] | None:
    """The row's measurement at `seq_len` when it succeeded, else None."""
    measurement = (row.get("latency") or {}).get(str(seq_len))
    if not measurement or measurement.get("error") or not measurement.get("stats"):
        return None
    return measurement


def latency_ms(row: Mapping[str, Any], seq_len: int | str, statistic: str = "p50_ms") -> float | None:
    measurement = _latency(row, seq_len)
    return measurement["stats"][statistic] if measurement else None


def peak_rss_mb(row: Mapping[str, Any]) -> float | None:
    """The row's highest peak RSS over its successful measurements (MiB)."""
    peaks = [m["peak_rss_mb"] for m in (row.get("latency") or {}).values() if m and not m.get("error") and m.get("peak_rss_mb")]
    return max(peaks) if peaks else None


def device_memory_mb(row: Mapping[str, Any]) -> float | None:
    """A CUDA row's device memory (MiB): the most the driver saw the process hold over its measurements, or the
    torch allocator's peak where the driver figure is missing (see memory.cuda_memory_mb)."""
    values = []
    for m in (row.get("latency") or {}).values():
        memory = (m or {}).get("device_memory") or {}
        value = memory.get("process_mb") if memory.get("process_mb") is not None else memory.get("allocator_peak_mb")
        if value is not None and not m.get("error"):
            values.append(float(value))
    return max(values) if values else None


def sequence_lengths(rows: Iterable[Mapping[str, Any]]) -> list[int]:
    """Every sequence length any row was measured at, ascending."""
    return sorted({int(key) for row in rows for key in (row.get("latency") or {})})


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator in (None, 0):
        return None
    return numerator / denominator


def compare_to_teacher(rows: Sequence[Mapping[str, Any]], teacher_name: str) -> list[dict[str, Any]]:
    """Copies of `rows`, each with the teacher-relative numbers of this run added:
    `speedup` {seq_len: teacher p50 / row p50}, `size_reduction` (teacher bytes / row bytes), `memory_reduction`
    (teacher peak RSS / row peak RSS), `accuracy_retained` (row accuracy / teacher accuracy). A number that cannot
    be computed (failed measurement, unknown accuracy) is None."""
    names = [row["name"] for row in rows]
    if teacher_name not in names:
        raise ConfigError(f"teacher_name = {teacher_name!r} is not a row; available: {', '.join(names)}")
    teacher = rows[names.index(teacher_name)]
    compared = []
    for row in rows:
        out = copy.deepcopy(dict(row))
        out["speedup"] = {
            str(n): _ratio(latency_ms(teacher, n), latency_ms(row, n)) for n in sequence_lengths([row, teacher])
        }
        out["size_reduction"] = _ratio(teacher.get("size_bytes"), row.get("size_bytes"))
        out["memory_reduction"] = _ratio(peak_rss_mb(teacher), peak_rss_mb(row))
        out["accuracy_retained"] = _ratio(row.get("accuracy"), teacher.get("accuracy"))
        compared.append(out)
    return compared


def _times(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _roofline_cell(row: Mapping[str, Any], seq_len: int) -> str:
    measurement = _latency(row, seq_len)
    point = (measurement or {}).get("roofline")
    if not point or point.get("achieved_gops") is None:
        return "—"
    fraction = point.get("fraction_of_roofline")
    return format_number(point["achieved_gops"]) + ("" if fraction is None else f" ({_percent(fraction)})")


def render_comparison_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The comparison table: one line per row; a failed row or measurement shows its error text.

    With roofline data, one more column per length: achieved GFLOP/s (GOP/s for int8) and, in brackets, the
    fraction of this machine's GEMM roofline measured in the same run."""
    lengths = sequence_lengths(rows)
    has_comparison = any("speedup" in row for row in rows)
    has_roofline = any((_latency(row, n) or {}).get("roofline") for row in rows for n in lengths)
    header = ["model", "backend", "precision", "size MB", "accuracy"]
    header += [f"p50 / p90 / p99 ms @ {n}" for n in lengths]
    header += ["peak RSS MB"]
    has_device_memory = any(device_memory_mb(row) is not None for row in rows)
    if has_device_memory:
        header += ["device MB"]
    if has_comparison:
        header += [f"speedup @ {n}" for n in lengths] + ["size ×", "memory ×", "accuracy retained"]
    if has_roofline:
        header += [f"G(FL)OP/s (% of roofline) @ {n}" for n in lengths]
    header += ["notes"]
    align = ["---", "---", "---", "---:", "---:"] + ["---:"] * (len(header) - 6) + ["---"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for row in rows:
        notes = []
        if row.get("error"):
            notes.append(f"error: {row['error']}")
        if row.get("accuracy_error") and row.get("accuracy_error") != row.get("error"):
            notes.append(f"accuracy: {row['accuracy_error']}")
        size = row.get("size_bytes")
        cells = [
            markdown_cell(row.get("name", "")),
            markdown_cell(row.get("backend", "")),
            markdown_cell(row.get("precision", "")),
            format_number(size / MIB if size else None),
            _percent(row.get("accuracy")),
        ]
        for n in lengths:
            measurement = (row.get("latency") or {}).get(str(n))
            if measurement and measurement.get("error"):
                notes.append(f"@{n}: {measurement['error']}")
                cells.append("failed")
            elif _latency(row, n):
                stats = measurement["stats"]
                cells.append(" / ".join(format_number(stats[k]) for k in ("p50_ms", "p90_ms", "p99_ms")))
            else:
                cells.append("—")
        cells.append(format_number(peak_rss_mb(row)))
        if has_device_memory:
            cells.append(format_number(device_memory_mb(row)))
        if has_comparison:
            cells += [_times((row.get("speedup") or {}).get(str(n))) for n in lengths]
            cells += [_times(row.get("size_reduction")), _times(row.get("memory_reduction"))]
            cells.append(_percent(row.get("accuracy_retained")))
        if has_roofline:
            cells += [_roofline_cell(row, n) for n in lengths]
        cells.append(markdown_cell("; ".join(notes)) if notes else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the (latency, accuracy) points no other point beats on both: lower latency, higher accuracy."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for index in order:
        if points[index][1] > best:
            front.append(index)
            best = points[index][1]
    return front


def _figure(width: float = 7.0, height: float = 4.5):
    # A bare Figure renders with the Agg canvas and leaves pyplot's global backend and state alone.
    Figure = require("matplotlib.figure", package="matplotlib", extra="demo", purpose="Plotting the benchmark report").Figure
    return Figure(figsize=(width, height), dpi=120, layout="constrained")


def _save_png(figure: Any, png_path: str | os.PathLike[str]) -> Path:
    with atomic_path(png_path) as tmp:
        figure.savefig(tmp, format="png")
    return Path(png_path)


def plot_accuracy_vs_latency(rows: Sequence[Mapping[str, Any]], png_path: str | os.PathLike[str], seq_len: int = 128) -> Path:
    """Accuracy against p50 latency at `seq_len`, one point per row with both numbers; the Pareto front is drawn
    as a step line, the teacher as a star. Rows without accuracy or latency are listed in the caption."""
    figure = _figure()
    axes = figure.add_subplot()
    plotted, missing = [], []
    for row in rows:
        latency, accuracy = latency_ms(row, seq_len), row.get("accuracy")
        (plotted if latency is not None and accuracy is not None else missing).append(row)
    points = [(latency_ms(r, seq_len), 100 * r["accuracy"]) for r in plotted]
    front = set(pareto_front(points))
    for index, (row, (x, y)) in enumerate(zip(plotted, points)):
        teacher = row.get("role") == "teacher"
        axes.scatter(
            [x],
            [y],
            marker="*" if teacher else "o",
            s=220 if teacher else 60,
            color="tab:red" if teacher else ("tab:blue" if index in front else "tab:gray"),
            edgecolors="black" if index in front else "none",
            zorder=3,
        )
        # Alternate above and below the point, so labels of points close together do not print over each other.
        axes.annotate(row["name"], (x, y), textcoords="offset points", xytext=(6, 4 if index % 2 == 0 else -11), fontsize=8)
    if front:
        ordered = sorted((points[i] for i in front), key=lambda p: p[0])
        axes.step([p[0] for p in ordered], [p[1] for p in ordered], where="post", color="tab:blue", alpha=0.5,
                  linestyle="--", label="Pareto front", zorder=2)
        axes.legend(loc="lower right", fontsize=8)
    if not plotted:
        axes.text(0.5, 0.5, "no row has both accuracy and latency", ha="center", va="center", transform=axes.transAxes)
    if points and min(p[0] for p in points) > 0 and max(p[0] for p in points) / min(p[0] for p in points) > 20:
        axes.set_xscale("log")  # teachers and int8 students can be orders of magnitude apart
    axes.set_xlabel(f"p50 latency at sequence length {seq_len} (ms)")
    axes.set_ylabel("accuracy (%)")
    axes.set_title("Accuracy against latency (teacher: red star)")
    axes.grid(True, alpha=0.3)
    if missing:
        figure.supxlabel("not plotted: " + ", ".join(r["name"] for r in missing), fontsize=7)
    return _save_png(figure, png_path)


def plot_latency_vs_sequence_length(rows: Sequence[Mapping[str, Any]], png_path: str | os.PathLike[str]) -> Path:
    """p50 latency against sequence length, one line per row, with the p50–p99 band shaded."""
    figure = _figure()
    axes = figure.add_subplot()
    drawn = 0
    for row in rows:
        lengths = [n for n in sequence_lengths([row]) if latency_ms(row, n) is not None]
        if not lengths:
            continue
        p50 = [latency_ms(row, n) for n in lengths]
        p99 = [latency_ms(row, n, "p99_ms") for n in lengths]
        teacher = row.get("role") == "teacher"
        (line,) = axes.plot(lengths, p50, marker="o", linewidth=2.5 if teacher else 1.5, label=row["name"],
                            color="tab:red" if teacher else None)
        axes.fill_between(lengths, p50, p99, color=line.get_color(), alpha=0.15)
        drawn += 1
    if drawn:
        axes.legend(fontsize=8)
    else:
        axes.text(0.5, 0.5, "no successful measurement", ha="center", va="center", transform=axes.transAxes)
    axes.set_xlabel("sequence length (tokens)")
    axes.set_ylabel("latency (ms): p50 line, p50–p99 band")
    axes.set_title("Latency against sequence length")
    axes.grid(True, alpha=0.3)
    return _save_png(figure, png_path)


# --- the `tinybert-edge bench` report -------------------------------------------------------------------------------

BENCH_SCHEMA_VERSION = 1
REPORT_FILES = ("accuracy_vs_latency.png", "latency_vs_seq_len.png", "report.md", "report.json")


def bench_report(
    rows: Sequence[Mapping[str, Any]],
    config: Any,
    gemm_peaks: Mapping[int, Mapping[str, Any]] | None = None,
    data: Any = None,
) -> dict[str, Any]:
    """The report document of one `bench` run: rows (raw samples and statistics), the run rules, the environment,
    the thread settings and the GEMM peaks."""
    from tinybert_edge.benchmarks.environment import environment

    teacher = next((row["name"] for row in rows if row.get("role") == "teacher"), None)
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
        "data": None if data is None else {"source": data.source, "n": len(data), "labels": list(data.label_names)},
        "teacher": teacher,
        "rows": [dict(row) for row in rows],
    }


def _environment_lines(report: Mapping[str, Any]) -> list[str]:
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
        *(_environment_lines(report)),
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
