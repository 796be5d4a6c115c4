"""What to measure and how: `BenchConfig` (the run rules) and `Target` (one model artifact in one runtime).

The run rules follow optimum-benchmark and MLPerf: warm-up calls that are not timed, then at least
`min_iterations` timed calls AND at least `min_seconds` of timed calls, one subprocess per measurement.

The measurement grid is the product sequence_lengths x batch sizes x thread counts (`BenchConfig.grid()`). The
"headline" point of each sequence length is (batch_size, threads): it is always in the grid, and it is what the
comparison against the teacher uses (`row["latency"][str(seq_len)]`).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path

from tinybert_edge.artifacts import INT8_ONNX_OPS, onnx_file, read_metadata
from tinybert_edge.config import DEFAULT_SEQUENCE_LENGTHS
from tinybert_edge.errors import ConfigError, TinyBertEdgeError
from tinybert_edge.validation import check_bool, check_choice, check_number, freeze, int_tuple, invalid

BACKENDS = ("torch", "torch-int8", "onnxruntime", "litert", "executorch")
ROLES = ("teacher", "student")
DEVICES = ("cpu", "cuda")
# The backends that can run on a CUDA device at all; the others only run on the CPU.
CUDA_BACKENDS = ("torch", "onnxruntime")


@dataclass(frozen=True)
class BenchConfig:
    """Run rules of one benchmark run. Every point of the grid is measured under the same rules.

    `batch_sizes` and `thread_counts` add sweep points to the headline (`batch_size`, `threads`); empty means the
    headline value only. `roofline` measures this machine's fp32 and int8 GEMM peaks (square `gemm_size` matrices,
    one subprocess per thread count) so each row reports how far it runs from the hardware limit.
    """

    sequence_lengths: tuple[int, ...] = DEFAULT_SEQUENCE_LENGTHS
    batch_size: int = 1
    threads: int = 2
    warmup: int = 10
    min_iterations: int = 50
    min_seconds: float = 3.0
    timeout_s: float = 600
    batch_sizes: tuple[int, ...] = ()
    thread_counts: tuple[int, ...] = ()
    roofline: bool = True
    gemm_size: int = 1024

    def __post_init__(self) -> None:
        freeze(self, "sequence_lengths", int_tuple("BenchConfig", "sequence_lengths", self.sequence_lengths))
        freeze(self, "batch_sizes", int_tuple("BenchConfig", "batch_sizes", self.batch_sizes, allow_empty=True,
                                              example="(1, 8)"))
        freeze(self, "thread_counts", int_tuple("BenchConfig", "thread_counts", self.thread_counts, allow_empty=True,
                                                example="(1, 2)"))
        for name, minimum in (("batch_size", 1), ("threads", 1), ("warmup", 0), ("min_iterations", 1),
                              ("gemm_size", 16)):
            check_number("BenchConfig", name, getattr(self, name), minimum=minimum, integer=True)
        check_number("BenchConfig", "min_seconds", self.min_seconds, minimum=0.0, unit="seconds")
        check_number("BenchConfig", "timeout_s", self.timeout_s, minimum=0.0, exclusive=True, unit="seconds")
        check_bool("BenchConfig", "roofline", self.roofline)

    @property
    def batch_grid(self) -> tuple[int, ...]:
        """The batch sizes measured: the sweep's and the headline `batch_size`, ascending."""
        return tuple(sorted(set(self.batch_sizes) | {self.batch_size}))

    @property
    def thread_grid(self) -> tuple[int, ...]:
        """The thread counts measured: the sweep's and the headline `threads`, ascending."""
        return tuple(sorted(set(self.thread_counts) | {self.threads}))

    def grid(self) -> list[tuple[int, int, int]]:
        """Every (seq_len, batch_size, threads) point to measure: the product of the three axes, in that order."""
        return list(itertools.product(self.sequence_lengths, self.batch_grid, self.thread_grid))

    def is_headline(self, batch_size: int, threads: int) -> bool:
        return batch_size == self.batch_size and threads == self.threads

    @classmethod
    def quick(cls) -> "BenchConfig":
        """A short smoke run (seconds, not minutes): for tests and for checking that every target loads."""
        return cls(sequence_lengths=(64,), warmup=2, min_iterations=10, min_seconds=0.2, timeout_s=120)

    @classmethod
    def mlperf_like(cls) -> "BenchConfig":
        """MLPerf Mobile's minimum: at least 1024 queries and at least 60 seconds per measurement."""
        return cls(warmup=50, min_iterations=1024, min_seconds=60.0, timeout_s=1800)


