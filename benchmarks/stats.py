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
BOOTSTRAP_RESAMPLES = 2000


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


def paired_p50_ratio_interval(ours_rounds: Sequence[Sequence[float]], baseline_rounds: Sequence[Sequence[float]],
                              confidence: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                              min_rounds: int = 5) -> tuple[float, float] | None:
    """Confidence interval of p50(ours) / p50(baseline), each pooled over measurement rounds.

    Percentile bootstrap over rounds: a resample draws round indices with replacement and takes the same rounds
    for both sides (a round measured the two side by side), so a slow spell of the machine moves both p50s together
    instead of widening the interval. The rounds, not the single calls, are what is resampled, because calls within
    a round are not independent of each other. None with fewer than `min_rounds` rounds: a handful of rounds cannot
    say how far the machine drifts."""
    if len(ours_rounds) != len(baseline_rounds):
        raise BenchmarkError(f"paired rounds differ in number: {len(ours_rounds)} for ours, "
                             f"{len(baseline_rounds)} for the baseline")
    if not 0.0 < confidence < 1.0:
        raise BenchmarkError(f"confidence = {confidence!r} is not allowed; allowed: a number between 0 and 1")
    if len(ours_rounds) < min_rounds:
        return None
    ours = [np.asarray(r, dtype=np.float64) for r in ours_rounds]
    base = [np.asarray(r, dtype=np.float64) for r in baseline_rounds]
    if any(r.size == 0 for r in ours + base):
        raise BenchmarkError("a measurement round recorded no timed call")
    rng = np.random.default_rng(seed)
    n = len(ours)
    ratios = np.empty(resamples)
    for i in range(resamples):
        picked = rng.integers(0, n, size=n)
        ratios[i] = (np.median(np.concatenate([ours[j] for j in picked]))
                     / np.median(np.concatenate([base[j] for j in picked])))
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(ratios, [tail, 100.0 - tail])
    return float(low), float(high)
