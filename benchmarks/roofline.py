"""The roofline column: how far from this machine's GEMM peak each artifact runs.

Two numbers are measured in the same run as the latencies, each in its own subprocess with the measurement's
thread count (`measure_gemm_peak`): the fp32 GEMM peak (the faster of ONNX Runtime's MatMul and torch.mm, or
numpy.matmul without torch) and the int8 GEMM peak (ONNX Runtime's MatMulInteger, or torch._int_mm without
onnxruntime), both on square `BenchConfig.gemm_size`
matrices, before and after the models (the better run is kept: contention only lowers a peak). A model's work per
inference is counted analytically from its BERT config (`bert_flops`), so achieved GFLOP/s = FLOPs / p50 latency,
and the fraction of the roofline is the time the work would take at peak divided by the measured p50. On a shared
machine a fraction above 100% means the model ran in a quieter moment than both peak runs: rerun it.

BERT-only: GEMMs are over 90% of a BERT encoder's arithmetic at these sizes; element-wise work (softmax,
LayerNorm, GELU, bias adds) is memory-bound and not counted, so a fraction of 1.0 is an upper bound no real model
reaches.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from tinybert_edge.benchmarks.rows import measurement_ms, succeeded
from tinybert_edge.errors import ConfigError

log = logging.getLogger(__name__)

GIGA = 1e9


@dataclass(frozen=True)
class BertShape:
    """What the FLOP count needs of a BERT config: depth, width, FFN width and the number of labels."""

    layers: int
    hidden: int
    intermediate: int
    labels: int = 2

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "BertShape":
        """From a Hugging Face config.json dict (BERT key names)."""
        try:
            labels = len(config.get("id2label") or {}) or int(config.get("num_labels", 2))
            return cls(int(config["num_hidden_layers"]), int(config["hidden_size"]), int(config["intermediate_size"]), labels)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"not a BERT config (needs num_hidden_layers, hidden_size, intermediate_size): {exc}") from exc


def bert_flops(shape: BertShape, seq_len: int, batch_size: int = 1) -> dict[str, int]:
    """Floating-point (or integer) operations of one forward pass of a BERT sequence classifier.

    A multiply-add counts as 2 operations. With B batch, S sequence length, H hidden, I FFN width, L layers and C
    labels, per layer: Q, K, V and output projections 4 * 2*S*H*H, attention scores Q K^T 2*S*S*H and the
    weighted sum A V 2*S*S*H (summed over heads), FFN 2 * 2*S*H*I; then pooler 2*H*H and classifier 2*H*C on the
    [CLS] vector:
        linear    = B * (L * (8*S*H^2 + 4*S*H*I) + 2*H^2 + 2*H*C)
        attention = B * L * 4*S^2*H
    The embedding lookup is a gather (no arithmetic) and is left out, as are softmax, LayerNorm, GELU and biases.
    TinyBERT4 (L=4, H=312, I=1200) at S=128 gives 1.25 GFLOPs, the paper's "1.2 GFLOPs".
    `linear` is what dynamic int8 quantization runs in int8; `attention` stays fp32 (activation x activation).
    """
    s, h, i = seq_len, shape.hidden, shape.intermediate
    linear = batch_size * (shape.layers * (8 * s * h * h + 4 * s * h * i) + 2 * h * h + 2 * h * shape.labels)
    attention = batch_size * shape.layers * 4 * s * s * h
    return {"linear": linear, "attention": attention, "total": linear + attention}


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def model_shape(path: str | os.PathLike[str]) -> BertShape | None:
    """The BERT shape of a model folder or artifact: its config.json (in the folder, or beside the file), else the
    config.json of the model it was exported from (`source_model` in the export metadata). None when unknown."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    candidates = [folder / "config.json"]
    for metadata in (folder / "metadata.json", path.with_name(path.name + ".json")):
        source = (_read_json(metadata) or {}).get("source_model") if metadata.is_file() else None
        if isinstance(source, str):
            # Export metadata records the source as given then: absolute, or relative to that run's working folder.
            candidates += [Path(source) / "config.json", folder.parent / Path(source).name / "config.json",
                           folder.parent.parent / Path(source).name / "config.json"]
    for candidate in candidates:
        config = _read_json(candidate) if candidate.is_file() else None
        if config and config.get("model_type", "bert") == "bert":
            try:
                return BertShape.from_config(config)
            except ConfigError:
                continue
    return None


# --- the GEMM peak, measured in a subprocess ------------------------------------------------------------------------


def _time_kernel(call: Callable[[], Any], min_seconds: float, min_iterations: int = 5) -> list[float]:
    for _ in range(2):  # warm-up: first-touch page faults and kernel selection
        call()
    samples: list[float] = []
    started = time.perf_counter()
    while len(samples) < min_iterations or time.perf_counter() - started < min_seconds:
        t0 = time.perf_counter()
        call()
        samples.append(time.perf_counter() - t0)
    return samples


