"""The README's benchmark table, generated from benchmarks/results/*.json and never typed by hand.

    python -m tinybert_edge.benchmarks.readme [--readme README.md] [--results-dir benchmarks/results]

rewrites the lines between `<!-- bench:start -->` and `<!-- bench:end -->` in the README.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from tinybert_edge.benchmarks.results import DEFAULT_RESULTS_DIR, load_suite_results
from tinybert_edge.errors import ConfigError, TinyBertEdgeError
from tinybert_edge.io import write_text_atomic

log = logging.getLogger(__name__)

START_MARKER = "<!-- bench:start -->"
END_MARKER = "<!-- bench:end -->"


def format_number(value: float | int | None, digits: int = 3) -> str:
    """A number for a Markdown cell: '—' for None, integers as is, others to `digits` significant figures."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if value != 0 and (abs(value) >= 10 ** digits):
        return f"{value:.0f}"
    return f"{value:.{digits}g}"


def markdown_cell(text: object) -> str:
    """Text that cannot break a Markdown table row."""
    return str(text).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _met_cell(met: bool | None) -> str:
    return "—" if met is None else ("✅" if met else "❌")


def _ratio_cell(metric: Mapping[str, Any]) -> str:
    interval = metric.get("ratio_interval")
    ratio = format_number(metric.get("ratio"))
    return f"{ratio} ({format_number(interval[0])}–{format_number(interval[1])})" if interval else ratio


def render_markdown_table(results: Iterable[str | os.PathLike[str] | Mapping[str, Any]]) -> str:
    """One Markdown table over suite result files (paths or loaded dicts): a row per metric, grouped by suite."""
    documents = [r if isinstance(r, Mapping) else load_suite_results(r) for r in results]
    header = "| suite | metric | value | unit | baseline | ratio | target | direction | met |"
    lines = [header, "|---|---|---:|---|---:|---:|---:|---|:---:|"]
    for doc in sorted(documents, key=lambda d: d["suite"]):
        for name, metric in doc["metrics"].items():
            direction = {"higher_is_better": "higher", "lower_is_better": "lower"}.get(metric.get("direction"), "—")
            lines.append(
                "| "
                + " | ".join(
                    [
                        markdown_cell(doc["suite"]),
                        markdown_cell(name),
                        format_number(metric["value"]),
                        markdown_cell(metric.get("unit", "")),
                        format_number(metric.get("baseline")),
                        _ratio_cell(metric),
                        format_number(metric.get("target")),
                        direction,
                        _met_cell(metric.get("met")),
                    ]
                )
                + " |"
            )
    revisions = sorted({(d.get("git") or {}).get("revision", "")[:12] for d in documents} - {""})
    dates = sorted(d["timestamp"][:10] for d in documents if d.get("timestamp"))
    note = f"Generated from benchmarks/results/*.json ({len(documents)} suite{'' if len(documents) == 1 else 's'}"
    if dates:
        note += f", measured {dates[0]}" + (f" to {dates[-1]}" if dates[-1] != dates[0] else "")
    if revisions:
        note += f", git {', '.join(revisions)}"
    note += ") by `python -m tinybert_edge.benchmarks.readme`; do not edit by hand."
    if any("ratio_interval" in metric for doc in documents for metric in doc["metrics"].values()):
        note += (" A ratio followed by (low–high) carries its 95% confidence interval over the suite's measurement"
                 " rounds; such a row is met unless the whole interval lies on the wrong side of target / baseline"
                 " (for latency: ours not shown slower).")
    note += "\n\nThe command behind each suite:\n\n" + "\n".join(
        f"- {markdown_cell(d['suite'])}: `{d['command']}`" for d in sorted(documents, key=lambda d: d["suite"]))
    details = []
    for doc in sorted(documents, key=lambda d: d["suite"]):
        body = (doc.get("extra") or {}).get("report_markdown")
        if body:
            # The suite's own report, minus its title and picture links (their paths are relative to the run).
            kept = [line for line in body.splitlines()[1:] if not line.startswith("![")]
            details += ["", f"#### {doc['suite']}: the run behind these numbers", "",
                        f"Command: `{doc['command']}`", *kept]
    return "\n".join(lines) + "\n\n" + note + "\n" + "\n".join(details) + ("\n" if details else "")


def replace_section(text: str, table: str) -> str:
    """`text` with the lines between the bench markers replaced by `table`."""
    start, end = text.find(START_MARKER), text.find(END_MARKER)
    if start < 0 or end < 0 or end < start:
        raise ConfigError(
            f"the README has no '{START_MARKER}' ... '{END_MARKER}' section; add both markers where the table goes"
        )
    head = text[: start + len(START_MARKER)]
    return head + "\n" + table + text[end:]


def update_readme(readme: str | os.PathLike[str] = "README.md", results_dir: str | os.PathLike[str] = DEFAULT_RESULTS_DIR) -> Path:
    """Rewrite the README's benchmark section from every suite result file in `results_dir`."""
    files = sorted(Path(results_dir).glob("*.json"))
    if not files:
        raise ConfigError(f"'{results_dir}' holds no suite result files (*.json); run a benchmark suite first")
    readme = Path(readme)
    if not readme.is_file():
        raise ConfigError(f"README '{readme}' does not exist; pass --readme with the README's path")
    text = readme.read_text(encoding="utf-8")
    return write_text_atomic(readme, replace_section(text, render_markdown_table(files)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinybert_edge.benchmarks.readme", description=__doc__.splitlines()[0])
    parser.add_argument("--readme", default="README.md", help="the README to rewrite (default: README.md)")
    parser.add_argument("--results-dir", default=str(DEFAULT_RESULTS_DIR), help="folder of suite result files")
    args = parser.parse_args(argv)
    try:
        path = update_readme(args.readme, args.results_dir)
    except TinyBertEdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"updated {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
