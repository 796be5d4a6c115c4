"""Peak resident memory of the measuring process, and which runtime modules the idle baseline imports.

Peak RSS is read from the kernel's high-water mark, `VmHWM` in /proc/self/status. `getrusage(...).ru_maxrss` is
recorded beside it but not trusted: on Linux a child started by fork/vfork+exec inherits its parent's maximum,
so a worker spawned from a 300 MB parent reports at least 300 MB (checked on this machine). VmHWM belongs to the
address space that exec creates, so it counts only the worker itself.
"""

from __future__ import annotations

import importlib
import resource
import sys
from pathlib import Path

MIB = 1024 * 1024

# What each backend's session imports before it touches a model. The idle baseline imports exactly these, so
# `peak RSS - idle RSS` is what loading and running the model adds, not what importing the runtime costs.
RUNTIME_MODULES: dict[str, tuple[str, ...]] = {
    "torch": (
        "numpy",
        "tinybert_edge.runtime.sessions",
        "torch",
        "transformers",
        "transformers.models.bert.modeling_bert",
        "tinybert_edge.models",
    ),
    "torch-int8": (
        "numpy",
        "tinybert_edge.runtime.sessions",
        "torch",
        "torch.ao.quantization",
        "transformers",
        "transformers.models.bert.modeling_bert",
        "tinybert_edge.models",
        "tinybert_edge.runtime.torch_int8",
    ),
    "onnxruntime": ("numpy", "tinybert_edge.runtime.sessions", "onnxruntime"),
    # "a|b": the first of the alternatives that imports, as the LiteRT session falls back to tflite_runtime.
    "litert": (
        "numpy",
        "tinybert_edge.runtime.sessions",
        "tinybert_edge.runtime.litert",
        "ai_edge_litert.interpreter|tflite_runtime.interpreter",
    ),
    "executorch": (
        "numpy",
        "tinybert_edge.runtime.sessions",
        "tinybert_edge.runtime.executorch_session",
        "torch",
        "executorch.runtime",
        "executorch.kernels.quantized",
    ),
}


def import_runtime(backend: str) -> list[str]:
    """Import the modules the backend's session needs (see RUNTIME_MODULES); return those imported.

    A module that is not installed is passed over: the session then raises MissingDependencyError, whose message
    carries the pip command, instead of this function raising a bare ImportError.
    """
    imported = []
    for entry in RUNTIME_MODULES.get(backend, ("numpy", "tinybert_edge.runtime.sessions")):
        for module in entry.split("|"):
            try:
                importlib.import_module(module)
            except ImportError:
                continue
            imported.append(module)
            break
    return imported


def _status_kib(field_name: str) -> int | None:
    status = Path("/proc/self/status")
    if not status.is_file():
        return None
    for line in status.read_text(encoding="ascii", errors="replace").splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return None


def ru_maxrss_mb() -> float:
    """getrusage's maximum RSS in MiB (KiB on Linux, bytes on macOS). Inherits the parent's peak on Linux."""
    raw = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return raw / MIB if sys.platform == "darwin" else raw / 1024


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB: VmHWM where /proc exists, ru_maxrss elsewhere."""
    hwm = _status_kib("VmHWM")
    return hwm / 1024 if hwm is not None else ru_maxrss_mb()


def current_rss_mb() -> float | None:
    """This process's resident set size now, in MiB (None where /proc does not exist)."""
    rss = _status_kib("VmRSS")
    return rss / 1024 if rss is not None else None


def cuda_memory_mb(backend: str) -> dict[str, float | str | None]:
    """This process's memory on CUDA devices, in MiB, read at the end of a CUDA measurement.

    - `allocator_peak_mb`: the high-water mark of torch's caching allocator (bytes in live tensors at the worst
      moment); torch only, since ONNX Runtime's CUDA arena has no public peak counter.
    - `process_mb`: what the NVIDIA driver says this process holds on every device (NVML, from `nvidia-ml-py`):
      the CUDA context plus every allocator's reservations. Neither torch's caching allocator nor ONNX Runtime's
      arena returns memory to the driver unless told to, so at the end of the run this is the process's peak.
    A figure that cannot be read is None, with the reason under `note`.
    """
    result: dict[str, float | str | None] = {"allocator_peak_mb": None, "process_mb": None, "note": None}
    notes = []
    if backend in ("torch", "torch-int8"):
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
            result["allocator_peak_mb"] = torch.cuda.max_memory_allocated() / MIB
    try:
        import pynvml
    except ImportError:
        notes.append("process figure needs NVML: pip install nvidia-ml-py")
    else:
        used = _nvml_process_bytes(pynvml)
        if used is None:
            notes.append("NVML lists no memory for this process (a container's PID namespace can hide it)")
        else:
            result["process_mb"] = used / MIB
    result["note"] = "; ".join(notes) or None
    return result


def _nvml_process_bytes(pynvml) -> int | None:
    """Bytes NVML reports for this PID, summed over devices; None when the process is not listed."""
    import os

    pynvml.nvmlInit()
    try:
        total, found = 0, False
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            for process in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                if process.pid == os.getpid() and process.usedGpuMemory is not None:
                    total, found = total + int(process.usedGpuMemory), True
        return total if found else None
    finally:
        pynvml.nvmlShutdown()
