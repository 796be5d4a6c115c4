"""The pipeline's report: JSON with every raw number, Markdown with the comparison table, and a PNG plot."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tinybert_edge.io import write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)


def _teacher_line(report: dict[str, Any]) -> str:
    """The teacher as a reader knows it: where it came from and what it was tuned on, not the cache folder."""
    teacher = report["teacher"]
    source = teacher.get("source") or report.get("config", {}).get("teacher") or teacher["path"]
    tuned = teacher.get("fine_tuned")
    if not tuned:
        return f"- teacher: `{source}` (a fine-tuned classifier, used as given)"
    examples = tuned.get("train_examples")
    metric = report.get("primary_metric") or "accuracy"
    score = (tuned.get("dev_metrics") or {}).get(metric, tuned.get("dev_accuracy") if metric == "accuracy" else None)
    return (f"- teacher: `{source}` fine-tuned on {examples if examples is not None else '?'} train examples of "
            f"`{tuned.get('data') or report['data']['source']}`"
            + (f" (dev {metric} {100 * score:.1f}%)" if isinstance(score, (int, float)) else "")
            + f"; cached in `{teacher['path']}`")


def _evaluated_on(data: dict[str, Any], metric: str = "accuracy") -> str:
    """Which rows the metric columns score, said plainly: a 'test' split that is the dev file is called so."""
    if data.get("test_is_dev"):
        return f"{metric} below is on the dev file `{data.get('test_file')}` ({data['test']} examples; no separate test file was given)"
    if data.get("test_file"):
        return f"{metric} below is on the test file `{data['test_file']}` ({data['test']} examples)"
    return f"{metric} below is on the held-out test split ({data['test']} examples)"


def _labels(data: dict[str, Any], task: str | None = None) -> str:
    if data.get("labels"):
        return f"labels {', '.join(data['labels'])}"
    return "answer spans" if task == "question-answering" else "scores (regression)"


def _primary(report: dict[str, Any]) -> str:
    return report.get("primary_metric") or "accuracy"


def _headline_table(report: dict[str, Any]) -> str:
    """One short table to show first: per model, the task metric, size, p50 at the longest length, speedup and
    memory against the teacher."""
    from tinybert_edge.benchmarks.readme import format_number, markdown_cell
    from tinybert_edge.benchmarks.rows import latency_ms, peak_rss_mb

    length = max(report["config"]["sequence_lengths"])
    metric = _primary(report)
    lines = [f"| model | {metric} | size MB | p50 ms @ {length} | speedup | peak RSS MB | memory × |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for row in report["rows"]:
        accuracy = row.get(metric)
        size = row.get("size_bytes")
        speedup = (row.get("speedup") or {}).get(str(length))
        memory = row.get("memory_reduction")
        lines.append("| " + " | ".join([
            markdown_cell(row.get("name", "")),
            "—" if accuracy is None else f"{100 * accuracy:.1f}%",
            format_number(size / (1024 * 1024) if size else None),
            format_number(latency_ms(row, length)),
            "—" if speedup is None else f"{speedup:.2f}×",
            format_number(peak_rss_mb(row)),
            "—" if memory is None else f"{memory:.2f}×",
        ]) + " |")
    return "\n".join(lines) + "\n"


def _environment_lines(report: dict[str, Any]) -> list[str]:
    """The machine and software lines that `tinybert-edge bench` writes, for the environment of this run."""
    if not report.get("environment"):
        return []
    from tinybert_edge.benchmarks.report import environment_lines as bench_environment_lines

    return bench_environment_lines({"environment": report["environment"]})


def package_command(report: dict[str, Any]) -> str:
    """The command that turns this run's artifacts into an on-device bundle (what a user does next)."""
    run_dir = Path(report["run_dir"])
    return f"tinybert-edge package {run_dir / 'artifacts'} {run_dir / 'bundle.zip'}"


