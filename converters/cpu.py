"""CPU instruction-set detection, used to pick the ONNX Runtime int8 preset for the machine that will run the model.

Why it matters: on x86 CPUs without VNNI, ONNX Runtime's u8 x s8 int8 matmul kernels add pairs of products in
16-bit registers (vpmaddubsw) and can saturate, giving wrong logits; u8 weights or a reduced 7-bit range avoid it.
"""

from __future__ import annotations

import logging
import platform
from dataclasses import dataclass
from pathlib import Path

from tinybert_edge.cpu_flags import read_cpu_flags as read_listed_flags

log = logging.getLogger(__name__)

ARM_MACHINES = ("arm64", "aarch64", "armv8", "armv8l")
X86_MACHINES = ("x86_64", "amd64", "i386", "i686")
VNNI_FLAGS = ("avx512_vnni", "avx512vnni", "avx_vnni")


@dataclass(frozen=True)
class CpuInfo:
    machine: str
    flags: frozenset[str]

    @property
    def is_arm(self) -> bool:
        return self.machine.lower() in ARM_MACHINES

    @property
    def is_x86(self) -> bool:
        return self.machine.lower() in X86_MACHINES

    @property
    def has_vnni(self) -> bool:
        return any(flag in self.flags for flag in VNNI_FLAGS)

    @property
    def has_avx512(self) -> bool:
        return "avx512f" in self.flags

    @property
    def has_avx2(self) -> bool:
        return "avx2" in self.flags


def read_cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The instruction-set flags Linux reports for the first CPU (empty where /proc/cpuinfo is absent)."""
    return read_listed_flags(cpuinfo) or frozenset()


def this_cpu() -> CpuInfo:
    return CpuInfo(machine=platform.machine(), flags=read_cpu_flags())


def choose_preset(cpu: CpuInfo) -> tuple[str, str]:
    """Name the QuantizationConfig preset for `cpu` and say why: ("avx2" | "avx512_vnni" | "arm64", reason)."""
    if cpu.is_arm:
        return "arm64", f"machine '{cpu.machine}' is ARM: s8 weights run on its int8 dot-product kernels"
    if cpu.has_vnni:
        return "avx512_vnni", "the CPU has VNNI: s8 weights use vpdpbusd without 16-bit saturation"
    if cpu.is_x86 or cpu.has_avx2 or cpu.has_avx512:
        return "avx2", (
            f"x86 CPU without VNNI (avx2={cpu.has_avx2}, avx512f={cpu.has_avx512}): u8 weights avoid the "
            "u8 x s8 saturation of ONNX Runtime's vpmaddubsw kernels"
        )
    return "avx2", f"unknown machine '{cpu.machine}' without readable CPU flags: the saturation-safe avx2 preset"
