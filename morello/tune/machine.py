"""What the host machine is, as the kernel reports it: the CPU features our kernels need,
and the sizes of its caches."""

from __future__ import annotations

import platform
from pathlib import Path

REQUIRED_FLAGS = ("avx2", "fma")
# What `morello bench --peer-isa` may keep peers to: all the host has, or the AVX2 our
# kernels target. Here, not in morello.bench.peers, so the CLI names them without importing it.
ISAS = ("native", "avx2")


def missing_features(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[str, ...] | None:
    """The required CPU features this machine lacks, () if none, None if unknown."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return REQUIRED_FLAGS
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return tuple(f for f in REQUIRED_FLAGS if f not in flags)
    return None


CPU_CACHES = Path("/sys/devices/system/cpu/cpu0/cache")  # the kernel's view of core 0's caches


def cache_bytes(level: int, cpu: Path = CPU_CACHES) -> int:
    """The size of the host's cache at ``level`` as the kernel reports it (0 if unknown).
    On a shared VM the L3 is often the whole socket's, far more than this guest gets to
    keep, but data larger still are in DRAM whatever the neighbours do."""
    for index in sorted(cpu.glob("index*")):
        try:
            if (index / "level").read_text().strip() != str(level):
                continue
            kind = index / "type"  # L1 has a data and an instruction cache
            if kind.exists() and kind.read_text().strip() == "Instruction":
                continue
            size = (index / "size").read_text().strip()
            units = {"K": 1 << 10, "M": 1 << 20}
            return int(size[:-1]) * units[size[-1]] if size[-1] in units else int(size)
        except (OSError, ValueError):
            continue
    return 0


def l3_bytes(cpu: Path = CPU_CACHES) -> int:
    return cache_bytes(3, cpu)


def beyond_l3(at_least: int, most: int = 2 << 30) -> int:
    """4x the host's L3, within [at_least, most]: bytes that come from DRAM when streamed."""
    return max(at_least, min(4 * l3_bytes(), most))
