"""`measure`: one latency and memory measurement of one artifact, taken in its own subprocess.

The parent writes the inputs (.npz, loaded with allow_pickle=False) and a JSON spec to a temporary folder, starts
`python -m tinybert_edge.benchmarks.worker` with the thread environment fixed, and turns the worker's JSON into a
`Measurement`. A target that fails to load, crashes or times out gives a Measurement whose `error` holds the
worker's last stderr line; it never raises, so one bad artifact cannot end a whole run.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from tinybert_edge.benchmarks.config import BACKENDS, BenchConfig
from tinybert_edge.benchmarks.stats import LatencyStats
from tinybert_edge.errors import ConfigError

log = logging.getLogger(__name__)

WORKER_MODULE = "tinybert_edge.benchmarks.worker"
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")

# Peak RSS of an interpreter that imported a backend's runtime but loaded no model, per (backend, threads).
# Measured once per backend per run (`bench` clears it at the start of a run) and reused by every measurement.
_IDLE_RSS_MB: dict[tuple[str, int], float] = {}


@dataclass
class Measurement:
    """One (artifact, backend, sequence length) measurement. Times in ms, memory in MiB, raw samples kept."""

    backend: str
    path: str
    seq_len: int
    batch_size: int
    threads: int
    samples_ms: list[float] = field(default_factory=list, repr=False)
    stats: LatencyStats | None = None
    cold_start_ms: float | None = None
    load_ms: float | None = None
    first_inference_ms: float | None = None
    import_ms: float | None = None
    peak_rss_mb: float | None = None
    idle_rss_mb: float | None = None
    rss_increase_mb: float | None = None
    # CUDA only: {"allocator_peak_mb", "process_mb", "note"} from memory.cuda_memory_mb.
    device_memory: dict[str, Any] | None = None
    timed_s: float | None = None
    load_avg_1m: float | None = None
    # What the runtime itself reports after the worker set the thread count (torch.get_num_threads()), when it can.
    runtime_threads: int | None = None
    device: str = "cpu"
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.stats is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: numbers stay numbers; `stats` holds the derived summary, `samples_ms` every timed call."""
        return {
            "backend": self.backend,
            "path": self.path,
            "device": self.device,
            "seq_len": self.seq_len,
            "batch_size": self.batch_size,
            "threads": self.threads,
            "stats": self.stats.summary() if self.stats is not None else None,
            "cold_start_ms": self.cold_start_ms,
            "load_ms": self.load_ms,
            "first_inference_ms": self.first_inference_ms,
            "import_ms": self.import_ms,
            "peak_rss_mb": self.peak_rss_mb,
            "idle_rss_mb": self.idle_rss_mb,
            "rss_increase_mb": self.rss_increase_mb,
            "device_memory": self.device_memory,
            "timed_s": self.timed_s,
            "load_avg_1m": self.load_avg_1m,
            "runtime_threads": self.runtime_threads,
            "error": self.error,
            "samples_ms": list(self.samples_ms),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Measurement":
        """Inverse of `to_dict`; the statistics are derived again from the samples."""
        samples = [float(v) for v in data.get("samples_ms") or []]
        return cls(
            backend=data["backend"],
            path=data["path"],
            device=data.get("device", "cpu"),
            seq_len=int(data["seq_len"]),
            batch_size=int(data["batch_size"]),
            threads=int(data["threads"]),
            samples_ms=samples,
            stats=LatencyStats.from_samples(samples, int(data["batch_size"])) if samples else None,
            cold_start_ms=data.get("cold_start_ms"),
            load_ms=data.get("load_ms"),
            first_inference_ms=data.get("first_inference_ms"),
            import_ms=data.get("import_ms"),
            peak_rss_mb=data.get("peak_rss_mb"),
            idle_rss_mb=data.get("idle_rss_mb"),
            rss_increase_mb=data.get("rss_increase_mb"),
            device_memory=data.get("device_memory"),
            timed_s=data.get("timed_s"),
            load_avg_1m=data.get("load_avg_1m"),
            runtime_threads=data.get("runtime_threads"),
            error=data.get("error"),
        )


def clear_idle_cache() -> None:
    """Forget the idle-interpreter baselines, so the next measurement of each backend takes a fresh one."""
    _IDLE_RSS_MB.clear()


def _thread_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for name in THREAD_ENV_VARS:
        env[name] = str(threads)
    return env


def _last_stderr_line(stderr: str) -> str | None:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else None


def _run_worker(spec: dict[str, Any], workdir: Path, threads: int, timeout_s: float) -> tuple[dict[str, Any] | None, str | None]:
    """Run one worker; return (result, None) or (None, error text)."""
    spec_path = workdir / f"{spec['mode']}.spec.json"
    spec["result_path"] = str(workdir / f"{spec['mode']}.result.json")
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    command = [sys.executable, "-m", WORKER_MODULE, str(spec_path)]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env=_thread_env(threads), timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout_s:g} s (BenchConfig.timeout_s)"
    if done.returncode != 0:
        last = _last_stderr_line(done.stderr)
        if done.returncode < 0:
            name = signal.Signals(-done.returncode).name if -done.returncode in signal.valid_signals() else str(-done.returncode)
            return None, f"worker killed by {name}" + (f": {last}" if last else "")
        return None, last or f"worker exited with status {done.returncode} and no message"
    result_path = Path(spec["result_path"])
    if not result_path.is_file():
        return None, "worker exited without writing a result"
    return json.loads(result_path.read_text(encoding="utf-8")), None


