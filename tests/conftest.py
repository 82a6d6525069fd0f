from __future__ import annotations

import random
from pathlib import Path

import pytest

from morello.core.dtypes import Dtype
from morello.core.kernels import Kernel, KernelKind, dot_mode
from morello.core.layout import Packed
from morello.core.memo import InMemoryMemo
from morello.core.program import Program
from morello.core.rewrites import B, Move, canonical
from morello.core.search import Search
from morello.core.spec import Spec, matmul_problem
from morello.core.target import Level
from morello.emit.codegen import render_header
from morello.front.api import synthesize_spec

from .bindings import build
from .kernel_cases import CASES
from .random_programs import forced_program, random_program

CACHE = Path(__file__).resolve().parent / ".cache" / "bindings"


def _dot(kind: KernelKind, unroll: int = 1, streams: int = 1):
    def kernel(spec: Spec) -> Kernel:
        a, b, _ = spec.operands
        mode = dot_mode(a.dtype, a.layout, b.dtype)
        assert mode is not None
        return Kernel(kind, mode, unroll, streams)

    return kernel


# Root actions for Case.forced: B packed into 16-wide f32 panels; the dot kernel, one
# output at a time, over a block of outputs at once, or over runs of columns side by side.
FORCED = {
    "packB": lambda spec: Move(B, Level.L1, Packed(16), Dtype.F32),
    "dot": _dot(KernelKind.DOT, unroll=2),
    "dotBlock": _dot(KernelKind.DOT_BLOCK),
    "dotStreams2": _dot(KernelKind.DOT_BLOCK, streams=2),
    "dotStreams3": _dot(KernelKind.DOT_BLOCK, streams=3),
}


@pytest.fixture(scope="session")
def programs() -> dict[str, Program]:
    """Every case's program: the optimum (one memo shared by all), or a random one."""
    memo = InMemoryMemo()
    found = {}
    for case in CASES:
        shape = "x".join(map(str, case.shape))
        spec = matmul_problem(
            shape,
            ",".join(case.dtypes),
            case.layouts,
            threads=case.threads,
            accumulate=case.accumulate or case.bias,
            b_stride=case.b_stride,
        )
        if case.forced:
            root = canonical(spec)
            action = FORCED[case.forced](root)
            found[case.name] = forced_program(root, action, Search(case.threads, memo))
        elif case.sample is None:
            found[case.name] = synthesize_spec(spec, threads=case.threads, memo=memo).program
        else:
            rng = random.Random(case.name)
            found[case.name] = random_program(canonical(spec), Search(case.threads, memo), rng)
    return found


@pytest.fixture(scope="session")
def compiled(programs: dict[str, Program]):
    """Every case's program rendered and compiled into one extension module."""
    kernels = [
        (
            case.name,
            render_header(
                programs[case.name],
                case.name,
                threads=case.threads,
                bias=case.bias_mode,
                b_stride=case.b_stride,
            ),
            case.dtypes[0],
            case.dtypes[1],
            case.threads,
            case.bias,
        )
        for case in CASES
    ]
    return build(kernels, CACHE)


@pytest.fixture(autouse=True)
def _memo_file_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands write the memo table where $MORELLO_DB says, and read the host profile where
    $MORELLO_HOST says: never in the user's cache, so headers do not depend on this host."""
    monkeypatch.setenv("MORELLO_DB", str(tmp_path / "default-memo.sqlite3"))
    monkeypatch.setenv("MORELLO_HOST", str(tmp_path / "host.json"))
