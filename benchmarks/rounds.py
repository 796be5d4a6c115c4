"""Measurement rounds: every target measured once per round, each round in a rotated order, and each target's timed
calls pooled over the rounds.

Why rounds: on a shared machine the load changes between measurements; one pass over the targets lets a slow spell
fall on whichever target ran during it. Measured round by round, in an order that rotates, a slow spell falls on
every target alike, and a target's p50 comes from all its timed calls together. The per-round p50s are kept: their
spread says how far the machine drifted, and pairing two targets' rounds (`stats.paired_p50_ratio_interval`)
resamples whole rounds, because calls within one round are not independent of each other.

The pooled structure is a list of per-round sample lists, one per target and point (`Sequence[Sequence[float]]`);
`pool_measurements` turns the rounds' measurement dicts of one point into one, and `pool_rounds` does so for every
headline point of rows measured round by round by `bench`.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from typing import Any, Mapping, Sequence, TypeVar

from tinybert_edge.benchmarks.rows import MeasurementDict, Row, as_row, succeeded
from tinybert_edge.benchmarks.stats import LatencyStats

T = TypeVar("T")


# Seconds to wait before timing the next target of a round in the same process. ONNX Runtime's intra-op workers spin
# for a while after a session's last call; on two cores the spinning worker of the session just timed takes a core
# from the next one, which then runs at about half speed. Measured with two identical int8 sessions of one student,
# rotated, 2 threads: without a pause every second one timed 8.0 instead of 4.0 ms; with 50 ms both 4.0-4.1 ms.
# (The bench's own targets run in subprocesses, one after another, and need no pause.)
SETTLE_SECONDS = 0.05


def settle() -> None:
    """Let the previous in-process target's runtime threads park before the next target is timed."""
    time.sleep(SETTLE_SECONDS)


def rotated(items: Sequence[T], round_index: int) -> list[T]:
    """The order of round `round_index`: `items` started at position round_index mod len(items)."""
    if not items:
        return []
    start = round_index % len(items)
    return list(items[start:]) + list(items[:start])


def round_p50s(rounds: Sequence[Sequence[float]]) -> list[float]:
    """The p50 of each round's timed calls (ms), in round order."""
    return [LatencyStats.from_samples(r).p50_ms for r in rounds]


def pooled_stats(rounds: Sequence[Sequence[float]], batch_size: int = 1) -> LatencyStats:
    """The statistics of every round's timed calls taken together."""
    return LatencyStats.from_samples([t for r in rounds for t in r], batch_size)


def pool_measurements(measurements: Sequence[Mapping[str, Any]]) -> MeasurementDict:
    """One measurement of one point from its measurements in several rounds: the first round's, with `samples_ms`
    every round's timed calls in round order, `stats` derived from them, `round_p50_ms` each round's p50 and
    `peak_rss_mb` the highest. A point that failed in any round stays failed, with that round's measurement."""
    failed = next((m for m in measurements if not succeeded(m)), None)
    if failed is not None:
        return dict(failed)
    rounds = [m["samples_ms"] for m in measurements]
    pooled = copy.deepcopy(dict(measurements[0]))
    pooled["samples_ms"] = [float(t) for r in rounds for t in r]
    pooled["stats"] = pooled_stats(rounds, int(pooled["batch_size"])).summary()
    pooled["round_p50_ms"] = round_p50s(rounds)
    peaks = [m["peak_rss_mb"] for m in measurements if m.get("peak_rss_mb") is not None]
    pooled["peak_rss_mb"] = max(peaks) if peaks else None
    return pooled


def pool_rounds(rounds: Sequence[Mapping[str, Row | Mapping[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Rows measured round by round ({name: row} per round) as one row per target, in the JSON form: the first
    round's row with each headline measurement pooled over the rounds that measured it (`pool_measurements`)."""
    pooled: dict[str, dict[str, Any]] = {}
    for name, first in rounds[0].items():
        row = as_row(first)
        latency = {}
        for length in row.latency:
            same = [as_row(r[name]).latency[length] for r in rounds if name in r and length in as_row(r[name]).latency]
            latency[length] = pool_measurements(same)
        pooled[name] = dataclasses.replace(row, latency=latency).to_dict()
    return pooled
