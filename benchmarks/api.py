"""`bench`: measure every target at every sequence length, one subprocess per measurement (`tinybert_edge.bench`)."""

from __future__ import annotations

import logging
from contextlib import nullcontext
from typing import Any, Mapping, Sequence

import numpy as np

from tinybert_edge.benchmarks.config import BenchConfig, Target
from tinybert_edge.benchmarks.latency import Measurement, check_inputs, clear_idle_cache, measure
from tinybert_edge.errors import ConfigError
from tinybert_edge.io import model_size_bytes

log = logging.getLogger(__name__)

__all__ = ["BenchConfig", "Target", "Measurement", "bench", "check_inputs_by_length"]


def check_inputs_by_length(inputs_by_length: Mapping[int, Mapping[str, np.ndarray]], config: BenchConfig) -> None:
    """Every configured sequence length needs a pool of rows tokenized to exactly that length."""
    missing = [n for n in config.sequence_lengths if n not in inputs_by_length]
    if missing:
        raise ConfigError(
            f"inputs_by_length has no inputs for sequence lengths {missing}; "
            f"BenchConfig.sequence_lengths = {config.sequence_lengths}, inputs given for {sorted(inputs_by_length)}"
        )
    for n in config.sequence_lengths:
        width = check_inputs(inputs_by_length[n])
        if width != n:
            raise ConfigError(f"inputs_by_length[{n}] holds rows of length {width}; tokenize them to length {n}")


def _row(target: Target, measurements: dict[int, Measurement], error: str | None) -> dict[str, Any]:
    return {
        "name": target.name,
        "role": target.role,
        "backend": target.backend,
        "precision": target.precision,
        "device": target.device,
        "path": str(target.path),
        "size_bytes": model_size_bytes(target.path) if target.path.exists() else None,
        "params": target.params,
        "accuracy": target.accuracy,
        "latency": {str(n): m.to_dict() for n, m in measurements.items()},
        "error": error,
    }


def _progress(enabled: bool):
    if not enabled:
        return nullcontext(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())


def bench(
    targets: Sequence[Target],
    inputs_by_length: Mapping[int, Mapping[str, np.ndarray]],
    config: BenchConfig | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Measure each target at each of `config.sequence_lengths` on real tokenized rows; return one row per target.

    Rows are plain dicts (see `tinybert_edge.benchmarks.report`). A target that is missing, fails to load, crashes
    or times out gives a row whose `error` says why, and the run goes on with the other targets.
    """
    config = config or BenchConfig()
    names = [t.name for t in targets]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"target names must be unique; repeated: {', '.join(duplicates)}")
    check_inputs_by_length(inputs_by_length, config)
    clear_idle_cache()

    rows = []
    total = len(targets) * len(config.sequence_lengths)
    with _progress(progress) as bar:
        task = bar.add_task("benchmark", total=total) if bar is not None else None
        for target in targets:
            measurements: dict[int, Measurement] = {}
            error = None
            if not target.path.exists():
                error = f"'{target.path}' does not exist"
                log.warning("%s: %s", target.name, error)
                if bar is not None:
                    bar.advance(task, len(config.sequence_lengths))
                rows.append(_row(target, measurements, error))
                continue
            for n in config.sequence_lengths:
                if bar is not None:
                    bar.update(task, description=f"{target.name} @ {n} tokens")
                m = measure(target.backend, target.path, inputs_by_length[n], config, device=target.device)
                measurements[n] = m
                if m.ok:
                    log.info("%s @ %d: p50 %.3f ms, p99 %.3f ms, peak RSS %.1f MiB (%d calls)",
                             target.name, n, m.stats.p50_ms, m.stats.p99_ms, m.peak_rss_mb, m.stats.n)
                else:
                    log.warning("%s @ %d: %s", target.name, n, m.error)
                if bar is not None:
                    bar.advance(task)
            if measurements and all(not m.ok for m in measurements.values()):
                error = next(iter(measurements.values())).error
            rows.append(_row(target, measurements, error))
    return rows
