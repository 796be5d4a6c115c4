"""The `pipeline` suite: the default `tinybert-edge pipeline`, summarised as headline metrics.

    python -m tinybert_edge.benchmarks.suites.pipeline [--from-report runs/<name>/report.json] [pipeline flags]

Without --from-report it runs the embedded default pipeline (any `tinybert-edge pipeline` flag may follow) and
then writes benchmarks/results/pipeline.json and rewrites the README's benchmark section.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any, Sequence

from tinybert_edge.benchmarks.report import latency_ms
from tinybert_edge.benchmarks.results import Metric, write_suite_results

TEACHER_ROW = "teacher · PyTorch fp32"
STUDENT_ROW = "student · PyTorch fp32"


def pipeline_metrics(report: dict[str, Any]) -> dict[str, Metric]:
    """Headline numbers of one pipeline report, each against the teacher measured in the same run."""
    rows = {row["name"]: row for row in report["rows"]}
    teacher, student = rows[TEACHER_ROW], rows[STUDENT_ROW]
    length = max(report["config"]["sequence_lengths"])
    int8 = [row for row in report["rows"] if row.get("precision") == "int8" and row.get("error") is None]
    metrics = {
        "teacher test accuracy": Metric(teacher["accuracy"], "fraction"),
        "student test accuracy": Metric(student["accuracy"], "fraction", baseline=teacher["accuracy"]),
        # The foundation issue asks for "about ten minutes" on two cores; 15 minutes is where that stops being true.
        "pipeline wall time": Metric(report["timings_s"]["total_s"], "s", direction="lower_is_better", target=900.0),
    }
    if int8:
        fastest = min(int8, key=lambda row: latency_ms(row, length) or float("inf"))
        metrics[f"fastest int8 artifact p50 @ seq {length} ({fastest['name']})"] = Metric(
            latency_ms(fastest, length), "ms", direction="lower_is_better", baseline=latency_ms(teacher, length))
        metrics[f"speedup of fastest int8 artifact vs teacher fp32 @ seq {length}"] = Metric(
            latency_ms(teacher, length) / latency_ms(fastest, length), "x")
        metrics["size reduction of fastest int8 artifact vs teacher fp32"] = Metric(
            teacher["size_bytes"] / fastest["size_bytes"], "x")
        metrics["accuracy of fastest int8 artifact"] = Metric(fastest["accuracy"], "fraction", baseline=teacher["accuracy"])
        agreements = [row["agreement_with_student"] for row in int8 if row.get("agreement_with_student") is not None]
        if agreements:
            metrics["lowest int8 label agreement with the PyTorch student"] = Metric(min(agreements), "fraction", target=0.99)
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = "python -m tinybert_edge.benchmarks.suites.pipeline " + shlex.join(args)
    if args[:1] == ["--from-report"]:
        report = json.loads(Path(args[1]).read_text(encoding="utf-8"))
        command = report.get("command", command)
    else:
        from tinybert_edge.app.cli import _pipeline_config, build_parser
        from tinybert_edge.logs import configure_logging
        from tinybert_edge.app.pipeline import pipeline

        configure_logging()
        parsed = build_parser().parse_args(["pipeline", *args])
        report = pipeline(_pipeline_config(parsed), overwrite=parsed.overwrite, resume=parsed.resume,
                          progress=not parsed.no_progress)
    from tinybert_edge.benchmarks.readme import update_readme
    from tinybert_edge.app.report import render_report_markdown

    path = write_suite_results("pipeline", pipeline_metrics(report), command.strip(),
                               extra={"run_dir": report["run_dir"], "report_markdown": render_report_markdown(report),
                                      "timings_s": report["timings_s"]})
    print(f"wrote {path}")
    if Path("README.md").is_file():
        update_readme("README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
