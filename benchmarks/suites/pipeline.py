"""The `pipeline` suite: the default `tinybert-edge pipeline`, summarised as headline metrics.

    python -m tinybert_edge.benchmarks.suites.pipeline [--from-report runs/<name>/report.json] [pipeline flags]

Without --from-report it runs the embedded default pipeline (any `tinybert-edge pipeline` flag may follow) and
then writes benchmarks/results/pipeline.json and rewrites the README's benchmark section.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from tinybert_edge.benchmarks.results import Metric
from tinybert_edge.benchmarks.rows import TEACHER_NAME, as_row, latency_ms
from tinybert_edge.benchmarks.suites.command_line import SuiteOutcome, suite_main

STUDENT_ROW = "student · PyTorch fp32"


def pipeline_metrics(report: dict[str, Any]) -> dict[str, Metric]:
    """Headline numbers of one pipeline report, each against the teacher measured in the same run."""
    rows = [as_row(row) for row in report["rows"]]
    by_name = {row.name: row for row in rows}
    teacher, student = by_name[TEACHER_NAME], by_name[STUDENT_ROW]
    length = max(report["config"]["sequence_lengths"])
    int8 = [row for row in rows if row.precision == "int8" and row.error is None]
    metrics = {
        "teacher test accuracy": Metric(teacher.score, "fraction"),
        "student test accuracy": Metric(student.score, "fraction", baseline=teacher.score),
        # The foundation issue asks for "about ten minutes" on two cores; 15 minutes is where that stops being true.
        "pipeline wall time": Metric(report["timings_s"]["total_s"], "s", direction="lower_is_better", target=900.0),
    }
    if int8:
        fastest = min(int8, key=lambda row: latency_ms(row, length) or float("inf"))
        metrics[f"fastest int8 artifact p50 @ seq {length} ({fastest.name})"] = Metric(
            latency_ms(fastest, length), "ms", direction="lower_is_better", baseline=latency_ms(teacher, length))
        metrics[f"speedup of fastest int8 artifact vs teacher fp32 @ seq {length}"] = Metric(
            latency_ms(teacher, length) / latency_ms(fastest, length), "x")
        metrics["size reduction of fastest int8 artifact vs teacher fp32"] = Metric(
            teacher.size_bytes / fastest.size_bytes, "x")
        metrics["accuracy of fastest int8 artifact"] = Metric(fastest.score, "fraction", baseline=teacher.score)
        # The pipeline's own column: each int8 artifact's label agreement with the PyTorch student.
        agreements = [row.extra["agreement_with_student"] for row in int8
                      if row.extra.get("agreement_with_student") is not None]
        if agreements:
            metrics["lowest int8 label agreement with the PyTorch student"] = Metric(min(agreements), "fraction", target=0.99)
    return metrics


def build_parser() -> argparse.ArgumentParser:
    # Every other argument goes to `tinybert-edge pipeline` (its -h included), so this parser adds no help of its own.
    parser = argparse.ArgumentParser(prog="python -m tinybert_edge.benchmarks.suites.pipeline", add_help=False,
                                     allow_abbrev=False)
    parser.add_argument("--from-report", help="only rewrite the results from an existing report.json")
    return parser


def _measure(args: argparse.Namespace, command: str) -> SuiteOutcome:
    from tinybert_edge.app.report import render_report_markdown

    if args.from_report:
        report = json.loads(Path(args.from_report).read_text(encoding="utf-8"))
    else:
        from tinybert_edge.app.cli import _pipeline_config, build_parser as cli_parser
        from tinybert_edge.app.pipeline import pipeline

        parsed = cli_parser().parse_args(["pipeline", *args.passthrough])
        report = pipeline(_pipeline_config(parsed), overwrite=parsed.overwrite, resume=parsed.resume,
                          progress=not parsed.no_progress)
    extra = {"run_dir": report["run_dir"], "report_markdown": render_report_markdown(report),
             "timings_s": report["timings_s"]}
    return SuiteOutcome(pipeline_metrics(report), extra, command=report.get("command"), update_readme=True)


def main(argv: Sequence[str] | None = None) -> int:
    return suite_main("pipeline", build_parser(), _measure, argv, passthrough=True)


if __name__ == "__main__":
    sys.exit(main())
