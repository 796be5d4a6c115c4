"""Suite result files: `benchmarks/results/<suite>.json`, one per suite, written atomically.

Schema (version 1):
    {"schema_version": 1, "suite": ..., "command": ..., "timestamp": ISO-8601 UTC, "git": {"revision", "dirty"} | null,
     "environment": {...}, "metrics": {name: {value, unit, baseline, ratio, target, direction, met}}, "extra": {...}}
`ratio` = value / baseline when both are given. `met` compares `value` with `target` in the metric's `direction`
("higher_is_better": value >= target; "lower_is_better": value <= target); null when there is no target.

A measured comparison can carry `ratio_interval` = [low, high], a confidence interval of `ratio` (the converters
suite: a bootstrap over its measurement rounds). Its `met` then says whether the target is within what was measured:
"lower_is_better" is met unless the whole interval lies above target / baseline ("not shown slower"), and
"higher_is_better" unless it lies wholly below. The key is written only for metrics that have one.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from tinybert_edge.benchmarks.environment import environment
from tinybert_edge.errors import ConfigError
from tinybert_edge.io import write_json_atomic

SCHEMA_VERSION = 1
SUITES = ("pipeline", "distill", "converters", "harness", "bundle", "sst2", "sst2-small", "sst2-gpu", "glue",
          "reliability", "platforms", "embeddings", "ner", "qa", "inference")
DIRECTIONS = ("higher_is_better", "lower_is_better")
DEFAULT_RESULTS_DIR = Path("benchmarks/results")


def _check_number(name: str, value: object, *, optional: bool) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        allowed = "None or a finite number" if optional else "a finite number"
        raise ConfigError(f"Metric.{name} = {value!r} is not allowed; allowed: {allowed}")


@dataclass(frozen=True)
class Metric:
    """One headline number of a suite, with what it is compared against."""

    value: float
    unit: str
    direction: str = "higher_is_better"
    baseline: float | None = None
    target: float | None = None
    ratio_interval: tuple[float, float] | None = None
    ratio: float | None = field(init=False)
    met: bool | None = field(init=False)

    def __post_init__(self) -> None:
        _check_number("value", self.value, optional=False)
        _check_number("baseline", self.baseline, optional=True)
        _check_number("target", self.target, optional=True)
        if not isinstance(self.unit, str):
            raise ConfigError(f"Metric.unit = {self.unit!r} is not allowed; allowed: a string such as 'ms' or 'x'")
        if self.direction not in DIRECTIONS:
            raise ConfigError(f"Metric.direction = {self.direction!r} is not allowed; allowed: {', '.join(DIRECTIONS)}")
        ratio = self.value / self.baseline if self.baseline not in (None, 0) else None
        if self.ratio_interval is not None:
            self._check_interval(ratio)
        if self.target is None:
            met = None
        elif self.ratio_interval is not None:
            low, high = self.ratio_interval
            target_ratio = self.target / self.baseline
            met = low <= target_ratio if self.direction == "lower_is_better" else high >= target_ratio
        elif self.direction == "higher_is_better":
            met = self.value >= self.target
        else:
            met = self.value <= self.target
        object.__setattr__(self, "ratio", ratio)
        object.__setattr__(self, "met", met)

    def _check_interval(self, ratio: float | None) -> None:
        interval = self.ratio_interval
        if (ratio is None or not isinstance(interval, (tuple, list)) or len(interval) != 2
                or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in interval)
                or not interval[0] <= interval[1]):
            raise ConfigError(f"Metric.ratio_interval = {interval!r} is not allowed; allowed: None, or [low, high] "
                              "finite numbers with low <= high on a metric with a non-zero baseline")
        object.__setattr__(self, "ratio_interval", (float(interval[0]), float(interval[1])))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        keys = ["value", "unit", "baseline", "ratio", "target", "direction", "met"]
        if self.ratio_interval is not None:
            keys.insert(4, "ratio_interval")
            data["ratio_interval"] = list(self.ratio_interval)
        return {key: data[key] for key in keys}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Metric":
        return cls(
            value=data["value"],
            unit=data["unit"],
            direction=data.get("direction", "higher_is_better"),
            baseline=data.get("baseline"),
            target=data.get("target"),
            ratio_interval=data.get("ratio_interval"),
        )


def write_suite_results(
    suite: str,
    metrics: Mapping[str, Metric],
    command: str,
    extra: dict | None = None,
    results_dir: str | os.PathLike[str] = DEFAULT_RESULTS_DIR,
) -> Path:
    """Write `<results_dir>/<suite>.json` atomically and return its path. A failure leaves the previous file."""
    if suite not in SUITES:
        raise ConfigError(f"suite = {suite!r} is not allowed; allowed: {', '.join(SUITES)}")
    if not metrics:
        raise ConfigError("metrics = {} is not allowed; allowed: a non-empty mapping of names to Metric")
    for name, metric in metrics.items():
        if not isinstance(name, str) or not name or not isinstance(metric, Metric):
            raise ConfigError(f"metrics[{name!r}] = {metric!r} is not allowed; allowed: a Metric under a non-empty name")
    env = environment()
    document = {
        "schema_version": SCHEMA_VERSION,
        "suite": suite,
        "command": command,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git": env["git"],
        "environment": env,
        "metrics": {name: metric.to_dict() for name, metric in metrics.items()},
        "extra": extra or {},
    }
    # Serialise before anything touches the disk, and refuse NaN/inf, so a bad value cannot leave a half-written
    # or non-standard JSON file behind.
    text = json.dumps(document, allow_nan=False, default=_jsonable)
    return write_json_atomic(Path(results_dir) / f"{suite}.json", json.loads(text))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


def load_suite_results(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read one suite result file and check its schema version."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if data.get("schema_version") != SCHEMA_VERSION or "metrics" not in data or "suite" not in data:
        raise ConfigError(
            f"'{path}' is not a suite result file of schema_version {SCHEMA_VERSION}; "
            "write it with tinybert_edge.benchmarks.results.write_suite_results"
        )
    return data
