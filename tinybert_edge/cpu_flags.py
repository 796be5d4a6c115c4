"""The CPU's instruction-set flags as Linux lists them, read without importing torch (the converters choose their
int8 preset from them; training checks native bf16 with them)."""

from __future__ import annotations

from pathlib import Path


def read_cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str] | None:
    """The first CPU's feature flags (x86 'flags', ARM 'Features'), or None where the system does not list them."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return None
