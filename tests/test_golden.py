"""Golden headers: the emitted C++ of a few small kernels, kept for review.

A change to the search, the cost model or the templates that changes what we emit shows
up here as a diff to read. Regenerate deliberately with MORELLO_UPDATE_GOLDEN=1.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import morello

GOLDEN = Path(__file__).resolve().parent / "golden"
CASES = {
    "mm_4x8x16_f32": ("4x8x16", "f32,f32,f32", "row,row,row", 1),
    "mv_1x64x40_bf16_col_t2": ("1x64x40", "bf16,bf16,f32", "row,col,row", 2),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_header_matches_golden(name: str) -> None:
    shape, dtypes, layouts, threads = CASES[name]
    spec = morello.matmul_problem(shape, dtypes, layouts, threads=threads)
    header = morello.synthesize(spec, threads=threads).to_header(name)
    path = GOLDEN / f"{name}.hpp"
    if os.environ.get("MORELLO_UPDATE_GOLDEN") == "1":
        path.write_text(header)
    assert path.exists(), f"no golden file {path}; run with MORELLO_UPDATE_GOLDEN=1"
    assert header == path.read_text(), f"{name} changed; review, then MORELLO_UPDATE_GOLDEN=1"


def test_output_is_deterministic() -> None:
    spec = morello.matmul_problem("3x20x24", "bf16,f32,f32", "row,row,row")
    first = morello.synthesize(spec).to_header("gemm")
    assert first == morello.synthesize(spec).to_header("gemm")