def render_report_markdown(report: dict[str, Any]) -> str:
    from tinybert_edge.benchmarks import render_comparison_markdown

    data = report["data"]
    student = report["student"]
    timings = report["timings_s"]
    run_dir = Path(report["run_dir"])
    lines = [
        f"# tinybert-edge pipeline report: {run_dir.name}",
        "",
        _headline_table(report),
        f"- data: `{data['source']}`, {_labels(data, report.get('task'))} ({report.get('task', 'text-classification')}); "
        f"{data['train']} train / {data['dev']} dev / {data['test']} test examples "
        f"({_evaluated_on(data, _primary(report))})"
        + (f"; {data['iob_repairs']} entities start with I- (read as beginnings, as conlleval does)"
           if data.get("iob_repairs") else ""),
        _teacher_line(report),
        f"- student: `{student['config']['student']}`, {student['parameters'] / 1e6:.1f}M parameters, layer map "
        f"{student['layer_map']}, distilled on {student['train_examples']} of the {data['train']} train examples"
        + (f"; checkpoint selected by dev {student['selection_metric']}" if student.get("selection_metric") else ""),
        f"- latency: batch 1, {report['config']['threads']} threads, p50/p90/p99 in ms; speedup, size and memory "
        "ratios are against the teacher in PyTorch fp32, measured in this run",
        *_environment_lines(report),
        f"- next: `{package_command(report)}` writes the on-device bundle of these artifacts",
        "",
        "## Every variant",
        "",
        render_comparison_markdown(report["rows"]),
        "",
        "![accuracy against latency](accuracy_vs_latency.png)",
        "",
        *_metrics_section(report, run_dir),
        *(["![loss terms per step](loss_curves.png)", ""] if (run_dir / "loss_curves.png").is_file() else []),
        "Stage times (s): " + ", ".join(f"{k[:-2]} {v:.0f}" for k, v in timings.items()),
        "",
    ]
    return "\n".join(lines)


def _metrics_section(report: dict[str, Any], run_dir: Path) -> list[str]:
    """Every task metric of every model (macro precision, recall and F1, Matthews correlation beside accuracy for a
    classifier; Pearson, Spearman and MSE for regression), and each classifier's confusion matrix."""
    from tinybert_edge.benchmarks.readme import format_number, markdown_cell

    rows = [row for row in report["rows"] if row.get("metrics")]
    if not rows:
        return []
    names = list(dict.fromkeys(name for row in rows for name in row["metrics"]))
    lines = ["## Task metrics", "", "| model | " + " | ".join(names) + " | agreement with the student |",
             "|---|" + "---:|" * (len(names) + 1)]
    for row in rows:
        agreement = row.get("agreement_with_student")
        lines.append("| " + " | ".join([markdown_cell(row["name"])]
                                         + [format_number(row["metrics"].get(name), 4) for name in names]
                                         + ["—" if agreement is None else f"{100 * agreement:.1f}%"]) + " |")
    lines.append("")
    labels = report["data"].get("labels") or []
    matrices = [(row["name"], row["details"]["confusion_matrix"]) for row in rows
                if (row.get("details") or {}).get("confusion_matrix")]
    for name, matrix in matrices:
        shown = labels if len(labels) == len(matrix) else [str(i) for i in range(len(matrix))]
        lines += [f"Confusion matrix of {markdown_cell(name)} (rows: true label, columns: predicted):", "",
                  "| true \\ predicted | " + " | ".join(map(markdown_cell, shown)) + " |",
                  "|---|" + "---:|" * len(shown)]
        lines += ["| " + " | ".join([markdown_cell(label)] + [str(v) for v in counts]) + " |"
                  for label, counts in zip(shown, matrix)]
        lines.append("")
    if matrices and (run_dir / "confusion_matrix.png").is_file():
        lines += ["![confusion matrices](confusion_matrix.png)", ""]
    return lines


def write_report(report: dict[str, Any], run_dir: Path) -> None:
    """Write report.json, report.md and the plot, each atomically; the JSON goes last, marking the run complete."""
    from tinybert_edge.benchmarks import plot_accuracy_vs_latency

    try:
        plot_accuracy_vs_latency(report["rows"], run_dir / "accuracy_vs_latency.png", seq_len=max(report["config"]["sequence_lengths"]))
        matrices = [(row["name"], row["details"]["confusion_matrix"]) for row in report["rows"]
                    if (row.get("details") or {}).get("confusion_matrix")]
        if matrices:
            from tinybert_edge.benchmarks.plots import plot_confusion_matrices

            plot_confusion_matrices(matrices, report["data"].get("labels") or [], run_dir / "confusion_matrix.png")
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
                axis.plot(*zip(*points), label=term, linewidth=2.0 if term == "total" else 1.0,
                          marker="." if len(points) < 30 else None)
        axis.set_yscale("log")
        axis.set_title(name)
        axis.set_xlabel("optimizer step")
        axis.set_ylabel("loss")
        axis.legend(fontsize=8)
    return _save_png(figure, png_path)