@dataclass(frozen=True)
class Target:
    """One artifact to measure: a model folder or file, the runtime that runs it, and what it is."""

    name: str
    role: str
    backend: str
    path: Path
    precision: str
    accuracy: float | None = None
    params: int | None = None
    device: str = "cpu"
    extra: dict = field(default_factory=dict, compare=False)
    # Every task metric when known ({"spearman": 0.85, "pearson": 0.86}) and the one tables headline; `accuracy`
    # alone is the classifier's short form.
    metrics: dict = field(default_factory=dict, compare=False)
    primary_metric: str = "accuracy"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise invalid("Target", "name", self.name, "a non-empty string")
        check_choice("Target", "role", self.role, ROLES, quoted=False)
        check_choice("Target", "backend", self.backend, BACKENDS, quoted=False)
        check_choice("Target", "device", self.device, DEVICES, quoted=False)
        if self.device == "cuda" and self.backend not in CUDA_BACKENDS:
            raise ConfigError(
                f"Target.device = 'cuda' is not allowed with backend {self.backend!r}; "
                f"allowed backends on CUDA: {', '.join(CUDA_BACKENDS)}"
            )
        check_number("Target", "accuracy", self.accuracy, minimum=0.0, maximum=1.0, optional=True)
        check_number("Target", "params", self.params, minimum=0, integer=True, optional=True)
        object.__setattr__(self, "path", Path(os.fspath(self.path)))


def _onnx_precision(path: Path) -> str | None:
    """'int8' when the graph holds integer matmuls or quantize ops (decided by operator types, not by names)."""
    try:
        file = onnx_file(path)
        import onnx
    except (ImportError, TinyBertEdgeError):
        return None
    try:
        graph = onnx.load(str(file), load_external_data=False).graph
    except Exception:  # onnx raises its own untyped errors for unreadable files; precision stays unknown
        return None
    ops = {node.op_type for node in graph.node}
    return "int8" if ops & set(INT8_ONNX_OPS) else "fp32"


def infer_precision(backend: str, path: Path) -> str:
    """The precision of an artifact: from its export metadata, else from its graph (ONNX), else from the backend."""
    if backend == "torch-int8":
        return "int8"
    if backend == "torch":
        return "fp32"
    declared = read_metadata(path).get("precision") if path.exists() else None
    if isinstance(declared, str) and declared:
        return declared
    if backend == "onnxruntime" and path.exists():
        return _onnx_precision(path) or "unknown"
    return "unknown"


def parse_target(spec: str, role: str = "student") -> Target:
    """A Target from the command line's `NAME=BACKEND:PATH` (e.g. `student-int8=onnxruntime:runs/a/onnx-int8`).

    The precision comes from the artifact's export metadata or its graph (see `infer_precision`). A path that does
    not exist is accepted here: `bench` reports it in that target's row and measures the others.
    """
    name, sep, rest = spec.partition("=")
    backend, sep2, path = rest.partition(":")
    if not sep or not sep2 or not name.strip() or not path:
        raise ConfigError(
            f"target {spec!r} is not allowed; allowed: NAME=BACKEND:PATH with BACKEND one of {', '.join(BACKENDS)}, "
            "e.g. 'student int8=onnxruntime:runs/first/artifacts/onnx-int8'"
        )
    if backend not in BACKENDS:
        raise ConfigError(f"target {spec!r}: backend {backend!r} is not allowed; allowed: {', '.join(BACKENDS)}")
    return Target(name=name.strip(), role=role, backend=backend, path=Path(path), precision=infer_precision(backend, Path(path)))
