"""The pipeline's report: JSON with every raw number, Markdown with the comparison table, and a PNG plot."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tinybert_edge.io import write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)


def render_report_markdown(report: dict[str, Any]) -> str:
    from tinybert_edge.benchmarks import render_comparison_markdown

    data = report["data"]
    student = report["student"]
    timings = report["timings_s"]
    lines = [
        f"# tinybert-edge pipeline report: {Path(report['run_dir']).name}",
        "",
        f"- data: `{data['source']}`, labels {', '.join(data['labels'])}; {data['train']} train / {data['dev']} dev / "
        f"{data['test']} test examples (accuracy below is on the test split)",
        f"- teacher: `{report['teacher']['path']}`",
        f"- student: `{student['config']['student']}`, {student['parameters'] / 1e6:.1f}M parameters, layer map "
        f"{student['layer_map']}, {student['train_examples']} distillation examples",
        f"- latency: batch 1, {report['config']['threads']} threads, p50/p90/p99 in ms; speedup, size and memory "
        "ratios are against the teacher in PyTorch fp32, measured in this run",
        "",
        render_comparison_markdown(report["rows"]),
        "",
        "![accuracy against latency](accuracy_vs_latency.png)",
        "",
        "Stage times (s): " + ", ".join(f"{k[:-2]} {v:.0f}" for k, v in timings.items()),
        "",
    ]
    return "\n".join(lines)


def write_report(report: dict[str, Any], run_dir: Path) -> None:
    """Write report.json, report.md and the plot, each atomically; the JSON goes last, marking the run complete."""
    from tinybert_edge.benchmarks import plot_accuracy_vs_latency

    try:
        plot_accuracy_vs_latency(report["rows"], run_dir / "accuracy_vs_latency.png", seq_len=max(report["config"]["sequence_lengths"]))
    except ImportError:
        log.warning("matplotlib is not installed; skipping the plot (pip install 'tinybert-edge[demo]')")
    write_text_atomic(run_dir / "report.md", render_report_markdown(report))
    write_json_atomic(run_dir / "report.json", report)
    log.info("report: %s", (run_dir / "report.md").resolve())
