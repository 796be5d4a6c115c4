"""Latency statistics: every timed value is kept; p50/p90/p95/p99, mean, stdev and throughput derive from them.

Percentiles use linear interpolation between the closest ranks (numpy's default, as optimum-benchmark does):
for samples 1..100 ms, p50 = 50.5 ms and p99 = 99.01 ms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from tinybert_edge.errors import BenchmarkError

PERCENTILES = (50, 90, 95, 99)


@dataclass(frozen=True)
class LatencyStats:
    """Summary of the timed calls of one measurement. Times in milliseconds; throughput in examples per second."""

    samples_ms: tuple[float, ...] = field(repr=False)
    batch_size: int
    n: int
    mean_ms: float
    stdev_ms: float
    min_ms: float
    max_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    throughput_per_s: float

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float], batch_size: int = 1) -> "LatencyStats":
        """Derive the statistics from per-call latencies (ms). `stdev_ms` is the sample standard deviation
        (n - 1 in the denominator; 0 for one sample); throughput = batch_size / mean latency."""
        values = np.asarray(list(samples_ms), dtype=np.float64)
        if values.ndim != 1 or values.size == 0:
            raise BenchmarkError("latency statistics need at least one timed call; the measurement recorded none")
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise BenchmarkError("latency samples must be finite and non-negative milliseconds")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise BenchmarkError(f"batch_size = {batch_size!r} is not allowed; allowed: an integer >= 1")
        p50, p90, p95, p99 = (float(v) for v in np.percentile(values, PERCENTILES))
        mean = float(values.mean())
        if mean == 0.0:
            raise BenchmarkError("every timed call took 0 ms; the timer cannot resolve these calls")
        return cls(
            samples_ms=tuple(float(v) for v in values),
            batch_size=batch_size,
            n=int(values.size),
            mean_ms=mean,
            stdev_ms=float(values.std(ddof=1)) if values.size > 1 else 0.0,
            min_ms=float(values.min()),
            max_ms=float(values.max()),
            p50_ms=p50,
            p90_ms=p90,
            p95_ms=p95,
            p99_ms=p99,
            throughput_per_s=batch_size * 1000.0 / mean,
        )

    def summary(self) -> dict[str, Any]:
        """The derived numbers (no samples), as JSON-ready numbers."""
        return {
            "n": self.n,
            "batch_size": self.batch_size,
            "mean_ms": self.mean_ms,
            "stdev_ms": self.stdev_ms,
            "min_ms": self.min_ms,
            "max_ms": self.max_ms,
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
            "throughput_per_s": self.throughput_per_s,
        }
