"""`Row`: one model variant's benchmark result (what it is, its size, its metrics, its latency and memory at every
measured point, and how it compares with the teacher), and the accessors every report and suite reads it with.

A row travels as JSON (`Row.to_dict()`, read back with `Row.from_dict()`): report.json files, the pipeline's report
and `bench()`'s return value hold that form, so `rows[i]["latency"]["128"]["stats"]["p50_ms"]` and
`rows[i]["accuracy"]` keep working for the code and notebooks that index it. Code inside the harness reads rows
through this module: the accessors take a `Row` or its JSON form alike.

The measurements inside a row stay the JSON dicts of `Measurement.to_dict()`: suites annotate them in place
(`roofline`, `speedup_vs_teacher`, `round_p50_ms`), and a report without raw samples (the harness's slim copy) still
has their statistics, which `Measurement.from_dict` would derive again from the samples. So a `Row` is frozen, its
measurements are not, and `from_dict`/`to_dict` share them rather than copy them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

# The teacher's row in every report (bench, pipeline, harness, sst2), so `bench compare` matches teachers across them.
TEACHER_NAME = "teacher · PyTorch fp32"
# Classification's metric. A task's own primary metric (pearson, entity F1, SQuAD F1, ...) takes its place.
DEFAULT_PRIMARY_METRIC = "accuracy"

# A measurement: a `Measurement.to_dict()`, possibly annotated by a suite.
MeasurementDict = dict[str, Any]


@dataclass(frozen=True)
class TeacherComparison:
    """This row against the teacher measured in the same run; None where either side has no number.

    speedup: {seq_len: teacher p50 / row p50}; size_reduction: teacher bytes / row bytes; memory_reduction:
    teacher peak RSS / row peak RSS; metric_retained: row primary metric / teacher primary metric."""

    speedup: dict[str, float | None]
    size_reduction: float | None
    memory_reduction: float | None
    metric_retained: float | None


@dataclass(frozen=True)
class Row:
    """One target's result: identity, size, task metrics, the headline measurement per sequence length (`latency`),
    every grid point (`sweep`), the error that stopped it, and the comparison with the teacher once made."""

    name: str
    role: str
    backend: str
    precision: str
    path: str
    device: str = "cpu"
    size_bytes: int | None = None
    params: int | None = None
    # Task metrics on labelled data ({"accuracy": 0.91}); `primary_metric` names the one tables and ratios use.
    metrics: dict[str, float] = field(default_factory=dict)
    primary_metric: str = DEFAULT_PRIMARY_METRIC
    # How many examples the metrics were measured on, and why they could not be (bench with `data`).
    metrics_n: int | None = None
    metrics_error: str | None = None
    # The headline point (BenchConfig.batch_size, threads) per sequence length, keyed by str(seq_len) as in JSON.
    latency: dict[str, MeasurementDict] = field(default_factory=dict)
    # Every point of the grid, headline included, each with its seq_len, batch_size and threads.
    sweep: list[MeasurementDict] = field(default_factory=list)
    error: str | None = None
    comparison: TeacherComparison | None = None
    # Keys this type does not hold (a suite's labels, the pipeline's agreement with the student, roofline's
    # bert_shape), kept in their order so that a file read and written again is the same file.
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def score(self) -> float | None:
        """The primary metric's value (accuracy for classification), None when it was not measured."""
        return self.metrics.get(self.primary_metric)

    def compared_to(self, teacher: Row) -> Row:
        """This row with its comparison against `teacher`, every ratio from numbers of the same run."""
        comparison = TeacherComparison(
            speedup={str(n): _ratio(latency_ms(teacher, n), latency_ms(self, n)) for n in sequence_lengths([self, teacher])},
            size_reduction=_ratio(teacher.size_bytes, self.size_bytes),
            memory_reduction=_ratio(peak_rss_mb(teacher), peak_rss_mb(self)),
            metric_retained=_ratio(self.score, teacher.score),
        )
        return dataclasses.replace(self, comparison=comparison)

    # --- the JSON form ---------------------------------------------------------------------------------------------

    def _metric_keys(self) -> tuple[str, str, str]:
        # Named after the primary metric, so a classification row keeps its historic keys accuracy_n,
        # accuracy_error and accuracy_retained.
        return f"{self.primary_metric}_n", f"{self.primary_metric}_error", f"{self.primary_metric}_retained"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: today's report.json row, key for key and in the same order."""
        n_key, error_key, retained_key = self._metric_keys()
        data: dict[str, Any] = {
            "name": self.name, "role": self.role, "backend": self.backend, "precision": self.precision,
            "device": self.device, "path": self.path, "size_bytes": self.size_bytes, "params": self.params,
            self.primary_metric: self.score,
        }
        if self.primary_metric != DEFAULT_PRIMARY_METRIC or set(self.metrics) - {self.primary_metric}:
            data["primary_metric"] = self.primary_metric
            data["metrics"] = dict(self.metrics)
        data.update(latency=self.latency, sweep=self.sweep, error=self.error)
        # The count is written whenever metrics were tried, even when they failed (then it is null).
        if self.metrics_n is not None or self.metrics_error is not None:
            data[n_key] = self.metrics_n
        if self.metrics_error is not None:
            data[error_key] = self.metrics_error
        data.update(self.extra)
        if self.comparison is not None:
            data.update(speedup=self.comparison.speedup, size_reduction=self.comparison.size_reduction,
                        memory_reduction=self.comparison.memory_reduction)
            data[retained_key] = self.comparison.metric_retained
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Row:
        """Read a row's JSON form. Keys it lacks read as absent (a partial row from an older report or a test
        reads as one with no size, metrics or measurements); keys this type does not hold go to `extra`."""
        primary = data.get("primary_metric", DEFAULT_PRIMARY_METRIC)
        metrics = dict(data.get("metrics") or {})
        if data.get(primary) is not None:
            metrics[primary] = data[primary]
        n_key, error_key, retained_key = f"{primary}_n", f"{primary}_error", f"{primary}_retained"
        comparison = None
        if "speedup" in data:
            comparison = TeacherComparison(speedup=data["speedup"], size_reduction=data.get("size_reduction"),
                                           memory_reduction=data.get("memory_reduction"),
                                           metric_retained=data.get(retained_key))
        known = {*_FIELD_KEYS, primary, n_key, error_key, retained_key}
        return cls(
            name=data["name"], role=data.get("role", ""), backend=data.get("backend", ""),
            precision=data.get("precision", ""), path=str(data.get("path", "")), device=data.get("device", "cpu"),
            size_bytes=data.get("size_bytes"), params=data.get("params"), metrics=metrics, primary_metric=primary,
            metrics_n=data.get(n_key), metrics_error=data.get(error_key), latency=data.get("latency") or {},
            sweep=data.get("sweep") or [], error=data.get("error"), comparison=comparison,
            extra={key: value for key, value in data.items() if key not in known},
        )


