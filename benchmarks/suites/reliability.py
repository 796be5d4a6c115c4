"""The `reliability` suite: runs tests/reliability with pytest and publishes what it tried and what held.

    python -m tinybert_edge.benchmarks.suites.reliability [--readme] [extra pytest arguments]

Each class of promise is one test module (interruption, bad input, untrusted files, fuzzing, resources). The tests
append one JSON line per injected fault (SIGKILL, failing write, booby-trapped pickle, hostile or tampered
bundle) and per batch of fuzzing examples to the file named by TINYBERT_RELIABILITY_FAULTS; pytest's built-in
--junitxml gives each case's outcome.
Per class: value = cases passed, baseline = target = cases tried, met = every case passed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from tinybert_edge.benchmarks.results import Metric
from tinybert_edge.benchmarks.suites.command_line import SuiteOutcome, suite_main
from tinybert_edge.errors import BenchmarkError

TESTS = "tests/reliability"
FAULT_LOG_ENV = "TINYBERT_RELIABILITY_FAULTS"
CLASSES = {
    "test_interruption": "interruption",
    "test_bad_input": "bad input",
    "test_untrusted": "untrusted files",
    "test_fuzzing": "fuzzing",
    "test_resources": "resources",
}


def parse_junit(path: Path) -> dict[str, dict[str, Any]]:
    """Cases tried, passed, failed and skipped per class, with the names of those that did not pass."""
    outcome: dict[str, dict[str, Any]] = {name: {"tried": 0, "passed": 0, "failed": [], "skipped": []}
                                          for name in CLASSES.values()}
    for case in ET.parse(path).getroot().iter("testcase"):
        module = case.get("classname", "").rsplit(".", 1)[-1]
        name = CLASSES.get(module)
        if name is None:
            continue
        entry = outcome[name]
        test_id = f"{module}::{case.get('name')}"
        if case.find("skipped") is not None:
            entry["skipped"].append(test_id)
            continue
        entry["tried"] += 1
        if case.find("failure") is not None or case.find("error") is not None:
            entry["failed"].append(test_id)
        else:
            entry["passed"] += 1
    return outcome


def read_faults(path: Path) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    fuzz: Counter[str] = Counter()
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            counts[record["kind"]] += int(record.get("count", 1))
            if record["kind"] == "fuzz_examples":
                fuzz[record.get("target", "?")] += int(record.get("count", 1))
    return {"counts": dict(counts), "fuzz_examples_by_target": dict(fuzz)}


def reliability_metrics(outcome: dict[str, dict[str, Any]], faults: dict[str, Any]) -> dict[str, Metric]:
    metrics: dict[str, Metric] = {}
    for name, entry in outcome.items():
        if entry["tried"]:
            metrics[f"{name}: cases passed of tried"] = Metric(entry["passed"], "cases", baseline=entry["tried"],
                                                               target=entry["tried"])
    counts = faults["counts"]
    metrics["faults injected: SIGKILLs"] = Metric(counts.get("sigkill", 0), "faults")
    metrics["faults injected: failing writes (ENOSPC, EDQUOT, EFBIG)"] = Metric(counts.get("failing_write", 0), "faults")
    metrics["faults injected: booby-trapped pickles"] = Metric(counts.get("malicious_pickle", 0), "files")
    metrics["faults injected: hostile or tampered bundles"] = Metric(counts.get("hostile_bundle", 0), "files")
    metrics["fuzzing examples run"] = Metric(counts.get("fuzz_examples", 0), "examples")
    return metrics


def build_parser() -> argparse.ArgumentParser:
    # Every other argument goes to pytest (its -h included), so this parser adds no help of its own.
    parser = argparse.ArgumentParser(prog="python -m tinybert_edge.benchmarks.suites.reliability", add_help=False,
                                     allow_abbrev=False)
    parser.add_argument("--readme", action="store_true", help="rewrite the README's benchmark table afterwards")
    return parser


def _measure(args: argparse.Namespace, command: str) -> SuiteOutcome:
    with tempfile.TemporaryDirectory(prefix="reliability-") as scratch:
        junit, fault_log = Path(scratch) / "junit.xml", Path(scratch) / "faults.jsonl"
        env = {**os.environ, FAULT_LOG_ENV: str(fault_log)}
        done = subprocess.run([sys.executable, "-m", "pytest", TESTS, "-q", "-p", "no:cacheprovider",
                               f"--junitxml={junit}", *args.passthrough], env=env)
        if not junit.is_file():
            raise BenchmarkError(f"pytest wrote no report (exit {done.returncode}); nothing recorded")
        outcome, faults = parse_junit(junit), read_faults(fault_log)
    return SuiteOutcome(reliability_metrics(outcome, faults),
                        {"pytest_exit_code": done.returncode, "classes": outcome, "faults": faults},
                        exit_code=0 if done.returncode == 0 else 1, update_readme=args.readme)


def main(argv: Sequence[str] | None = None) -> int:
    return suite_main("reliability", build_parser(), _measure, argv, passthrough=True)


if __name__ == "__main__":
    sys.exit(main())
