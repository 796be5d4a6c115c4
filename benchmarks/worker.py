"""The measuring subprocess: `python -m tinybert_edge.benchmarks.worker SPEC.json`.

One worker takes one measurement (one artifact, one backend, one sequence length) and exits, so no measurement
inherits another's caches, allocator state or thread pools. The parent (`latency.measure`) writes the spec and an
.npz of tokenized inputs, sets the thread environment (OMP_NUM_THREADS and friends) and reads the JSON result.

Timeline of a "measure" run:
  import runtime modules (import_ms) -> open_session (load_ms) -> first inference (first_inference_ms)
  -> `warmup` untimed calls -> timed calls until both `min_iterations` and `min_seconds` are reached.
cold_start_ms = load_ms + first_inference_ms. Each timed call is bracketed by time.perf_counter_ns.

An "idle" run imports the same runtime modules, loads no model, and reports its peak RSS: the baseline that
`rss_increase_mb` subtracts.

A "gemm_peak" run times large square fp32 and int8 matrix products with the same thread count (see
`roofline.measure_gemm_peak_here`): the machine's attainable GEMM throughput for the roofline column.

A CUDA run also reports the device memory it holds at the end (`memory.cuda_memory_mb`). Every session returns
logits as host arrays, so each timed CUDA call includes the copies and waits for the device to finish.

Failures are not caught here: the traceback goes to stderr and the parent reports its last line.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

SKIPPED_NO_CUDA = "skipped: no CUDA device"


def _set_threads(backend: str, threads: int) -> None:
    if backend in ("torch", "torch-int8"):
        import torch

        torch.set_num_threads(threads)
        # Inter-op parallelism only competes with intra-op threads for a single eager forward pass.
        torch.set_num_interop_threads(1)


def _runtime_threads(backend: str) -> int | None:
    """The intra-op thread count the runtime reports it will use (torch only; the others take it per session)."""
    if backend in ("torch", "torch-int8"):
        import torch

        return int(torch.get_num_threads())
    return None


def _cuda_available(backend: str) -> bool:
    if backend == "onnxruntime":
        import onnxruntime

        return "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    if backend in ("torch", "torch-int8"):
        import torch

        return bool(torch.cuda.is_available())
    return False


CUDA_PROVIDERS = ["CUDAExecutionProvider", "CPUExecutionProvider"]


def _open(backend: str, path: str, threads: int, device: str):
    from tinybert_edge.errors import BenchmarkError
    from tinybert_edge.runtime.sessions import open_session

    if device == "cuda" and backend == "onnxruntime":
        session = open_session(backend, path, threads, providers=list(CUDA_PROVIDERS))
        # ONNX Runtime drops a provider it cannot initialise (missing CUDA/cuDNN libraries) with only a warning;
        # a "cuda" number measured on the CPU would be a wrong number, so that is an error here.
        active = session.session.get_providers()
        if not active or active[0] != "CUDAExecutionProvider":
            raise BenchmarkError(f"ONNX Runtime fell back to {active} for '{path}'; the CUDA execution provider did not "
                                 "initialise (check the CUDA and cuDNN libraries onnxruntime-gpu needs)")
        return session
    if device == "cuda" and backend == "torch":
        return open_session(backend, path, threads, device="cuda")
    if device == "cuda":
        raise BenchmarkError(f"the '{backend}' session runs on the CPU only; measure CUDA through 'torch' (fp32) or "
                             "'onnxruntime'")
    return open_session(backend, path, threads)


def _batches(inputs: dict[str, Any], batch_size: int) -> list[dict[str, Any]]:
    """Every distinct batch met while cycling through the pool of rows, batch_size rows at a time."""
    import numpy as np

    pool = next(iter(inputs.values())).shape[0]
    cycle = pool // math.gcd(pool, batch_size)
    batches = []
    for index in range(cycle):
        rows = np.arange(index * batch_size, (index + 1) * batch_size) % pool
        batches.append({name: np.ascontiguousarray(array[rows]) for name, array in inputs.items()})
    return batches


def run_idle(spec: dict[str, Any]) -> dict[str, Any]:
    from tinybert_edge.benchmarks.memory import import_runtime, peak_rss_mb, ru_maxrss_mb

    import_runtime(spec["backend"])
    return {"peak_rss_mb": peak_rss_mb(), "ru_maxrss_mb": ru_maxrss_mb()}


def run_measure(spec: dict[str, Any]) -> dict[str, Any]:
    from tinybert_edge.benchmarks.memory import current_rss_mb, import_runtime, peak_rss_mb, ru_maxrss_mb

    backend, threads, device = spec["backend"], int(spec["threads"]), spec.get("device", "cpu")
    started = time.perf_counter_ns()
    import_runtime(backend)
    _set_threads(backend, threads)
    import_ms = (time.perf_counter_ns() - started) / 1e6
    if device == "cuda" and not _cuda_available(backend):
        return {"skipped": SKIPPED_NO_CUDA}

    import numpy as np

    with np.load(spec["inputs_npz"], allow_pickle=False) as archive:
        inputs = {name: archive[name] for name in archive.files}
    batches = _batches(inputs, int(spec["batch_size"]))

    start = time.perf_counter_ns()
    session = _open(backend, spec["path"], threads, device)
    loaded = time.perf_counter_ns()
    logits = session.run(batches[0])
    first = time.perf_counter_ns()
    rss_after_load_mb = current_rss_mb()

    for index in range(int(spec["warmup"])):
        session.run(batches[index % len(batches)])

    min_iterations, min_ns = int(spec["min_iterations"]), int(float(spec["min_seconds"]) * 1e9)
    samples_ns: list[int] = []
    clock = time.perf_counter_ns
    run = session.run
    load_avg_1m = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    timed_start = clock()
    index = 0
    while len(samples_ns) < min_iterations or clock() - timed_start < min_ns:
        batch = batches[index % len(batches)]
        t0 = clock()
        run(batch)
        samples_ns.append(clock() - t0)
        index += 1
    timed_wall_s = (clock() - timed_start) / 1e9
    device_memory = None
    if device == "cuda":
        from tinybert_edge.benchmarks.memory import cuda_memory_mb

        device_memory = cuda_memory_mb(backend)

    return {
        "samples_ms": [ns / 1e6 for ns in samples_ns],
        "import_ms": import_ms,
        "load_ms": (loaded - start) / 1e6,
        "first_inference_ms": (first - loaded) / 1e6,
        "cold_start_ms": (first - start) / 1e6,
        "timed_wall_s": timed_wall_s,
        # Competing processes inflate tail latency on shared machines; the 1-minute load says whether they ran.
        "load_avg_1m": load_avg_1m,
        "peak_rss_mb": peak_rss_mb(),
        "rss_after_load_mb": rss_after_load_mb,
        "ru_maxrss_mb": ru_maxrss_mb(),
        "device_memory": device_memory,
        "output_shape": list(np.asarray(logits).shape),
        "threads": threads,
        "runtime_threads": _runtime_threads(backend),
        "env_threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")},
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m tinybert_edge.benchmarks.worker SPEC.json\n")
        return 2
    spec = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    if spec["mode"] == "idle":
        result = run_idle(spec)
    elif spec["mode"] == "gemm_peak":
        from tinybert_edge.benchmarks.roofline import measure_gemm_peak_here

        result = measure_gemm_peak_here(int(spec["threads"]), int(spec["size"]), float(spec["min_seconds"]))
    else:
        result = run_measure(spec)

    from tinybert_edge.io import write_json_atomic

    write_json_atomic(spec["result_path"], result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
