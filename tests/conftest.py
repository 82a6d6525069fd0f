from __future__ import annotations

from pathlib import Path

import pytest

from morello.api import matmul_problem, synthesize_spec
from morello.memo import InMemoryMemo

from .bindings import build
from .kernel_cases import CASES

CACHE = Path(__file__).resolve().parent / ".cache" / "bindings"


@pytest.fixture(scope="session")
def compiled():
    """Every case synthesized (one memo shared by all), compiled into one module."""
    memo = InMemoryMemo()
    kernels = []
    for case in CASES:
        spec = matmul_problem(
            "x".join(map(str, case.shape)),
            ",".join(case.dtypes),
            case.layouts,
            threads=case.threads,
            accumulate=case.accumulate,
        )
        result = synthesize_spec(spec, threads=case.threads, memo=memo)
        kernels.append(
            (case.name, result.to_header(case.name), case.dtypes[0], case.dtypes[1], case.threads)
        )
    return build(kernels, CACHE)
