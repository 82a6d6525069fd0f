"""The gemma.cpp integration (integrations/gemma_cpp) on stand-ins of gemma's types
(tests/gemma_standin): gemma's call sites, with their template arguments and types,
reach the generated kernels and agree with numpy; other shapes and types fall back to
gemma's own code."""

from __future__ import annotations

from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import morello
from morello.front import kernel_list
from morello.store.db import db_file_name

from .bindings import build_extension

ROOT = Path(__file__).resolve().parent.parent
INTEGRATION = ROOT / "integrations" / "gemma_cpp"
CACHE = ROOT / "tests" / ".cache" / "gemma_standin"
U_F32 = 2.0**-24


@pytest.fixture(scope="module")
def standin():
    # The default rates, whatever this machine's profile says: the memo file below is named
    # for them (a module fixture cannot use the per-test profile of conftest.py), and named
    # by the model, so a build kept from an older model never meets its file.
    return build_extension(
        ROOT / "tests" / "gemma_standin",
        CACHE / "build",
        "gemma_standin",
        {
            "MORELLO_INTEGRATION_DIR": str(INTEGRATION),
            "MORELLO_GEMMA_DB": str(CACHE / db_file_name()),
            "Morello_DIR": str(morello.cmake_dir()),
        },
        {"MORELLO_HOST": str(CACHE / "no-host-profile.json")},
    )


def bf16(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(ml_dtypes.bfloat16)


def check(got: np.ndarray, weights: np.ndarray, vec: np.ndarray) -> None:
    """Rows of ``weights`` times ``vec``, within the derived f32 bound (see
    tests/test_numerics.py)."""
    w64, v64 = weights.astype(np.float64), vec.astype(np.float64)
    ref = w64 @ v64
    bound = (w64.shape[-1] + 2) * U_F32 * (np.abs(w64) @ np.abs(v64))
    assert np.all(np.abs(got - ref) <= bound)


def test_ffw_gating_runs_the_seed_kernel(standin) -> None:
    rng = np.random.default_rng(1)
    w, vec = bf16(rng, 2 * 16384, 2048), bf16(rng, 2048)
    pool, before = standin.ThreadPool(2), standin.gemma_own_calls()
    out = standin.ffw_gating(w.view(np.uint16).ravel(), vec.view(np.uint16), pool)
    assert standin.gemma_own_calls() == before  # both calls took the generated kernel
    assert pool.runs == 2  # each on gemma's pool
    check(out, w, vec)  # the second half of the rows lands in out_mul


def test_attention_output_per_head(standin) -> None:
    rng = np.random.default_rng(2)
    w = bf16(rng, 8, 2048, 256)
    att = rng.standard_normal((8, 256)).astype(np.float32)
    before = standin.gemma_own_calls()
    out = standin.attn_out(w.view(np.uint16).ravel(), att.ravel(), standin.ThreadPool(2))
    assert standin.gemma_own_calls() == before
    for head in range(8):
        check(out[head], w[head], att[head])


def test_kv_rows_at_an_offset(standin) -> None:
    rng = np.random.default_rng(3)
    w = bf16(rng, 10 * 256, 2048)
    x = rng.standard_normal(2048).astype(np.float32)
    before = standin.gemma_own_calls()
    out = standin.kv(w.view(np.uint16).ravel(), x, standin.ThreadPool(2))
    assert standin.gemma_own_calls() == before
    check(out, w[8 * 256 :], x)


def test_anything_else_runs_gemmas_own_code(standin) -> None:
    rng = np.random.default_rng(4)
    w = bf16(rng, 40, 64)
    x = rng.standard_normal(64).astype(np.float32)
    before = standin.gemma_own_calls()
    out = standin.unlisted(w.view(np.uint16).ravel(), x, standin.ThreadPool(2))
    assert standin.gemma_own_calls() == before + 1
    check(out, w, x)
    # A listed shape with a vector type the list does not have (bf16 where it has f32).
    wkv = bf16(rng, 10 * 256, 2048)
    xb = bf16(rng, 2048)
    out = standin.kv_with_bf16_vector(
        wkv.view(np.uint16).ravel(), xb.view(np.uint16), standin.ThreadPool(2)
    )
    assert standin.gemma_own_calls() == before + 2
    check(out, wkv[8 * 256 :], xb)


def test_the_kernel_list_covers_gemmas_decode_calls() -> None:
    """Gemma 2B and 7B: the MatVec shapes of gemma.cc's decode path, bf16 weights as N
    rows of K."""
    requests = kernel_list.load(INTEGRATION / "kernels.toml")
    shapes = {(r.shape, r.dtypes[0]) for r in requests}
    for model, d, ff, heads, kv_heads in (("2b", 2048, 16384, 8, 1), ("7b", 3072, 24576, 16, 16)):
        qkv = [(heads * 256, d), (2 * 256, d)] if kv_heads == 1 else [(3 * heads * 256, d)]
        for outer, inner in [*qkv, (d, 256), (d, ff), (256000, d)]:
            assert ((1, inner, outer), "f32") in shapes, (model, outer, inner)
        assert ((1, d, ff), "bf16") in shapes, model
    for r in requests:
        assert r.dtypes[1:] == ("bf16", "f32") and r.layouts == ("row", "col", "row")
