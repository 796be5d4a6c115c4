"""What to measure and how: `BenchConfig` (the run rules) and `Target` (one model artifact in one runtime).

The run rules follow optimum-benchmark and MLPerf: warm-up calls that are not timed, then at least
`min_iterations` timed calls AND at least `min_seconds` of timed calls, one subprocess per measurement.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from tinybert_edge.errors import ConfigError

BACKENDS = ("torch", "torch-int8", "onnxruntime", "litert")
ROLES = ("teacher", "student")
DEVICES = ("cpu", "cuda")
# The backends that can run on a CUDA device at all; the others only run on the CPU.
CUDA_BACKENDS = ("torch", "onnxruntime")


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"BenchConfig.{name} = {value!r} is not allowed; allowed: an integer >= {minimum}")


def _check_seconds(name: str, value: object, minimum: float, *, inclusive: bool) -> None:
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and (value >= minimum if inclusive else value > minimum)
    )
    if not ok:
        bound = f">= {minimum}" if inclusive else f"> {minimum}"
        raise ConfigError(f"BenchConfig.{name} = {value!r} is not allowed; allowed: a finite number of seconds {bound}")


@dataclass(frozen=True)
class BenchConfig:
    """Run rules of one benchmark run. Every (target, sequence length) pair is measured under the same rules."""

    sequence_lengths: tuple[int, ...] = (64, 128)
    batch_size: int = 1
    threads: int = 2
    warmup: int = 10
    min_iterations: int = 50
    min_seconds: float = 3.0
    timeout_s: float = 600

    def __post_init__(self) -> None:
        lengths = self.sequence_lengths
        if isinstance(lengths, list):
            lengths = tuple(lengths)
            object.__setattr__(self, "sequence_lengths", lengths)
        if (
            not isinstance(lengths, tuple)
            or not lengths
            or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in lengths)
            or len(set(lengths)) != len(lengths)
        ):
            raise ConfigError(
                f"BenchConfig.sequence_lengths = {self.sequence_lengths!r} is not allowed; "
                "allowed: a non-empty tuple of distinct integers >= 1, e.g. (64, 128)"
            )
        _check_int("batch_size", self.batch_size, 1)
        _check_int("threads", self.threads, 1)
        _check_int("warmup", self.warmup, 0)
        _check_int("min_iterations", self.min_iterations, 1)
        _check_seconds("min_seconds", self.min_seconds, 0.0, inclusive=True)
        _check_seconds("timeout_s", self.timeout_s, 0.0, inclusive=False)

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

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"Target.name = {self.name!r} is not allowed; allowed: a non-empty string")
        if self.role not in ROLES:
            raise ConfigError(f"Target.role = {self.role!r} is not allowed; allowed: {', '.join(ROLES)}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"Target.backend = {self.backend!r} is not allowed; allowed: {', '.join(BACKENDS)}")
        if self.device not in DEVICES:
            raise ConfigError(f"Target.device = {self.device!r} is not allowed; allowed: {', '.join(DEVICES)}")
        if self.device == "cuda" and self.backend not in CUDA_BACKENDS:
            raise ConfigError(
                f"Target.device = 'cuda' is not allowed with backend {self.backend!r}; "
                f"allowed backends on CUDA: {', '.join(CUDA_BACKENDS)}"
            )
        if self.accuracy is not None and not (isinstance(self.accuracy, (int, float)) and 0.0 <= self.accuracy <= 1.0):
            raise ConfigError(f"Target.accuracy = {self.accuracy!r} is not allowed; allowed: None or a fraction in [0, 1]")
        if self.params is not None and (isinstance(self.params, bool) or not isinstance(self.params, int) or self.params < 0):
            raise ConfigError(f"Target.params = {self.params!r} is not allowed; allowed: None or an integer >= 0")
        object.__setattr__(self, "path", Path(os.fspath(self.path)))
