"""What the host CPU supports, for a warning when it cannot run what we emit."""

from __future__ import annotations

import platform
from pathlib import Path

REQUIRED_FLAGS = ("avx2", "fma")
# What `morello bench --peer-isa` may keep peers to: all the host has, or the AVX2 our
# kernels target. Here, not in morello.peers, so the CLI names them without importing it.
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
