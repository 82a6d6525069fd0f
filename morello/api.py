"""The Python face of the public contract: one call from a problem to a program."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from morello.dtypes import Dtype
from morello.layout import parse_layout
from morello.memo import Memo
from morello.program import Program
from morello.search import SearchStats, synthesize
from morello.spec import Spec, SpecError, matmul_spec
from morello.target import AVX2_LIMITS, MemoryLimits


@dataclass(frozen=True, slots=True)
class Synthesized:
    """A synthesized kernel: the program, how it was found, and its header."""

    program: Program
    stats: SearchStats
    threads: int

    def to_header(self, name: str) -> str:
        return self.program.to_header(name, threads=self.threads)


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
) -> Spec:
    """The Spec of ``morello synth matmul SHAPE --dtypes ... --layouts ...``."""
    m, k, n = parse_shape(shape)
    try:
        da, db, dc = (Dtype.parse(t) for t in _triple(dtypes, "--dtypes"))
        la, lb, lc = (parse_layout(t) for t in _triple(layouts, "--layouts"))
    except ValueError as e:
        raise SpecError(str(e)) from None
    dts, lays = (da, db, dc), (la, lb, lc)
    return matmul_spec(m, k, n, dts, lays, accumulate=accumulate, threads=threads, limits=limits)


def synthesize_spec(
    spec: Spec,
    *,
    threads: int = 1,
    memo: Memo | None = None,
    progress: Callable[[int], None] | None = None,
) -> Synthesized:
    if spec.serial != (threads == 1):
        raise SpecError(
            f"the Spec was built for {'1 thread' if spec.serial else 'several threads'} but "
            f"synthesis asks for {threads}: pass the same threads to both"
        )
    program, stats = synthesize(spec, threads=threads, memo=memo, progress=progress)
    return Synthesized(program, stats, threads)
