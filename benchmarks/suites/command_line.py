"""The command line every suite shares: `python -m tinybert_edge.benchmarks.suites.<suite> ...`.

A suite brings its argument parser and a `measure(args, command)` function that returns a `SuiteOutcome`;
`suite_main` does the rest the same way for all of them: `--results-dir`, the logging set-up, the command string
recorded with the numbers, `benchmarks/results/<suite>.json`, the printed metrics, the README's table when asked,
and the exit code. An SDK error (bad input, a measurement that cannot be taken) ends as one `error:` line and exit
code 2, as on the `tinybert-edge` command line.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from tinybert_edge.benchmarks.results import DEFAULT_RESULTS_DIR, Metric, write_suite_results
from tinybert_edge.errors import TinyBertEdgeError
from tinybert_edge.io import write_json_atomic

EXIT_ERROR = 2


@dataclass(frozen=True)
class SuiteOutcome:
    """What one run of a suite measured, for `suite_main` to record and print."""

    metrics: Mapping[str, Metric]
    extra: dict[str, Any] = field(default_factory=dict)
    # The command behind the numbers when it is not this invocation (numbers rewritten from a saved report).
    command: str | None = None
    # Printed after the metric lines: the suite's own table or notes.
    details: str = ""
    exit_code: int = 0
    # Rewrite the README's benchmark table from every results file afterwards.
    update_readme: bool = False
    # The results file to write when it is not the suite's own (a reduced budget writes `<suite>-<budget>.json`,
    # so it never replaces the numbers of the budget the README reports).
    suite: str | None = None


def suite_command(suite: str, argv: Sequence[str]) -> str:
    """The command line that reproduces this run, as recorded in the results file and the README."""
    return f"python -m tinybert_edge.benchmarks.suites.{suite} {shlex.join(argv)}".strip()


def metric_line(name: str, metric: Metric) -> str:
    """One metric as a line of the suite's output: value, baseline and whether its target was met."""
    line = f"{name}: {metric.value:.4g} {metric.unit}"
    if metric.baseline is not None:
        line += f" (baseline {metric.baseline:.4g})"
    if metric.met is not None:
        line += f" -> {'met' if metric.met else 'NOT met'} (target {metric.target:.4g})"
    return line


def suite_main(suite: str, parser: argparse.ArgumentParser,
               measure: Callable[[argparse.Namespace, str], SuiteOutcome], argv: Sequence[str] | None = None,
               *, passthrough: bool = False) -> int:
    """Run `suite` as a program: parse `argv` (default sys.argv[1:]), set up logging, call `measure(args, command)`,
    write `<results-dir>/<suite>.json` (or the outcome's own `suite` name), print each metric, and return the outcome's exit code.

    passthrough: arguments the parser does not know are left in `args.passthrough` (the pipeline suite hands them
    to `tinybert-edge pipeline`, the reliability suite to pytest) instead of being refused."""
    from tinybert_edge.logs import configure_logging

    arguments = list(sys.argv[1:] if argv is None else argv)
    parser.add_argument("--results-dir", default=str(DEFAULT_RESULTS_DIR),
                        help=f"where {suite}.json is written (default: {DEFAULT_RESULTS_DIR})")
    if passthrough:
        args, rest = parser.parse_known_args(arguments)
        args.passthrough = rest
    else:
        args = parser.parse_args(arguments)
    configure_logging()
    command = suite_command(suite, arguments)
    try:
        outcome = measure(args, command)
    except TinyBertEdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    path = write_suite_results(outcome.suite or suite, outcome.metrics, outcome.command or command, extra=outcome.extra,
                               results_dir=args.results_dir)
    for name, metric in outcome.metrics.items():
        print(metric_line(name, metric))
    if outcome.details:
        print(outcome.details)
    print(f"wrote {path}")
    if outcome.update_readme and Path("README.md").is_file():
        from tinybert_edge.benchmarks.readme import update_readme

        update_readme("README.md", args.results_dir)
    return outcome.exit_code


def add_run_arguments(parser: argparse.ArgumentParser, suite: str, cache_help: str,
                      threads_help: str = "torch threads for training (default: torch's choice)") -> None:
    """The options of a suite that trains in a resumable run folder (sst2, glue, ner, qa): --run, --cache-dir,
    --from-report, --train-threads and --no-progress."""
    parser.add_argument("--run", help=f"run folder (default runs/{suite}-<budget>); rerun the same folder to resume")
    parser.add_argument("--cache-dir", help=cache_help)
    parser.add_argument("--from-report", help="only rewrite the results from an existing report.json")
    parser.add_argument("--train-threads", type=int, help=threads_help)
    parser.add_argument("--no-progress", action="store_true")


def suite_report(args: argparse.Namespace, command: str, suite: str,
                 run: Callable[[Path], dict[str, Any]]) -> tuple[dict[str, Any], str]:
    """The report a training suite renders and the command behind it. Applies --train-threads; with --from-report,
    that saved report and its command (numbers rewritten without training); else `run(folder)` in --run (default
    runs/<suite>-<budget>), whose report, with this command, is saved there as report.json."""
    if args.train_threads:
        import torch

        torch.set_num_threads(args.train_threads)
    if args.from_report:
        report = json.loads(Path(args.from_report).read_text(encoding="utf-8"))
        return report, report.get("command", command)
    folder = Path(args.run or f"runs/{suite}-{args.budget}")
    report = run(folder)
    report["command"] = command
    write_json_atomic(folder / "report.json", report)
    return report, command
