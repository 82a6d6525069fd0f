"""The AVX2 target: its memory levels and their capacities.

Levels are ordered from slowest to fastest. GL and L3 are the caller's memory: L3 marks
a caller's tensor small enough to stay in the shared last-level cache from one pass over
it to the next (a 4 MiB matrix of a square matmul), GL one that comes from DRAM every time
(an LLM's weights, which all layers together make far larger than any L3). L2 and L1 are
the caches: an operand "in L1" is one the program has made resident there, either by copying
it into a buffer of that size (which may change its layout or widen its dtype) or by
touching a tile small enough to stay there. RF and VRF are the general and the 256-bit
vector registers; their capacity is counted in registers, the caches' in bytes.
"""

from __future__ import annotations

import enum
from typing import NamedTuple


class Level(enum.IntEnum):
    GL = 0
    L3 = 1
    L2 = 2
    L1 = 3
    RF = 4
    VRF = 5

    __hash__ = int.__hash__  # Enum's own hash is slow Python; the search hashes levels a lot

    @property
    def is_register(self) -> bool:
        return self >= Level.RF

    def __str__(self) -> str:
        return self.name


VECTOR_BYTES = 32  # one AVX2 register
F32_LANES = VECTOR_BYTES // 4


class MemoryLimits(NamedTuple):  # a tuple: the search hashes millions, in C
    """What a Spec may still allocate: vector registers, and bytes of L1 and L2.

    Cache budgets are rounded down to powers of two so that Specs reached through
    different allocations share memo entries; that only ever under-uses a cache.
    """

    vrf: int
    l1: int
    l2: int

    def quantized(self) -> MemoryLimits:
        return MemoryLimits(self.vrf, _floor_pow2(self.l1), _floor_pow2(self.l2))

    def capacity(self, level: Level) -> int:
        match level:
            case Level.VRF:
                return self.vrf
            case Level.L1:
                return self.l1
            case Level.L2:
                return self.l2
        raise ValueError(f"level {level} has no allocation budget")

    def minus(self, level: Level, amount: int) -> MemoryLimits:
        match level:
            case Level.VRF:
                return MemoryLimits(self.vrf - amount, self.l1, self.l2)
            case Level.L1:
                return MemoryLimits(self.vrf, self.l1 - amount, self.l2).quantized()
            case Level.L2:
                return MemoryLimits(self.vrf, self.l1, self.l2 - amount).quantized()
        raise ValueError(f"level {level} has no allocation budget")


def _floor_pow2(x: int) -> int:
    return 0 if x <= 0 else 1 << (x.bit_length() - 1)


# Zen 4 / Skylake class cores: 32 KiB L1d and 1-2 MiB L2 per core. The L2 budget is half
# of the smaller L2 so that what the program does not model (stack, streams) keeps a share.
AVX2_LIMITS = MemoryLimits(vrf=16, l1=32 * 1024, l2=512 * 1024)
L1_WAYS = 8  # associativity of L1d on both
L2_SAFE_RUNS = 64  # strided runs L2 keeps whatever the stride, up to 16 KiB (rewrites.runs)
# A share of the last-level cache (32 MiB per Zen 4 CCX, shared by its cores and, on a VM,
# with its neighbours) that the caller's operands may count on keeping between passes.
L3_BYTES = 8 << 20
