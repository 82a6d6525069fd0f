"""The model's version guards users' memo tables: tables are keyed by ``MODEL_VERSION``
(and the rates), not by the sources, so an edit that changes any optimum must bump it.

``golden/optima.json`` records the optimal cost of Specs that exercise every kernel, copy,
parallel split and dtype, at the version that produced them. Costs moved under the same
version fail: bump ``MODEL_VERSION`` in morello/core/cost.py, then record the new optima
with MORELLO_UPDATE_GOLDEN=1 (which refuses to record moved costs without a bump).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from morello.core import cost
from morello.core.spec import matmul_problem
from morello.front.api import synthesize_spec

OPTIMA = Path(__file__).resolve().parent / "golden" / "optima.json"
CASES = {  # name: shape, dtypes, layouts, threads, accumulate
    "4x8x16 f32": ("4x8x16", "f32,f32,f32", "row,row,row", 1, False),
    "1x64x40 bf16 col t2": ("1x64x40", "bf16,bf16,f32", "row,col,row", 2, False),
    "3x100x37 bf16": ("3x100x37", "bf16,bf16,f32", "row,row,row", 1, False),
    "16x48x24 f32 t2": ("16x48x24", "f32,f32,f32", "row,row,row", 2, False),
    "1x512x256 bf16 col": ("1x512x256", "bf16,bf16,f32", "row,col,row", 1, False),
    "1x256x384 f32,bf16 col t2": ("1x256x384", "f32,bf16,f32", "row,col,row", 2, False),
    "8x32x64 bf16,f32": ("8x32x64", "bf16,f32,f32", "row,row,row", 1, False),
    "32x32x32 f32 B col +=": ("32x32x32", "f32,f32,f32", "row,col,row", 1, True),
    # A B row strided in 4-row tiles, copied into L2 (version 2's caps made that reachable).
    "1x4096x4096 f32 B row": ("1x4096x4096", "f32,f32,f32", "row,row,row", 1, False),
}


def _optima() -> dict[str, float]:
    found = {}
    for name, (shape, dtypes, layouts, threads, accumulate) in CASES.items():
        spec = matmul_problem(shape, dtypes, layouts, threads=threads, accumulate=accumulate)
        found[name] = synthesize_spec(spec, threads=threads).program.cost
    return found


def test_optima_move_only_with_a_new_model_version() -> None:
    optima = _optima()
    recorded = json.loads(OPTIMA.read_text()) if OPTIMA.exists() else None
    same_version = recorded is not None and recorded["model_version"] == cost.MODEL_VERSION
    known = recorded["optima"] if recorded is not None else {}
    moved = sorted(n for n in optima if n in known and known[n] != optima[n])
    assert not (same_version and moved), (
        f"optima changed under model version {cost.MODEL_VERSION}: {moved}. Bump MODEL_VERSION "
        "in morello/core/cost.py (users' memo tables hold the old costs), then run with "
        "MORELLO_UPDATE_GOLDEN=1"
    )
    if os.environ.get("MORELLO_UPDATE_GOLDEN") == "1":
        record = {"model_version": cost.MODEL_VERSION, "optima": optima}
        OPTIMA.write_text(json.dumps(record, indent=2) + "\n")
        return
    assert same_version and set(known) == set(optima), (
        f"{OPTIMA} is not of model version {cost.MODEL_VERSION} or lacks a case: run with "
        "MORELLO_UPDATE_GOLDEN=1"
    )
