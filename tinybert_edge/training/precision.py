"""Training precision: fp32, or bf16/fp16 autocast where the hardware runs it natively.

bf16 on a CPU pays only with native bf16 dot products (x86 AVX512_BF16 or AMX-BF16, ARM's BF16 extension); without
them oneDNN emulates bf16 with fp32 instructions plus conversions, slower than fp32 and less accurate. So a bf16
request on such a CPU is refused with the reason, never silently emulated, and `auto` picks fp32 there. On CUDA,
`auto` picks bf16 where the GPU supports it, else fp16 (with loss scaling).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from tinybert_edge.config import PRECISIONS
from tinybert_edge.cpu_flags import read_cpu_flags
from tinybert_edge.errors import ConfigError

log = logging.getLogger(__name__)

# CPU flags (x86 /proc/cpuinfo "flags", ARM "Features") that mean native bf16 matrix arithmetic.
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")


@dataclass(frozen=True)
class Precision:
    """What the loop runs in: `name` (fp32, bf16, fp16), the autocast dtype (None for fp32), and why it was chosen."""

    name: str
    dtype: torch.dtype | None
    reason: str

    @property
    def autocast(self) -> bool:
        return self.dtype is not None

    @property
    def loss_scaling(self) -> bool:
        """fp16 gradients underflow without a loss scale; bf16 has fp32's exponent range and needs none."""
        return self.dtype == torch.float16


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str] | None:
    """The CPU's feature flags (x86 'flags', ARM 'Features'), or None where the system does not list them."""
    flags = read_cpu_flags(cpuinfo)
    return None if flags is None else set(flags)


def cpu_bf16_support(flags: set[str] | None = None) -> tuple[bool, str]:
    """(whether this CPU runs bf16 natively, the reason), from its flags (default: read from /proc/cpuinfo)."""
    flags = cpu_flags() if flags is None else flags
    capability = torch.backends.cpu.get_cpu_capability()
    if flags is None:
        return False, (f"the CPU's instruction sets cannot be read here (no /proc/cpuinfo; torch reports capability "
                       f"{capability}), so native bf16 (AVX512_BF16, AMX-BF16) cannot be confirmed")
    found = [flag for flag in CPU_BF16_FLAGS if flag in flags]
    if found:
        return True, f"the CPU has {', '.join(found)} (torch capability {capability})"
    vector = sorted(f for f in flags if f.startswith(("avx512", "amx", "avx2", "asimd", "sve")))
    return False, (f"the CPU lacks AVX512_BF16, AMX-BF16 and ARM BF16 (it has {', '.join(vector) or 'none of them'}; "
                   f"torch capability {capability}), so bf16 would be emulated, slower than fp32")


def resolve_precision(precision: str, device: torch.device, flags: set[str] | None = None) -> Precision:
    """The precision `precision` (one of PRECISIONS) means on `device`; a precision the hardware cannot run natively
    is refused with the reason. `flags` overrides the CPU's flags (tests)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision = {precision!r} is not allowed; allowed: {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return Precision("fp32", None, "asked for")
    if device.type == "cuda":
        bf16 = torch.cuda.is_bf16_supported()
        if precision == "bf16" and not bf16:
            raise ConfigError(f"precision = 'bf16' cannot run on {torch.cuda.get_device_name(device)}: it has no "
                              "bf16 support; use precision = 'fp16' or 'auto'")
        if precision == "auto":
            return (Precision("bf16", torch.bfloat16, "auto: the GPU supports bf16") if bf16
                    else Precision("fp16", torch.float16, "auto: the GPU has no bf16; fp16 with loss scaling"))
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return Precision(precision, dtype, "asked for")
    if device.type != "cpu":
        raise ConfigError(f"precision = {precision!r} is only supported on CPUs and CUDA GPUs, not {device.type}; "
                          "use precision = 'fp32'")
    if precision == "fp16":
        raise ConfigError("precision = 'fp16' is refused on CPUs: CPU autocast runs fp16 natively only on AMX-FP16 "
                          "parts and emulates it elsewhere; use precision = 'bf16' (CPUs with AVX512_BF16 or AMX) "
                          "or 'fp32'")
    native, reason = cpu_bf16_support(flags)
    if precision == "bf16":
        if not native:
            raise ConfigError(f"precision = 'bf16' is refused on this CPU: {reason}; use precision = 'fp32' "
                              "(or 'auto', which picks bf16 only where it is native)")
        return Precision("bf16", torch.bfloat16, f"asked for; {reason}")
    if native:
        return Precision("bf16", torch.bfloat16, f"auto: {reason}")
    log.info("precision auto: fp32, because %s", reason)
    return Precision("fp32", None, f"auto: {reason}")