def idle_rss_mb(backend: str, threads: int, timeout_s: float = 300) -> float | None:
    """Peak RSS (MiB) of an interpreter that imported `backend`'s runtime and loaded no model; cached per run.
    None when even that interpreter fails (for instance, the runtime is not installed)."""
    key = (backend, threads)
    if key not in _IDLE_RSS_MB:
        with tempfile.TemporaryDirectory(prefix="tinybert-edge-idle-") as tmp:
            result, error = _run_worker({"mode": "idle", "backend": backend}, Path(tmp), threads, timeout_s)
        if result is None:
            log.warning("idle baseline for backend '%s' failed: %s", backend, error)
            return None
        _IDLE_RSS_MB[key] = float(result["peak_rss_mb"])
    return _IDLE_RSS_MB[key]


def check_inputs(inputs: Mapping[str, np.ndarray]) -> int:
    """Validate a pool of tokenized rows ([rows, seq_len] integer arrays, same shape); return seq_len."""
    if "input_ids" not in inputs:
        raise ConfigError(f"benchmark inputs must hold 'input_ids'; got {', '.join(sorted(inputs)) or 'nothing'}")
    shapes = {name: np.asarray(array).shape for name, array in inputs.items()}
    first = shapes["input_ids"]
    if len(first) != 2 or first[0] < 1 or first[1] < 1 or any(shape != first for shape in shapes.values()):
        raise ConfigError(
            f"benchmark inputs must be 2-D [rows, seq_len] arrays of one shape with at least one row; got {shapes}"
        )
    for name, array in inputs.items():
        if not np.issubdtype(np.asarray(array).dtype, np.integer):
            raise ConfigError(f"benchmark input '{name}' has dtype {np.asarray(array).dtype}; allowed: integer token arrays")
    return int(first[1])


def measure(
    backend: str,
    path: str | os.PathLike[str],
    inputs: Mapping[str, np.ndarray],
    config: BenchConfig,
    threads: int | None = None,
    device: str = "cpu",
    batch_size: int | None = None,
) -> Measurement:
    """Measure `path` in `backend` on `inputs` (a pool of real tokenized rows, [rows, seq_len]) in a subprocess.

    The worker cycles through the rows `batch_size` (default `config.batch_size`) at a time, with `threads`
    (default `config.threads`) intra-op threads. Invalid arguments raise ConfigError; anything
    that goes wrong with the artifact itself comes back as `Measurement.error`.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"backend = {backend!r} is not allowed; allowed: {', '.join(BACKENDS)}")
    seq_len = check_inputs(inputs)
    threads = config.threads if threads is None else threads
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"threads = {threads!r} is not allowed; allowed: an integer >= 1")
    batch_size = config.batch_size if batch_size is None else batch_size
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size = {batch_size!r} is not allowed; allowed: an integer >= 1")
    path = Path(path)
    measurement = Measurement(
        backend=backend, path=str(path), seq_len=seq_len, batch_size=batch_size, threads=threads, device=device
    )
    if not path.exists():
        measurement.error = f"'{path}' does not exist"
        return measurement

    with tempfile.TemporaryDirectory(prefix="tinybert-edge-bench-") as tmp:
        workdir = Path(tmp)
        inputs_npz = workdir / "inputs.npz"
        np.savez(inputs_npz, **{name: np.ascontiguousarray(array, dtype=np.int64) for name, array in inputs.items()})
        spec = {
            "mode": "measure",
            "backend": backend,
            "path": str(path.resolve()),
            "device": device,
            "inputs_npz": str(inputs_npz),
            "batch_size": batch_size,
            "threads": threads,
            "warmup": config.warmup,
            "min_iterations": config.min_iterations,
            "min_seconds": config.min_seconds,
        }
        result, error = _run_worker(spec, workdir, threads, config.timeout_s)
    if result is None:
        measurement.error = error
        return measurement
    if "skipped" in result:
        measurement.error = result["skipped"]
        return measurement

    measurement.samples_ms = [float(v) for v in result["samples_ms"]]
    measurement.stats = LatencyStats.from_samples(measurement.samples_ms, batch_size)
    for name in ("cold_start_ms", "load_ms", "first_inference_ms", "import_ms", "peak_rss_mb"):
        setattr(measurement, name, float(result[name]))
    measurement.timed_s = float(result["timed_wall_s"])
    measurement.load_avg_1m = result.get("load_avg_1m")
    measurement.runtime_threads = result.get("runtime_threads")
    measurement.device_memory = result.get("device_memory")
    measurement.idle_rss_mb = idle_rss_mb(backend, threads, config.timeout_s)
    if measurement.idle_rss_mb is not None:
        measurement.rss_increase_mb = measurement.peak_rss_mb - measurement.idle_rss_mb
    return measurement
