"""The Python face of the public contract: one call from a problem to a program.

``matmul_problem`` (from ``morello.core.spec``) turns the command line's text into a Spec.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from morello.core.kernels import DOT_PREFETCH_BYTES
from morello.core.memo import Memo
from morello.core.program import Program
from morello.core.search import SearchStats, synthesize
from morello.core.spec import Spec
from morello.emit.codegen import render_header
from morello.errors import SpecError
from morello.tune.host import DEFAULT, HostProfile


@dataclass(frozen=True, slots=True)
class Synthesized:
    """A synthesized kernel: the program, how it was found, and its header."""

    program: Program
    stats: SearchStats
    threads: int
    prefetch_bytes: int = DOT_PREFETCH_BYTES  # how far ahead the dot kernel prefetches B

    def to_header(self, name: str, *, bias: str | None = None, b_stride: int | None = None) -> str:
        """``b_stride``: B's rows are this many elements apart (padded), as the Spec's
        ``b_stride`` said; by default dense."""
        return render_header(
            self.program,
            name,
            threads=self.threads,
            bias=bias,
            prefetch_bytes=self.prefetch_bytes,
            b_stride=b_stride,
        )


def synthesize_spec(
    spec: Spec,
    *,
    threads: int = 1,
    memo: Memo | None = None,
    progress: Callable[[int], None] | None = None,
    profile: HostProfile = DEFAULT,
) -> Synthesized:
    """The cheapest program for ``spec`` under the cost model of ``profile`` (the built-in
    defaults unless given: pass ``morello.tune.host.load()`` for this host's calibration),
    solved into ``memo`` (in memory unless given; it must be a table of that model)."""
    if spec.serial != (threads == 1):
        raise SpecError(
            f"the Spec was built for {'1 thread' if spec.serial else 'several threads'} but "
            f"synthesis asks for {threads}: pass the same threads to both"
        )
    program, stats = synthesize(
        spec, threads=threads, memo=memo, progress=progress, model=profile.model
    )
    return Synthesized(program, stats, threads, profile.prefetch_bytes)
