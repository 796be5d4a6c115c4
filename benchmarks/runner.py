"""`bench`: measure every target over the grid of sequence lengths, batch sizes and thread counts, one subprocess
per measurement (`tinybert_edge.bench`, and `tinybert-edge bench` on the command line).

Two ways to call it:
- `bench(targets, inputs_by_length, config)`: the caller brings tokenized inputs and known accuracies (what the
  pipeline does); returns the raw rows.
- `bench(targets, config=config, teacher=DIR, data=FILE, out=DIR)`: the teacher becomes the first row, the inputs
  are real tokenized rows of `data`, every target's accuracy on `data` is measured, the rows are compared with the
  teacher, and report.json, report.md and the two plots are written into `out` (see `report.write_bench_report`).
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from tinybert_edge.artifacts import Artifact, has_tokenizer
from tinybert_edge.benchmarks.config import BenchConfig, Target, parse_target
from tinybert_edge.benchmarks.latency import Measurement, check_inputs, clear_idle_cache, measure
from tinybert_edge.benchmarks.rows import TEACHER_NAME, Row
from tinybert_edge.errors import ConfigError, TinyBertEdgeError
from tinybert_edge.io import model_size_bytes

log = logging.getLogger(__name__)

__all__ = ["BenchConfig", "Target", "Measurement", "bench", "check_inputs_by_length", "inputs_from_data",
           "TEACHER_NAME"]

# Accuracy is measured on at most this many examples (a fixed-seed sample) unless `max_examples` says otherwise.
DEFAULT_MAX_EXAMPLES = 1000
# How many real rows the latency pool cycles through.
POOL_ROWS = 256


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


def _row(target: Target, latency: dict[int, dict], sweep: list[dict], error: str | None) -> Row:
    metrics = dict(target.metrics) or ({} if target.accuracy is None else {"accuracy": target.accuracy})
    return Row(
        name=target.name,
        role=target.role,
        backend=target.backend,
        precision=target.precision,
        device=target.device,
        path=str(target.path),
        size_bytes=model_size_bytes(target.path) if target.path.exists() else None,
        params=target.params,
        metrics=metrics,
        primary_metric=target.primary_metric,
        metrics_n=target.extra.get("accuracy_n"),
        metrics_error=target.extra.get("accuracy_error"),
        latency={str(n): m for n, m in latency.items()},
        sweep=sweep,
        error=error,
    )


def _progress(enabled: bool):
    if not enabled:
        return nullcontext(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())


# --- real inputs and accuracy from labelled data --------------------------------------------------------------------


def tokenizer_folder(path: Path, fallback: Path | None = None) -> Path | None:
    """Where the tokenizer of a model or artifact is (see tinybert_edge.artifacts.Artifact.tokenizer_dir); a
    TinyBERT student shares its teacher's vocabulary, so the teacher's folder is the `fallback`."""
    try:
        return Artifact.open(path).tokenizer_dir(fallback)
    except TinyBertEdgeError:
        return fallback if has_tokenizer(fallback) else None


def _load_data(data: Any, max_examples: int | None):
    from tinybert_edge.data import DataSpec, load_data, sample

    loaded = load_data(data) if isinstance(data, (str, os.PathLike, DataSpec)) else data
    return sample(loaded, max_examples, seed=0)


def inputs_from_data(tokenizer: Any, data: Any, sequence_lengths: Sequence[int], rows: int = POOL_ROWS) -> dict[int, dict[str, np.ndarray]]:
    """Real tokenized rows of `data` (its first `rows` examples), truncated or padded to exactly each length.

    A truncated row keeps its final [SEP], so every row stays a valid BERT input; padding has mask 0.
    """
    from tinybert_edge.tasks import get_task

    pool = data.subset(range(min(rows, len(data))))
    return get_task(data.task).encode(tokenizer, pool, max(sequence_lengths)).fixed_length(sequence_lengths)


def target_accuracy(target: Target, data: Any, max_length: int, threads: int, fallback_tokenizer: Path | None) -> dict[str, Any]:
    """The task metrics of one target on `data`, its labels matched to the model's by name: {"accuracy" (the
    primary metric's value), "metrics", "n"} or {"error"}.

    Runs in this process through the same InferenceSession as the measurements; any failure becomes "error".
    """
    from tinybert_edge.evaluation import evaluate_session
    from tinybert_edge.models import load_tokenizer
    from tinybert_edge.runtime import open_session

    if not target.path.exists():
        return {"error": f"'{target.path}' does not exist"}
    folder = tokenizer_folder(target.path, fallback_tokenizer)
    if folder is None:
        return {"error": f"no tokenizer for '{target.path}' (no vocab.txt or tokenizer.json there or in its source)"}
    session = None
    try:
        session = open_session(target.backend, target.path, threads)
        artifact = Artifact.open(target.path)
        task = session.task
        names = artifact.label_names
        labelled = task.align(data, {"id2label": dict(enumerate(names))}) if names else data
        if not names and getattr(data, "label_names", None):
            log.warning("%s: no label names in the model; assuming the data's label order %s", target.name, data.label_names)
        length = min(max_length, session.max_sequence_length or max_length)
        result = evaluate_session(session, task.encode(load_tokenizer(folder), labelled, length), batch_size=32)
    except (TinyBertEdgeError, OSError, ValueError, RuntimeError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        del session
        gc.collect()
    log.info("%s: %s %.4f on %d examples", target.name, result.primary_metric, result.score, result.n)
    return {"accuracy": result.metrics.get("accuracy"), "metrics": result.metrics, "n": result.n,
            "primary_metric": result.primary_metric, "details": result.extra}


# --- the measurement loop -------------------------------------------------------------------------------------------


def _measure_target(target: Target, inputs_by_length, config: BenchConfig, bar, task) -> Row:
    grid = config.grid()
    if not target.path.exists():
        error = f"'{target.path}' does not exist"
        log.warning("%s: %s", target.name, error)
        if bar is not None:
            bar.advance(task, len(grid))
        return _row(target, {}, [], error)
    latency: dict[int, dict] = {}
    sweep: list[dict] = []
    for n, batch_size, threads in grid:
        if bar is not None:
            bar.update(task, description=f"{target.name} @ {n} tokens, batch {batch_size}, {threads} threads")
        m = measure(target.backend, target.path, inputs_by_length[n], config, threads=threads, device=target.device,
                    batch_size=batch_size)
        if m.ok:
            log.info("%s @ %d x %d, %d threads: p50 %.3f ms, p99 %.3f ms, peak RSS %.1f MiB (%d calls)", target.name,
                     batch_size, n, threads, m.stats.p50_ms, m.stats.p99_ms, m.peak_rss_mb, m.stats.n)
        else:
            log.warning("%s @ %d x %d, %d threads: %s", target.name, batch_size, n, threads, m.error)
        entry = m.to_dict()
        sweep.append(entry)
        if config.is_headline(batch_size, threads):
            latency[n] = entry
        if bar is not None:
            bar.advance(task)
    error = None
    if sweep and all(entry["error"] for entry in sweep):
        error = sweep[0]["error"]
    return _row(target, latency, sweep, error)


def _gemm_peaks(threads: Sequence[int], config: BenchConfig) -> dict[int, dict]:
    from tinybert_edge.benchmarks.roofline import measure_gemm_peak

    # Each kernel runs at least this long; capped so the peaks cost seconds, not minutes, in a long run.
    seconds = max(0.2, min(1.0, config.min_seconds))
    return {t: measure_gemm_peak(t, config.gemm_size, seconds, config.timeout_s) for t in threads}


def bench(
    targets: Sequence[Target | str],
    inputs_by_length: Mapping[int, Mapping[str, np.ndarray]] | None = None,
    config: BenchConfig | None = None,
    progress: bool = True,
    *,
    teacher: str | os.PathLike[str] | None = None,
    data: Any = None,
    out: str | os.PathLike[str] | None = None,
    max_examples: int | None = DEFAULT_MAX_EXAMPLES,
) -> list[dict[str, Any]]:
    """Measure each target at every point of `config.grid()` on real tokenized rows; return one row per target.

    targets: Target objects or `NAME=BACKEND:PATH` strings. inputs_by_length: {seq_len: {"input_ids": [rows,
    seq_len], ...}}; when None, taken from `data`. teacher: a fine-tuned classifier folder measured first, in
    PyTorch fp32, and compared against (speedup, size, memory, accuracy retained). data: a labelled data file (or
    TextClassificationData) for the inputs and for every target's accuracy (at most `max_examples` examples, a
    fixed-seed sample). out: a folder for report.json, report.md, accuracy_vs_latency.png and
    latency_vs_seq_len.png, written only when the whole run has finished.

    Each row is built as a `benchmarks.rows.Row` and returned in its JSON form (`Row.to_dict()`, read back with
    `Row.from_dict`), as report.json holds it. A target that is missing, fails to load, crashes
    or times out gives a row whose `error` says why, and the run goes on with the other targets. With
    `config.roofline`, every successful measurement also gets a `roofline` entry (see `benchmarks.roofline`).
    """
    config = config or BenchConfig()
    targets = [parse_target(t) if isinstance(t, str) else t for t in targets]
    if teacher is not None:
        targets.insert(0, Target(name=TEACHER_NAME, role="teacher", backend="torch", path=Path(teacher), precision="fp32"))
    names = [t.name for t in targets]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"target names must be unique; repeated: {', '.join(duplicates)}")
    if max_examples is not None and (isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 1):
        raise ConfigError(f"max_examples = {max_examples!r} is not allowed; allowed: None or an integer >= 1")

    labelled = None
    if data is not None:
        labelled = _load_data(data, max_examples)
        fallback = Path(teacher) if teacher is not None else None
        if inputs_by_length is None:
            source = next((f for f in (tokenizer_folder(t.path, fallback) for t in targets if t.path.exists()) if f), None)
            if source is None:
                raise ConfigError("no target has a tokenizer (vocab.txt or tokenizer.json) to tokenize --data with")
            from tinybert_edge.models import load_tokenizer

            inputs_by_length = inputs_from_data(load_tokenizer(source), labelled, config.sequence_lengths)
            log.info("inputs: %d real rows of %s tokenized with %s", len(inputs_by_length[config.sequence_lengths[0]]["input_ids"]),
                     labelled.source, source)
        measured = []
        for target in targets:
            result = target_accuracy(target, labelled, max(config.sequence_lengths), config.threads, fallback)
            extra = {**target.extra, "accuracy_n": result.get("n")}
            if "error" in result:
                extra["accuracy_error"] = result["error"]
                log.warning("accuracy: %s: %s", target.name, result["error"])
            measured.append(dataclasses.replace(target, accuracy=result.get("accuracy"), extra=extra,
                                                metrics=result.get("metrics") or {},
                                                primary_metric=result.get("primary_metric", target.primary_metric)))
        targets = measured
    if inputs_by_length is None:
        raise ConfigError("bench needs inputs_by_length or data (a labelled file to tokenize real inputs from)")
    check_inputs_by_length(inputs_by_length, config)
    clear_idle_cache()

    # The GEMM peak is measured before and after the models, and the better run kept (see roofline.best_of).
    peaks_before = _gemm_peaks(config.thread_grid, config) if config.roofline else {}
    measured: list[Row] = []
    with _progress(progress) as bar:
        task = bar.add_task("benchmark", total=len(targets) * len(config.grid())) if bar is not None else None
        for target in targets:
            measured.append(_measure_target(target, inputs_by_length, config, bar, task))
    # From here on the rows are their JSON form: roofline annotates it in place, and it is what bench returns.
    rows = [row.to_dict() for row in measured]

    peaks: dict[int, dict] = {}
    if config.roofline and any(not m.get("error") for row in measured for m in row.sweep):
        from tinybert_edge.benchmarks.roofline import attach_roofline, best_of

        peaks_after = _gemm_peaks(config.thread_grid, config)
        peaks = {t: best_of(peaks_before[t], peaks_after[t]) for t in config.thread_grid}
        attach_roofline(rows, peaks)
    if teacher is not None:
        from tinybert_edge.benchmarks.report import compare_to_teacher

        rows = compare_to_teacher(rows, TEACHER_NAME)
    if out is not None:
        from tinybert_edge.benchmarks.report import bench_report, write_bench_report

        write_bench_report(bench_report(rows, config, peaks, labelled), out)
    return rows