def _summary(kernel: str, ops: int, samples: Sequence[float]) -> dict[str, Any]:
    ordered = sorted(samples)
    median = ordered[len(ordered) // 2]
    return {"kernel": kernel, "ops": ops, "n": len(samples), "best_s": ordered[0], "p50_s": median,
            "peak_gops": ops / ordered[0] / GIGA, "p50_gops": ops / median / GIGA}


def _fp32_kernels(size: int, threads: int) -> list[tuple[str, Callable[[], Any]]]:
    """ONNX Runtime's fp32 MatMul (MLAS, the kernel its fp32 models run) and torch.mm (numpy.matmul without
    torch); the faster one is the peak. torch.mm alone under-measured: on an AVX-512 EPYC its BLAS ran the square
    GEMM slower than MLAS runs the student's own MatMuls, so ONNX fp32 showed 141% of that "peak"."""
    kernels: list[tuple[str, Callable[[], Any]]] = []
    try:
        kernels.append(("onnxruntime MatMul", _ort_matmul(size, threads, integer=False)))
    except ImportError as exc:
        log.info("onnxruntime MatMul is not usable here: %s", exc)
    try:
        import torch
    except ImportError:
        import numpy as np

        a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
        b = np.random.default_rng(1).standard_normal((size, size), dtype=np.float32)
        return kernels + [("numpy.matmul", lambda: a @ b)]
    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator)
    b = torch.randn(size, size, generator=generator)
    return kernels + [("torch.mm", lambda: torch.mm(a, b))]


def _int8_kernels(size: int, threads: int) -> list[tuple[str, Callable[[], Any]]]:
    """ONNX Runtime's MatMulInteger (the kernel dynamic int8 ONNX models run); torch._int_mm only without it: on
    CPU builds of torch it is a reference loop (0.6 GOP/s against ORT's 100 on a 2-core AVX2 EPYC, measured)."""
    try:
        return [("onnxruntime MatMulInteger", _ort_matmul(size, threads, integer=True))]
    except ImportError as exc:
        log.info("onnxruntime MatMulInteger is not usable here: %s", exc)
    try:
        import torch

        torch.set_num_threads(threads)
        generator = torch.Generator().manual_seed(0)
        a = torch.randint(-128, 128, (size, size), dtype=torch.int8, generator=generator)
        b = torch.randint(-128, 128, (size, size), dtype=torch.int8, generator=generator)
        torch._int_mm(a[:32].contiguous(), b[:, :32].contiguous())  # raises where this build has no int8 GEMM
        return [("torch._int_mm", lambda: torch._int_mm(a, b))]
    except (ImportError, RuntimeError, AttributeError, NotImplementedError) as exc:
        log.info("torch._int_mm is not usable here: %s", exc)
    return []