_FIELD_KEYS = frozenset({"name", "role", "backend", "precision", "device", "path", "size_bytes", "params",
                         "primary_metric", "metrics", "latency", "sweep", "error", "speedup", "size_reduction",
                         "memory_reduction"})


def as_row(row: Row | Mapping[str, Any]) -> Row:
    """`row` itself, or the `Row` its JSON form describes."""
    return row if isinstance(row, Row) else Row.from_dict(row)


# --- the accessors: every p50, p99, peak RSS and device memory of a report is read here ------------------------------


def succeeded(measurement: Mapping[str, Any] | None) -> bool:
    """Whether a measurement ran and has statistics."""
    return bool(measurement) and not measurement.get("error") and bool(measurement.get("stats"))


def measurement_ms(measurement: Mapping[str, Any] | None, statistic: str = "p50_ms") -> float | None:
    """A latency statistic of one measurement (p50_ms by default; p90_ms, p99_ms, mean_ms, ...); None when it
    failed or was not taken."""
    return measurement["stats"][statistic] if succeeded(measurement) else None


def headline(row: Row | Mapping[str, Any], seq_len: int | str) -> MeasurementDict | None:
    """The row's headline measurement at `seq_len` when it succeeded, else None."""
    measurement = as_row(row).latency.get(str(seq_len))
    return measurement if succeeded(measurement) else None


def latency_ms(row: Row | Mapping[str, Any], seq_len: int | str, statistic: str = "p50_ms") -> float | None:
    """A latency statistic (p50_ms by default) of the row's headline measurement at `seq_len`."""
    return measurement_ms(as_row(row).latency.get(str(seq_len)), statistic)


def sweep_point(row: Row | Mapping[str, Any], seq_len: int, batch_size: int, threads: int) -> MeasurementDict | None:
    """The row's successful measurement at one grid point, or None."""
    for m in as_row(row).sweep:
        if (int(m["seq_len"]), int(m["batch_size"]), int(m["threads"])) == (seq_len, batch_size, threads):
            return m if succeeded(m) else None
    return None


def peak_rss_mb(row: Row | Mapping[str, Any]) -> float | None:
    """The row's highest peak RSS over its successful headline measurements (MiB)."""
    peaks = [m["peak_rss_mb"] for m in as_row(row).latency.values()
             if m and not m.get("error") and m.get("peak_rss_mb")]
    return max(peaks) if peaks else None


def device_memory_mb(row: Row | Mapping[str, Any]) -> float | None:
    """A CUDA row's device memory (MiB): the most the driver saw the process hold over its measurements, or the
    torch allocator's peak where the driver figure is missing (see memory.cuda_memory_mb)."""
    values = []
    for m in as_row(row).latency.values():
        memory = (m or {}).get("device_memory") or {}
        value = memory.get("process_mb") if memory.get("process_mb") is not None else memory.get("allocator_peak_mb")
        if value is not None and not m.get("error"):
            values.append(float(value))
    return max(values) if values else None


def sequence_lengths(rows: Iterable[Row | Mapping[str, Any]]) -> list[int]:
    """Every sequence length any row was measured at, ascending."""
    return sorted({int(key) for row in rows for key in as_row(row).latency})


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator in (None, 0):
        return None
    return numerator / denominator
