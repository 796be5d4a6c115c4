"""The self-contained ARM runner: one artifact, real tokenized inputs, per-call latencies and logits, as JSON.

    python arm_runner.py --model model.onnx|model.tflite --inputs inputs.npz --out result.json [options]

This file is copied alone onto the target (a phone over adb, a board over ssh, an arm64 root filesystem under QEMU)
and run there with numpy and one runtime: onnxruntime for .onnx, ai-edge-litert (or tflite_runtime) for .tflite.
It imports neither torch nor transformers nor tinybert_edge. The host side is `tinybert_edge.benchmarks.arm`.

Inputs: an .npz (read with allow_pickle=False) of [rows, seq_len] integer arrays named input_ids, attention_mask
and token_type_ids. A .tflite runs in its smallest `seq_<L>` signature with L >= seq_len, zero-padded (pad id 0,
mask 0, segment 0), row by row when the signature's batch is 1; an .onnx takes the rows as they are.

Timeline, as the x86 worker (benchmarks/worker.py): import runtime (import_ms) -> load (load_ms) -> first call
(first_inference_ms) -> `--warmup` untimed calls -> timed calls until both `--min-iterations` and `--min-seconds`
are reached, each bracketed by time.perf_counter_ns and every value kept. Then logits for every input row.
Percentiles use numpy's linear interpolation, as tinybert_edge.benchmarks.stats does.

A failure writes {"error": ...} to --out and exits with status 1, so the host always gets a readable result.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.metadata
import json
import math
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

SCHEMA = "tinybert-edge/arm-runner/1"
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
PERCENTILES = (50, 90, 95, 99)
VERSIONED = ("numpy", "onnxruntime", "ai-edge-litert", "tflite-runtime")
# ARM features that decide the int8 kernels (dot-product, i8mm, SVE); AT_HWCAP bits from the Linux arm64 uapi.
AT_HWCAP, AT_HWCAP2 = 16, 26
HWCAP_BITS = {"fp": 0, "asimd": 1, "aes": 3, "asimdhp": 10, "asimddp": 20, "sve": 22}
HWCAP2_BITS = {"sve2": 1, "i8mm": 13, "bf16": 14}


class RunnerError(Exception):
    """An input or artifact the runner cannot use; the message says which and why."""


# --- inputs and buckets ------------------------------------------------------------------------------------------


def load_inputs(path: str | os.PathLike[str]) -> dict[str, Any]:
    import numpy as np

    with np.load(path, allow_pickle=False) as archive:
        inputs = {name: np.asarray(archive[name]) for name in archive.files}
    if "input_ids" not in inputs:
        raise RunnerError(f"'{path}' holds {sorted(inputs)}; it needs at least input_ids")
    shape = inputs["input_ids"].shape
    for name, array in inputs.items():
        if array.ndim != 2 or array.shape != shape or array.shape[0] < 1:
            raise RunnerError(f"'{path}': every array must be [rows, seq_len] with one shape; {name} is {array.shape}")
        if not np.issubdtype(array.dtype, np.integer):
            raise RunnerError(f"'{path}': {name} has dtype {array.dtype}; token arrays must be integers")
    return inputs


def select_bucket(buckets: Sequence[int], length: int) -> int:
    """The smallest bucket (signature sequence length) >= length."""
    for bucket in sorted(buckets):
        if bucket >= length:
            return bucket
    raise RunnerError(f"sequences of length {length} are longer than every signature ({sorted(buckets)}); "
                      f"tokenize to at most {max(buckets)} tokens")


def pad_rows(batch: Mapping[str, Any], length: int, names: Sequence[str], dtype: Any) -> dict[str, Any]:
    """`names` arrays of `batch` right-padded with zeros to `length` columns (a missing name is all zeros)."""
    import numpy as np

    ids = np.asarray(batch["input_ids"])
    rows, current = ids.shape
    if current > length:
        raise RunnerError(f"cannot pad length {current} to {length}")
    padded = {}
    for name in names:
        full = np.zeros((rows, length), dtype=dtype)
        if name in batch:
            full[:, :current] = batch[name]
        padded[name] = full
    return padded


def batches(inputs: Mapping[str, Any], batch_size: int) -> list[dict[str, Any]]:
    """Every distinct batch met while cycling through the rows, batch_size rows at a time (as the x86 worker)."""
    import numpy as np

    pool = next(iter(inputs.values())).shape[0]
    cycle = pool // math.gcd(pool, batch_size)
    out = []
    for index in range(cycle):
        rows = np.arange(index * batch_size, (index + 1) * batch_size) % pool
        out.append({name: np.ascontiguousarray(array[rows]) for name, array in inputs.items()})
    return out


# --- sessions ----------------------------------------------------------------------------------------------------


class OnnxModel:
    runtime = "onnxruntime"

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.description: dict[str, Any] = {"inputs": self.input_names, "providers": self.session.get_providers()}

    def run(self, batch: Mapping[str, Any]) -> Any:
        import numpy as np

        feed = {}
        for name in self.input_names:
            if name not in batch:
                raise RunnerError(f"the model takes '{name}', which the inputs lack")
            feed[name] = np.ascontiguousarray(batch[name], dtype=np.int64)
        return np.asarray(self.session.run(None, feed)[0], dtype=np.float32)


def _litert_interpreter(path: Path, threads: int) -> tuple[Any, str]:
    try:
        from ai_edge_litert.interpreter import Interpreter

        source = "ai-edge-litert"
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter

            source = "tflite-runtime"
        except ImportError as exc:
            raise RunnerError("running a .tflite needs ai-edge-litert (pip install ai-edge-litert) "
                              "or tflite-runtime") from exc
    return Interpreter(model_path=str(path), num_threads=threads), source


class LiteRtModel:
    runtime = "litert"

    def __init__(self, path: Path, threads: int) -> None:
        self.interpreter, source = _litert_interpreter(path, threads)
        self.runtime = source
        # signature length -> (runner, signature batch, input names, output name)
        self.signatures: dict[int, tuple[Any, int, tuple[str, ...], str]] = {}
        for key in self.interpreter.get_signature_list():
            runner = self.interpreter.get_signature_runner(key)
            inputs = runner.get_input_details()
            if "input_ids" not in inputs:
                raise RunnerError(f"signature '{key}' has inputs {sorted(inputs)}; expected input_ids")
            batch, length = (int(d) for d in inputs["input_ids"]["shape"])
            outputs = list(runner.get_output_details())
            if len(outputs) != 1:
                raise RunnerError(f"signature '{key}' has outputs {outputs}; expected one (logits)")
            self.signatures[length] = (runner, batch, tuple(inputs), outputs[0])
        if not self.signatures:
            raise RunnerError(f"'{path}' has no signatures; export it with tinybert_edge.converters.export_tflite")
        self.description = {"signatures": sorted(self.signatures)}

    def run(self, batch: Mapping[str, Any]) -> Any:
        import numpy as np

        rows, length = np.asarray(batch["input_ids"]).shape
        bucket = select_bucket(list(self.signatures), length)
        runner, signature_batch, names, output = self.signatures[bucket]
        padded = pad_rows(batch, bucket, names, np.int32)
        logits = []
        for start in range(0, rows, signature_batch):
            chunk = {name: array[start : start + signature_batch] for name, array in padded.items()}
            short = signature_batch - next(iter(chunk.values())).shape[0]
            if short:
                chunk = {name: np.pad(array, ((0, short), (0, 0))) for name, array in chunk.items()}
            logits.append(runner(**chunk)[output][: signature_batch - short])
        return np.concatenate(logits, axis=0).astype(np.float32, copy=False)


def open_model(path: Path, threads: int) -> OnnxModel | LiteRtModel:
    if not path.is_file():
        raise RunnerError(f"'{path}' does not exist or is not a file")
    if path.suffix == ".onnx":
        return OnnxModel(path, threads)
    if path.suffix == ".tflite":
        return LiteRtModel(path, threads)
    raise RunnerError(f"'{path}' is neither .onnx nor .tflite")


# --- timing and statistics ---------------------------------------------------------------------------------------


def time_calls(call: Callable[[Any], Any], pool: Sequence[Any], warmup: int, min_iterations: int, min_seconds: float,
               clock: Callable[[], int] = time.perf_counter_ns) -> tuple[list[float], float]:
    """`warmup` untimed calls, then timed calls until both min_iterations and min_seconds are reached.
    Returns (every call's latency in ms, wall seconds of the timed phase)."""
    for index in range(warmup):
        call(pool[index % len(pool)])
    min_ns = int(min_seconds * 1e9)
    samples_ns: list[int] = []
    started = clock()
    index = 0
    while len(samples_ns) < min_iterations or clock() - started < min_ns:
        item = pool[index % len(pool)]
        t0 = clock()
        call(item)
        samples_ns.append(clock() - t0)
        index += 1
    return [ns / 1e6 for ns in samples_ns], (clock() - started) / 1e9


def latency_summary(samples_ms: Sequence[float], batch_size: int) -> dict[str, float | int]:
    """p50/p90/p95/p99, mean, stdev (n - 1), min, max and throughput (rows/s), as LatencyStats derives them."""
    import numpy as np

    values = np.asarray(samples_ms, dtype=np.float64)
    if values.size == 0:
        raise RunnerError("no timed calls were recorded")
    p50, p90, p95, p99 = (float(v) for v in np.percentile(values, PERCENTILES))
    mean = float(values.mean())
    return {
        "n": int(values.size), "batch_size": batch_size, "mean_ms": mean,
        "stdev_ms": float(values.std(ddof=1)) if values.size > 1 else 0.0,
        "min_ms": float(values.min()), "max_ms": float(values.max()),
        "p50_ms": p50, "p90_ms": p90, "p95_ms": p95, "p99_ms": p99,
        "throughput_per_s": batch_size * 1000.0 / mean if mean > 0 else None,
    }


# --- platform ----------------------------------------------------------------------------------------------------


def _cpuinfo() -> dict[str, str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    return fields


def _hwcaps() -> dict[str, bool] | None:
    """CPU features from the kernel's auxiliary vector. Under QEMU user mode these are the emulated CPU's (while
    /proc/cpuinfo may still describe the host), so on aarch64 this is the reliable answer."""
    if platform.machine() not in ("aarch64", "arm64") or not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.getauxval.restype = ctypes.c_ulong
        libc.getauxval.argtypes = [ctypes.c_ulong]
        hwcap, hwcap2 = int(libc.getauxval(AT_HWCAP)), int(libc.getauxval(AT_HWCAP2))
    except (OSError, AttributeError):
        return None
    features = {name: bool(hwcap >> bit & 1) for name, bit in HWCAP_BITS.items()}
    features.update({name: bool(hwcap2 >> bit & 1) for name, bit in HWCAP2_BITS.items()})
    return features


def platform_info() -> dict[str, Any]:
    info = _cpuinfo()
    flags = (info.get("Features") or info.get("flags") or "").split()
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    return {
        "machine": platform.machine(),
        "platform": platform.platform(),
        "system": platform.system(),
        "python": platform.python_version(),
        "cpu_model": info.get("model name") or info.get("Hardware") or info.get("CPU part") or platform.processor(),
        "cpuinfo_features": flags,
        "cpuinfo_asimddp": "asimddp" in flags,
        "hwcaps": _hwcaps(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
    }


def runtime_versions() -> dict[str, str]:
    versions = {}
    for name in VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _peak_rss_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        return None
    return None


# --- the run -----------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    model_path = Path(args.model)
    started = time.perf_counter_ns()
    if model_path.suffix == ".onnx":
        import onnxruntime  # noqa: F401  (timed as import_ms)
    elif model_path.suffix == ".tflite":
        try:
            import ai_edge_litert.interpreter  # noqa: F401
        except ImportError:
            pass  # _litert_interpreter tries tflite_runtime and says what to install
    import_ms = (time.perf_counter_ns() - started) / 1e6

    inputs = load_inputs(args.inputs)
    if args.max_rows:
        inputs = {name: array[: args.max_rows] for name, array in inputs.items()}
    rows, seq_len = inputs["input_ids"].shape
    pool = batches(inputs, args.batch_size)

    t0 = time.perf_counter_ns()
    model = open_model(model_path, args.threads)
    t1 = time.perf_counter_ns()
    model.run(pool[0])
    t2 = time.perf_counter_ns()

    samples_ms, timed_wall_s = time_calls(model.run, pool, args.warmup, args.min_iterations, args.min_seconds)
    logits = np.concatenate([model.run({n: a[i : i + args.batch_size] for n, a in inputs.items()})
                             for i in range(0, rows, args.batch_size)], axis=0)
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "model": model_path.name,
        "runtime": model.runtime,
        "model_description": model.description,
        "rows": int(rows),
        "seq_len": int(seq_len),
        "batch_size": args.batch_size,
        "threads": args.threads,
        "bucket": select_bucket(list(model.signatures), seq_len) if isinstance(model, LiteRtModel) else None,
        "warmup": args.warmup,
        "min_iterations": args.min_iterations,
        "min_seconds": args.min_seconds,
        "import_ms": import_ms,
        "load_ms": (t1 - t0) / 1e6,
        "first_inference_ms": (t2 - t1) / 1e6,
        "cold_start_ms": (t2 - t0) / 1e6,
        "timed_wall_s": timed_wall_s,
        "samples_ms": samples_ms,
        "stats": latency_summary(samples_ms, args.batch_size),
        "peak_rss_mb": _peak_rss_mb(),
        "logits": logits.astype(np.float64).tolist(),
        "platform": platform_info(),
        "versions": runtime_versions(),
    }
    return result


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write to a sibling and rename, so the host never reads half a result."""
    final = Path(path)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.partial")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, final)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help=".onnx or .tflite artifact")
    parser.add_argument("--inputs", required=True, help=".npz of [rows, seq_len] token arrays")
    parser.add_argument("--out", required=True, help="where to write the JSON result")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--min-iterations", type=int, default=20)
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument("--max-rows", type=int, default=None, help="use only the first N input rows")
    args = parser.parse_args(argv)
    for name in ("threads", "batch_size", "min_iterations"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.warmup < 0 or args.min_seconds < 0:
        parser.error("--warmup and --min-seconds must be >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = run(args)
    except Exception as exc:  # any failure becomes a readable result for the host, with where it happened
        write_json(args.out, {"schema": SCHEMA, "error": f"{type(exc).__name__}: {exc}",
                              "traceback": traceback.format_exc(), "platform": platform_info(),
                              "versions": runtime_versions()})
        sys.stderr.write(f"arm_runner: {type(exc).__name__}: {exc}\n")
        return 1
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