def _ort_matmul(size: int, threads: int, integer: bool) -> Callable[[], Any]:
    """One ONNX Runtime GEMM with B as a constant (a weight), as the models run it: u8 x s8 -> s32 MatMulInteger
    (`integer`, the kernel of dynamic int8 models) or fp32 MatMul."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if integer:
        weight = rng.integers(-128, 128, (size, size), dtype=np.int8)
        activations = {"a": rng.integers(0, 256, (size, size), dtype=np.uint8)}
        node, a_type, y_type = "MatMulInteger", TensorProto.UINT8, TensorProto.INT32
    else:
        weight = rng.standard_normal((size, size), dtype=np.float32)
        activations = {"a": rng.standard_normal((size, size), dtype=np.float32)}
        node, a_type, y_type = "MatMul", TensorProto.FLOAT, TensorProto.FLOAT
    graph = helper.make_graph(
        [helper.make_node(node, ["a", "b"], ["y"])],
        "gemm_peak",
        [helper.make_tensor_value_info("a", a_type, [size, size])],
        [helper.make_tensor_value_info("y", y_type, [size, size])],
        initializer=[numpy_helper.from_array(weight, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return lambda: session.run(None, activations)


def measure_gemm_peak_here(threads: int, size: int, min_seconds: float) -> dict[str, Any]:
    """Time fp32 and int8 square GEMMs of `size` in this process (the worker's "gemm_peak" mode)."""
    ops = 2 * size**3
    fp32 = [_summary(name, ops, _time_kernel(call, min_seconds)) for name, call in _fp32_kernels(size, threads)]
    result: dict[str, Any] = {"threads": threads, "size": size, "fp32_kernels": fp32,
                              "fp32": max(fp32, key=lambda k: k["peak_gops"])}
    int8 = [_summary(name, ops, _time_kernel(call, min_seconds)) for name, call in _int8_kernels(size, threads)]
    result["int8_kernels"] = int8
    result["int8"] = max(int8, key=lambda k: k["peak_gops"]) if int8 else None
    return result


def measure_gemm_peak(threads: int, size: int = 1024, min_seconds: float = 1.0, timeout_s: float = 300) -> dict[str, Any]:
    """This machine's fp32 and int8 GEMM peaks with `threads` threads, measured in a subprocess.

    Returns {"threads", "size", "fp32": {"kernel", "peak_gops", "p50_gops", ...}, "int8": {...} | None,
    "fp32_kernels": [...], "int8_kernels": [...]} or {"threads", "error"} when the subprocess fails.
    """
    from tinybert_edge.benchmarks.latency import _run_worker

    spec = {"mode": "gemm_peak", "backend": "torch", "threads": threads, "size": size, "min_seconds": min_seconds}
    with tempfile.TemporaryDirectory(prefix="tinybert-edge-peak-") as tmp:
        result, error = _run_worker(spec, Path(tmp), threads, timeout_s)
    if result is None:
        log.warning("GEMM peak with %d threads failed: %s", threads, error)
        return {"threads": threads, "error": error}
    log.info("GEMM peak, %d threads: fp32 %.1f GFLOP/s (%s), int8 %s", threads, result["fp32"]["peak_gops"],
             result["fp32"]["kernel"],
             f"{result['int8']['peak_gops']:.1f} GOP/s ({result['int8']['kernel']})" if result["int8"] else "not measured")
    return result


def best_of(*peaks: Mapping[str, Any]) -> dict[str, Any]:
    """The higher fp32 and int8 peaks of several runs of `measure_gemm_peak` (the others are kept under "runs").

    Other processes on a shared machine only ever lower a GEMM's throughput, so the best run is the closest to
    the hardware; `bench` measures the peak before and after its measurements and keeps the better of each."""
    good = [p for p in peaks if p and not p.get("error") and p.get("fp32")]
    if not good:
        return dict(peaks[-1]) if peaks else {"error": "no GEMM peak measured"}
    best = dict(good[0])
    best["fp32"] = max((p["fp32"] for p in good), key=lambda k: k["peak_gops"])
    int8 = [p["int8"] for p in good if p.get("int8")]
    best["int8"] = max(int8, key=lambda k: k["peak_gops"]) if int8 else None
    best.pop("int8_kernels", None)
    best.pop("fp32_kernels", None)
    best["runs"] = [dict(p) for p in peaks]
    return best


# --- the column -----------------------------------------------------------------------------------------------------


def roofline_point(
    shape: BertShape, precision: str, seq_len: int, batch_size: int, p50_ms: float, peak: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Achieved throughput of one measurement and its fraction of the roofline.

    fp32: bound_s = total / fp32_peak. int8 (dynamic): bound_s = linear / int8_peak + attention / fp32_peak, the
    quantized projections at the int8 peak and the activation-by-activation attention products at the fp32 peak.
    fraction_of_roofline = bound_s / p50. `achieved_gops` = total / p50 (GOP/s for int8, GFLOP/s for fp32).
    """
    flops = bert_flops(shape, seq_len, batch_size)
    seconds = p50_ms / 1000.0
    point: dict[str, Any] = {
        "ops": flops["total"],
        "linear_ops": flops["linear"],
        "attention_flops": flops["attention"],
        "unit": "GOP/s" if precision == "int8" else "GFLOP/s",
        "achieved_gops": flops["total"] / seconds / GIGA if seconds > 0 else None,
        "bound_ms": None,
        "fraction_of_roofline": None,
    }
    if not peak or peak.get("error") or not peak.get("fp32"):
        return point
    fp32 = peak["fp32"]["peak_gops"] * GIGA
    if precision == "int8" and peak.get("int8"):
        bound = flops["linear"] / (peak["int8"]["peak_gops"] * GIGA) + flops["attention"] / fp32
    else:
        bound = flops["total"] / fp32
    point["bound_ms"] = bound * 1000.0
    point["fraction_of_roofline"] = bound / seconds if seconds > 0 else None
    return point


def attach_roofline(rows: Sequence[dict[str, Any]], peaks: Mapping[int, Mapping[str, Any]]) -> None:
    """Add `roofline` to every successful measurement of every row (in "latency" and "sweep") and `bert_shape` to
    the row, in place: the rows are in their JSON form (`Row.to_dict()`), which is what carries them into reports.

    `peaks` maps a thread count to `measure_gemm_peak`'s result. A row whose BERT shape is unknown is left as is.
    """
    for row in rows:
        shape = model_shape(row["path"]) if row.get("path") else None
        row["bert_shape"] = None if shape is None else {"layers": shape.layers, "hidden": shape.hidden,
                                                        "intermediate": shape.intermediate, "labels": shape.labels}
        if shape is None:
            continue
        measurements = list((row.get("latency") or {}).values()) + list(row.get("sweep") or [])
        for m in measurements:
            if not succeeded(m):
                continue
            m["roofline"] = roofline_point(shape, row.get("precision", "fp32"), int(m["seq_len"]), int(m["batch_size"]),
                                           float(measurement_ms(m)), peaks.get(int(m["threads"])))
