"""The `reliability` suite: runs tests/reliability with pytest and publishes what it tried and what held.

    python -m tinybert_edge.benchmarks.suites.reliability [--readme] [extra pytest arguments]

Each class of promise is one test module (interruption, bad input, untrusted files, fuzzing, resources). The tests
append one JSON line per injected fault (SIGKILL, failing write, booby-trapped pickle, hostile or tampered
bundle) and per batch of fuzzing examples to the file named by TINYBERT_RELIABILITY_FAULTS; pytest's built-in
--junitxml gives each case's outcome.
Per class: value = cases passed, baseline = target = cases tried, met = every case passed.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from tinybert_edge.benchmarks.results import Metric, write_suite_results

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


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    readme = "--readme" in args
    pytest_args = [a for a in args if a != "--readme"]
    command = "python -m tinybert_edge.benchmarks.suites.reliability " + shlex.join(args)
    with tempfile.TemporaryDirectory(prefix="reliability-") as scratch:
        junit, fault_log = Path(scratch) / "junit.xml", Path(scratch) / "faults.jsonl"
        env = {**os.environ, FAULT_LOG_ENV: str(fault_log)}
        done = subprocess.run([sys.executable, "-m", "pytest", TESTS, "-q", "-p", "no:cacheprovider",
                               f"--junitxml={junit}", *pytest_args], env=env)
        if not junit.is_file():
            print(f"pytest wrote no report (exit {done.returncode}); nothing recorded", file=sys.stderr)
            return 2
        outcome, faults = parse_junit(junit), read_faults(fault_log)
    metrics = reliability_metrics(outcome, faults)
    path = write_suite_results("reliability", metrics, command.strip(),
                               extra={"pytest_exit_code": done.returncode, "classes": outcome, "faults": faults})
    for name, metric in metrics.items():
        print(f"{name}: {metric.value:g} {metric.unit}" + (f" of {metric.target:g}" if metric.target is not None else ""))
    print(f"wrote {path}")
    if readme and Path("README.md").is_file():
        from tinybert_edge.benchmarks.readme import update_readme

        update_readme("README.md")
    return 0 if done.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
