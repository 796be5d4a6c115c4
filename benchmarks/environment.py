"""What a number was measured on: CPU model and flags, cores, OS, Python, runtime versions, threads, git revision.

Runtime versions come from package metadata (importlib.metadata), so describing the environment imports neither
torch nor any other runtime.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

# CPU features that decide which int8 kernels a runtime can use (VNNI / AMX on x86, dot-product / i8mm on ARM).
CPU_FLAGS_OF_INTEREST = (
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "asimd",
    "asimddp",
    "i8mm",
    "sve",
    "bf16",
)

RUNTIME_DISTRIBUTIONS = (
    "tinybert-edge",
    "numpy",
    "torch",
    "transformers",
    "onnx",
    "onnxruntime",
    "onnxruntime-gpu",
    "optimum",
    "optimum-onnx",
    "ai-edge-litert",
    "ai-edge-quantizer",
    "litert-torch",
    "tflite-runtime",
    "executorch",
    "onnxruntime-extensions",
    "mediapipe",
    "tokenizers",
)

THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")

_REPO_ROOT = Path(__file__).resolve().parents[1]


def _cpuinfo() -> dict[str, str]:
    """The first processor block of /proc/cpuinfo (Linux); empty elsewhere."""
    path = Path("/proc/cpuinfo")
    if not path.is_file():
        return {}
    fields: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    return fields


def cpu_model() -> str:
    info = _cpuinfo()
    for key in ("model name", "Model", "Hardware", "cpu model"):
        if info.get(key):
            return info[key]
    if sys.platform == "darwin":
        done = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, check=False)
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip()
    return platform.processor() or platform.machine()


def cpu_flags() -> dict[str, bool]:
    """Which CPU_FLAGS_OF_INTEREST the CPU reports (x86 'flags', ARM 'Features')."""
    info = _cpuinfo()
    present = set((info.get("flags") or info.get("Features") or "").split())
    return {flag: flag in present for flag in CPU_FLAGS_OF_INTEREST}


def runtime_versions() -> dict[str, str]:
    """Installed versions of the runtimes that matter for the numbers; packages not installed are left out."""
    versions = {}
    for name in RUNTIME_DISTRIBUTIONS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def git_revision(folder: str | os.PathLike[str] = _REPO_ROOT) -> dict[str, Any] | None:
    """{"revision": HEAD, "dirty": tracked files differ from HEAD} of the checkout holding `folder`; None outside one.
    Files under benchmarks/results/ do not count: the suites themselves rewrite them."""
    try:
        head = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
        if head.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no", "--", ".",
             ":(exclude)benchmarks/results"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return {"revision": head.stdout.strip(), "dirty": bool(status.stdout.strip()) if status.returncode == 0 else None}


def environment() -> dict[str, Any]:
    """A JSON-ready description of the machine and software the measurements ran on."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    try:
        load = list(os.getloadavg())
    except (AttributeError, OSError):
        load = None
    return {
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        # Other processes competing for the cores inflate tail latency; the load tells a reader whether they did.
        "load_average": load,
        "platform": platform.platform(),
        "system": platform.system(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "versions": runtime_versions(),
        "thread_env": {name: os.environ.get(name) for name in THREAD_ENV_VARS},
        "git": git_revision(),
    }
