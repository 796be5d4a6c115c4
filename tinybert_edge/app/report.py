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
        *(["![loss terms per step](loss_curves.png)", ""] if (Path(report["run_dir"]) / "loss_curves.png").is_file()
          else []),
        "Stage times (s): " + ", ".join(f"{k[:-2]} {v:.0f}" for k, v in timings.items()),
        "",
    ]
    return "\n".join(lines)


def write_report(report: dict[str, Any], run_dir: Path) -> None:
    """Write report.json, report.md and the plot, each atomically; the JSON goes last, marking the run complete."""
    from tinybert_edge.benchmarks import plot_accuracy_vs_latency

    try:
        plot_accuracy_vs_latency(report["rows"], run_dir / "accuracy_vs_latency.png", seq_len=max(report["config"]["sequence_lengths"]))
        logs = sorted((run_dir / "work").glob("*.jsonl"))
        if logs:
            plot_loss_curves(logs, run_dir / "loss_curves.png")
    except ImportError:
        log.warning("matplotlib is not installed; skipping the plot (pip install 'tinybert-edge[demo]')")
    write_text_atomic(run_dir / "report.md", render_report_markdown(report))
    write_json_atomic(run_dir / "report.json", report)
    log.info("report: %s", (run_dir / "report.md").resolve())


def read_loss_log(path: Path) -> list[dict[str, Any]]:
    """The loss records of one stage's JSONL log (evaluation records, which carry dev_score, left out)."""
    import json

    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in records if "dev_score" not in r]


def plot_loss_curves(logs: list[Path], png_path: Path) -> Path:
    """One panel per training stage, every logged loss term against the optimizer step (log scale)."""
    from tinybert_edge.benchmarks.plots import figure as _figure, save_png as _save_png

    stages = [(path.stem, read_loss_log(path)) for path in logs]
    stages = [(name, records) for name, records in stages if records]
    figure = _figure(width=5.0 * max(1, len(stages)), height=4.0)
    for index, (name, records) in enumerate(stages, start=1):
        axis = figure.add_subplot(1, len(stages), index)
        terms = sorted({k for r in records for k in r} - {"stage", "step", "epoch", "lr"})
        for term in terms:
            points = [(r["step"], r[term]) for r in records if isinstance(r.get(term), (int, float)) and r[term] > 0]
            if points:
                axis.plot(*zip(*points), label=term, linewidth=2.0 if term == "total" else 1.0)
        axis.set_yscale("log")
        axis.set_title(name)
        axis.set_xlabel("optimizer step")
        axis.set_ylabel("loss")
        axis.legend(fontsize=8)
    return _save_png(figure, png_path)
