"""The Spec language: what a (sub)program must compute, not how.

A Spec is an operation applied to tensor specs, with the memory it may still allocate
and whether it must run serially. Specs are immutable values: the search memoizes on
them, so two paths to the same sub-problem share one solution.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache

from morello.core.dtypes import Dtype
from morello.core.layout import COL, ROW, Layout, parse_layout
from morello.core.target import AVX2_LIMITS, F32_LANES, L3_BYTES, Level, MemoryLimits
from morello.errors import SpecError


class Op(enum.Enum):
    MATMUL = "Matmul"  # C = A·B
    MATMUL_ACCUM = "MatmulAccum"  # C += A·B
    ZERO = "Zero"  # C = 0
    MOVE = "Move"  # dst = src, across levels and layouts; widens bf16 to f32

    __hash__ = object.__hash__  # members are singletons; Enum's own hash is slow Python


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """A 2-D operand as the Spec sees it: which buffer holds it is the code generator's
    business; the Spec knows only what the choice of program depends on."""

    shape: tuple[int, int]
    dtype: Dtype
    layout: Layout
    level: Level
    contiguous: bool = True  # the tile is one dense run of its buffer
    owned: bool = False  # a buffer the program allocated: it is not copied again
    # Resident in a cache, but not yet fetched: its lines come from DRAM when the code
    # below first touches them, in the order it touches them (see ``cost.restreams``).
    from_dram: bool = False
    # The search hashes Specs millions of times; computing it once per value pays.
    _hash: int = field(init=False, repr=False, compare=False)
    _lines: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.level >= Level.L1:
            # Nothing below prices a fetch from L1 or registers, nor copies from there: for
            # a tile that has no DRAM fetch still owed, whether it is one run or strided
            # and who owns its buffer change no cost. Specs that differ in these alone have
            # one program and share one memo entry.
            object.__setattr__(self, "owned", False)
            if not self.from_dram:
                object.__setattr__(self, "contiguous", True)
        fields = (
            self.shape,
            self.dtype,
            self.layout,
            self.level,
            self.contiguous,
            self.owned,
            self.from_dram,
        )
        object.__setattr__(self, "_hash", hash(fields))
        object.__setattr__(
            self, "_lines", self.layout.lines(self.shape, self.dtype.size, self.contiguous)
        )

    def __hash__(self) -> int:
        return self._hash

    @property
    def vector_lanes(self) -> int:
        """Lanes per vector register for a register-resident operand, else 0."""
        return F32_LANES if self.level == Level.VRF else 0

    @property
    def registers(self) -> int:
        rows, cols = self.shape
        return rows * -(-cols // F32_LANES)

    @property
    def bytes(self) -> int:
        return self.layout.buffer_elems(self.shape) * self.dtype.size

    def lines(self) -> int:
        """Cache lines the tile spans, estimated from its layout and shape."""
        return self._lines

    def tile(self, rows: int, cols: int, col_step: int) -> TensorSpec | None:
        """The spec of a rows x cols tile at a multiple of ``col_step`` columns, or None when
        the layout cannot express such a tile by a pointer offset."""
        return tile_tensor(self, rows, cols, col_step)

    def _tile(self, rows: int, cols: int, col_step: int) -> TensorSpec | None:
        if (rows, cols) == self.shape:
            return self
        # Only column tiles move along the layout's column structure; row tiles keep it.
        layout = self.layout if cols == self.shape[1] else self.layout.tile(col_step, cols)
        if layout is None:
            return None
        shape = (rows, cols)
        contiguous = self.layout.one_run(shape) or (
            self.contiguous and self.layout.contiguous_tile(shape, self.shape)
        )
        return TensorSpec(
            shape, self.dtype, layout, self.level, contiguous, self.owned, self.from_dram
        )

    def __str__(self) -> str:
        rows, cols = self.shape
        flags = "" if self.contiguous else " strided"
        level = f"{self.level}<-GL" if self.from_dram else str(self.level)
        return f"{rows}x{cols} {self.dtype.value} {level} {self.layout}{flags}"


# Tiles repeat across the search: one TensorSpec per distinct tile keeps hashing cheap.
tile_tensor = lru_cache(maxsize=1 << 16)(TensorSpec._tile)


@dataclass(frozen=True, slots=True)
class Spec:
    """Operands: (A, B, C) for the matmuls, (C,) for Zero, (src, dst) for Move."""

    op: Op
    operands: tuple[TensorSpec, ...]
    limits: MemoryLimits
    serial: bool
    _hash: int = field(init=False, repr=False, compare=False)
    _mkn: tuple[int, int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.op, self.operands, self.limits, self.serial)))
        if len(self.operands) == 3:
            a, _, c = self.operands
            object.__setattr__(self, "_mkn", (c.shape[0], a.shape[1], c.shape[1]))

    def __hash__(self) -> int:
        return self._hash

    @property
    def mkn(self) -> tuple[int, int, int]:
        return self._mkn

    @property
    def is_matmul(self) -> bool:
        return self.op in (Op.MATMUL, Op.MATMUL_ACCUM)

    def with_operand(self, index: int, operand: TensorSpec) -> Spec:
        ops = list(self.operands)
        ops[index] = operand
        return replace(self, operands=tuple(ops))

    def __str__(self) -> str:
        if self.is_matmul:
            m, k, n = self.mkn
            a, b, c = self.operands
            body = f"{m}x{k}x{n}, A {a}, B {b}, C {c}"
        else:
            body = ", ".join(str(t) for t in self.operands)
        return f"{self.op.value}({body}{', serial' if self.serial else ''})"


# Offsets are int64 in the emitted C++; a matrix this size is already 4 GiB of f32 per row.
MAX_DIMENSION = 2**30


def _caller_levels(
    operands: tuple[TensorSpec, ...], b_from_dram: bool = False
) -> tuple[TensorSpec, ...]:
    """Marks the caller's tensors that stay in L3 between passes, smallest first, within
    L3_BYTES: re-reading them costs a cache stream, not DRAM. With ``b_from_dram``, B
    never does."""
    room = L3_BYTES
    levels = [Level.GL] * len(operands)
    for index in sorted(range(len(operands)), key=lambda i: operands[i].bytes):
        if b_from_dram and index == 1:
            continue
        if operands[index].bytes <= room:
            room -= operands[index].bytes
            levels[index] = Level.L3
    return tuple(replace(t, level=level) for t, level in zip(operands, levels, strict=True))


# More threads than any one machine morello targets has cores: a typo, not a request (the
# search would spend minutes on parallel splits no host can run).
MAX_THREADS = 1024


def matmul_spec(
    m: int,
    k: int,
    n: int,
    dtypes: tuple[Dtype, Dtype, Dtype],
    layouts: tuple[Layout, Layout, Layout] = (ROW, ROW, ROW),
    *,
    accumulate: bool = False,
    threads: int = 1,
    limits: MemoryLimits = AVX2_LIMITS,
    b_from_dram: bool = False,
    b_stride: int | None = None,
) -> Spec:
    """The Spec of the public contract: operands dense in the caller's memory, with what
    a program may allocate on the host (``morello.tune.host``). ``b_from_dram``: B is read
    from DRAM on every call whatever its size, as a model's weights are in a decode step
    (all layers' weights together are larger than any cache); otherwise operands that fit
    a share of L3 are taken to stay there between calls. ``b_stride``: elements from one
    row of B's storage to the next (one weight row of K for ``col``), when its rows are
    padded, as gemma.cpp pads weights it reads into memory."""
    for name, size in (("M", m), ("K", k), ("N", n)):
        if size <= 0:
            raise SpecError(f"dimension {name} must be positive, got {size}")
        if size > MAX_DIMENSION:
            raise SpecError(f"dimension {name} is {size}, more than the {MAX_DIMENSION} supported")
    if not 1 <= threads <= MAX_THREADS:
        raise SpecError(f"threads must be from 1 to {MAX_THREADS}, got {threads}")
    if dtypes[2] != Dtype.F32:
        raise SpecError(
            f"no kernel path for C of dtype {dtypes[2].value}: results are accumulated "
            "and stored in f32 (use --dtypes A,B,f32)"
        )
    shapes = ((m, k), (k, n), (m, n))
    pairs = zip(shapes, dtypes, layouts, strict=True)
    tensors = [TensorSpec(s, d, lay, Level.GL) for s, d, lay in pairs]
    if b_stride is not None:
        b = tensors[1]
        dense = b.layout.dense_ld(b.shape)
        if b_stride < dense:
            raise SpecError(
                f"B's stride {b_stride} is shorter than its rows ({dense} elements for a "
                f"{k}x{n} B {b.layout}): the stride counts elements from one row to the next"
            )
        padded = b_stride != dense and not b.layout.one_run(b.shape)
        tensors[1] = replace(b, contiguous=not padded)
    operands = _caller_levels(tuple(tensors), b_from_dram)
    op = Op.MATMUL_ACCUM if accumulate else Op.MATMUL
    return Spec(op, operands, limits, serial=threads == 1)


def parse_shape(text: str) -> tuple[int, int, int]:
    parts = re.fullmatch(r"\s*(-?\d+)\s*[xX*]\s*(-?\d+)\s*[xX*]\s*(-?\d+)\s*", text)
    if parts is None:
        raise SpecError(f"shape {text!r} is not MxKxN (e.g. 1x2048x16384)")
    m, k, n = (int(p) for p in parts.groups())
    return m, k, n


def _triple(text: str, what: str) -> list[str]:
    items = [t.strip() for t in text.split(",")]
    if len(items) != 3 or not all(items):
        raise SpecError(f"{what} {text!r} must name three operands, A,B,C (e.g. bf16,bf16,f32)")
    return items


def matmul_problem(
    shape: str,
    dtypes: str,
    layouts: str = "row,row,row",
    *,
    threads: int = 1,
    accumulate: bool = False,
    limits: MemoryLimits = AVX2_LIMITS,
    b_from_dram: bool = False,
    b_stride: int | None = None,
) -> Spec:
    """The Spec of ``morello synth matmul SHAPE --dtypes ... --layouts ...``."""
    m, k, n = parse_shape(shape)
    try:
        da, db, dc = (Dtype.parse(t) for t in _triple(dtypes, "--dtypes"))
        la, lb, lc = (parse_layout(t) for t in _triple(layouts, "--layouts"))
    except ValueError as e:
        raise SpecError(str(e)) from None
    dts, lays = (da, db, dc), (la, lb, lc)
    return matmul_spec(
        m,
        k,
        n,
        dts,
        lays,
        accumulate=accumulate,
        threads=threads,
        limits=limits,
        b_from_dram=b_from_dram,
        b_stride=b_stride,
    )


def runs(t: TensorSpec) -> int:
    """Separate pieces of the buffer a tile spans: 1 if it is contiguous, else its rows (its
    columns if col-major).

    A cache holds a strided tile only if its runs spread over enough sets, which its
    stride decides. With a power-of-two stride (a 1024-wide f32 matrix: 4 KiB) every run
    of a tile maps to the same L1 set: more runs than L1 has ways thrash while they seem
    to fit. L2 has 2048 sets of 8 ways, so up to a 16 KiB stride (a 4096-wide f32 matrix)
    the runs fall into at least 8 groups of sets: 64 runs are safe. A tile of more runs
    reaches that cache by a Move into a dense buffer instead (packing).
    """
    if t.contiguous:
        return 1
    return t.shape[1] if t.layout == COL else t.shape[0]
