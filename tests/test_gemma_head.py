"""The integration with today's gemma.cpp (3ed403e) on stand-ins of its types
(tests/gemma_standin_head): the integration's CMake patches ops/ops-inl.h; one-row
CallMatMul calls with bf16 weights reach the listed kernels with everything gemma passes
(row stride, scales, bias, A and C in f32 or BF16, C through row pointers, gemma's pools);
anything else runs gemma's own template. Results agree with numpy within derived bounds."""

from __future__ import annotations

import shutil
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
import tomllib

import morello
from morello.front import kernel_list
from morello.store.db import db_file_name

from .bindings import build_extension

ROOT = Path(__file__).resolve().parent.parent
STANDIN = ROOT / "tests" / "gemma_standin_head"
INTEGRATION = ROOT / "integrations" / "gemma_cpp"
CACHE = ROOT / "tests" / ".cache" / "gemma_standin_head"
U_F32, U_BF16 = 2.0**-24, 2.0**-8
HIERARCHICAL, NONE = 4, 0  # gemma's ParallelismStrategy values in the stand-in


@pytest.fixture(scope="module")
def standin():
    # A fresh copy of the stand-in sources every time: the configure step must patch it.
    # Without git it cannot, and says so; the line is then added as by hand.
    src = CACHE / "src"
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(STANDIN / "src", src)
    if shutil.which("git") is None:
        ops_inl = src / "ops" / "ops-inl.h"
        text = ops_inl.read_text()
        last = text.rindex("#endif")
        ops_inl.write_text(text[:last] + '#include "morello_gemma_matmul.h"\n\n' + text[last:])
    # The default rates, whatever this machine's profile says: the memo file is named for them.
    return build_extension(
        STANDIN,
        CACHE / "build",
        "gemma_standin_head",
        {
            "MORELLO_INTEGRATION_DIR": str(INTEGRATION),
            "MORELLO_STANDIN_SRC": str(src),
            "MORELLO_GEMMA_DB": str(CACHE / db_file_name()),
            "Morello_DIR": str(morello.cmake_dir()),
        },
        {"MORELLO_HOST": str(CACHE / "no-host-profile.json")},
    )


def test_the_patch_is_one_include_at_the_end_of_ops_inl(standin) -> None:
    if shutil.which("git") is None:
        pytest.skip("the integration applies its gemma.cpp patch with git")
    patched = (CACHE / "src" / "ops" / "ops-inl.h").read_text().splitlines()
    original = (STANDIN / "src" / "ops" / "ops-inl.h").read_text().splitlines()
    added = [line for line in patched if line not in original]
    assert added == [
        "// morello: one-row MatMul through synthesized kernels (integrations/gemma_cpp).",
        '#include "morello_gemma_matmul.h"',
    ]
    assert patched[-1] == original[-1] == "#endif  // NOLINT"
    assert len(patched) - len(original) == 3  # and a blank line


def _weights(rng, n: int, k: int, stride: int, dtype=ml_dtypes.bfloat16):
    """n rows of k values, each row padded to ``stride`` with NaN (never to be read)."""
    w = rng.standard_normal((n, k)).astype(dtype)
    storage = np.full((n, stride), np.nan, dtype=dtype)
    storage[:, :k] = w
    return w, storage


def _bits(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.view(np.uint16) if x.dtype == ml_dtypes.bfloat16 else x)


def _call(
    standin,
    a,
    w_storage,
    k,
    n,
    *,
    add=None,
    c_bf16=False,
    scales=(1.0, 1.0),
    row_ptrs=False,
    workers=(1, 2),
    parallelism=HIERARCHICAL,
    fused=False,
    weights_f32=False,
):
    return standin.call_matmul(
        _bits(a),
        a.dtype == ml_dtypes.bfloat16,
        _bits(w_storage),
        k,
        n,
        w_storage.shape[1],
        weights_f32,
        add,
        c_bf16,
        scales[0],
        scales[1],
        row_ptrs,
        workers[0],
        workers[1],
        parallelism,
        fused,
    )


def _check(got, a, w, *, add=None, c_bf16=False, scale=1.0) -> None:
    """Within the f32 dot-product bound of tests/test_numerics.py, the scale and the bias
    two more roundings, and a bf16 C one bf16 rounding of the result."""
    a64, w64 = a.astype(np.float64), w.astype(np.float64)
    ref = scale * (a64 @ w64.T)
    magnitude = abs(scale) * (np.abs(a64) @ np.abs(w64.T))
    if add is not None:
        ref, magnitude = ref + add, magnitude + np.abs(add)
    bound = (w.shape[1] + 3) * U_F32 * magnitude
    if c_bf16:
        bound = bound + U_BF16 * (np.abs(ref) + bound)
    assert np.all(np.abs(got - ref) <= bound), np.max(np.abs(got - ref) - bound)


def test_one_row_f32_activation_runs_the_kernel_with_the_pools_threads(standin) -> None:
    rng = np.random.default_rng(1)
    w, storage = _weights(rng, 384, 256, 256)
    a = rng.standard_normal((1, 256)).astype(np.float32)
    for workers, parallel_fors in (((1, 2), 1), ((1, 1), 0)):
        own, fors = standin.gemma_own_calls(), standin.parallel_fors()
        got = _call(standin, a, storage, 256, 384, workers=workers)
        assert standin.gemma_own_calls() == own  # ours ran
        # Two workers: the 2-thread kernel, its tasks on gemma's pool; one: the serial one.
        assert standin.parallel_fors() - fors == parallel_fors
        _check(got, a, w)


def test_the_first_calls_time_each_kernel_then_the_fastest_runs(standin) -> None:
    rng = np.random.default_rng(5)
    w, storage = _weights(rng, 384, 256, 256)
    a = rng.standard_normal((1, 256)).astype(np.float32)
    workers = (1, 3)  # a pool no other test uses: its shape is tuned afresh
    fors = standin.parallel_fors()
    for _ in range(6):  # 3 trials each of the 2-thread and the 1-thread kernel
        _check(_call(standin, a, storage, 256, 384, workers=workers), a, w)
    assert standin.parallel_fors() - fors == 3
    fors = standin.parallel_fors()
    for _ in range(4):  # then one of them, every time
        _check(_call(standin, a, storage, 256, 384, workers=workers), a, w)
    assert standin.parallel_fors() - fors in (0, 4)


def test_padded_weights_scale_bias_and_bf16_output(standin) -> None:
    rng = np.random.default_rng(2)
    w, storage = _weights(rng, 256, 320, 352)
    a = rng.standard_normal((1, 320)).astype(ml_dtypes.bfloat16)
    add = rng.standard_normal(256).astype(np.float32)
    for c_bf16 in (False, True):
        own = standin.gemma_own_calls()
        got = _call(standin, a, storage, 320, 256, add=add, c_bf16=c_bf16, scales=(0.5, 3.0))
        assert standin.gemma_own_calls() == own
        _check(got, a, w, add=add, c_bf16=c_bf16, scale=1.5)


def test_c_through_row_pointers_as_the_kv_cache(standin) -> None:
    rng = np.random.default_rng(3)
    w, storage = _weights(rng, 384, 256, 256)
    a = rng.standard_normal((1, 256)).astype(np.float32)
    own = standin.gemma_own_calls()
    got = _call(standin, a, storage, 256, 384, row_ptrs=True, parallelism=NONE)
    assert standin.gemma_own_calls() == own
    _check(got, a, w)


@pytest.mark.parametrize(
    "case",
    ["prefill", "unlisted shape", "unlisted stride", "f32 weights", "fused callback", "bf16 A"],
)
def test_anything_else_runs_gemmas_own_template(standin, case: str) -> None:
    rng = np.random.default_rng(4)
    k, n, stride, rows = 256, 384, 256, 1
    if case == "unlisted shape":
        n = 128
    if case == "unlisted stride":
        stride = 288
    if case == "prefill":
        rows = 2
    weight_dtype = np.float32 if case == "f32 weights" else ml_dtypes.bfloat16
    w, storage = _weights(rng, n, k, stride, weight_dtype)
    dtype = ml_dtypes.bfloat16 if case == "bf16 A" else np.float32  # the list: f32 A here
    a = rng.standard_normal((rows, k)).astype(dtype)
    own = standin.gemma_own_calls()
    got = _call(
        standin,
        a,
        storage,
        k,
        n,
        fused=case == "fused callback",
        weights_f32=case == "f32 weights",
    )
    assert standin.gemma_own_calls() == own + 1
    _check(got, a, w)


# A configs.cc in the shape gemma.cpp's has (written for this test): a base config, layer
# configs with arithmetic and comments, a helper that changes the vocabulary, and the
# function that lists what ships.
CONFIGS = """
static constexpr size_t kVocab = 1000;
static ModelConfig ConfigBase() {
  ModelConfig config;
  config.eos_id = 1;
  return config;
}
static LayerConfig LayerConfigSmall(size_t model_dim) {
  LayerConfig config;
  config.model_dim = model_dim;
  config.ff_hidden_dim = 8 * 96 / 2;  // = 384
  config.heads = 4;
  config.kv_heads = 1;
  config.qkv_dim = 32;
  config.post_norm = PostNormType::Scale;
  return config;
}
static ModelConfig ConfigSmall() {
  ModelConfig config = ConfigBase();
  config.display_name = "Small";
  config.model_dim = 96;
  config.vocab_size = kVocab;
  LayerConfig layer_config = LayerConfigSmall(config.model_dim);
  config.layer_configs = {config.num_layers, layer_config};
  return config;
}
static void AddVision(ModelConfig& config, size_t image_size = 224) {
  config.vocab_size = kVocab + 24;
}
static ModelConfig ConfigSmallVision() {
  ModelConfig config = ConfigSmall();
  config.display_name = "SmallVision";
  AddVision(config);
  return config;
}
static ModelConfig ConfigUnshipped() {
  ModelConfig config = ConfigSmall();
  config.display_name = "Unshipped";
  return config;
}
static ModelConfig ConfigFromModel(Model model) {
  switch (model) {
    case Model::SMALL:
      return ConfigSmall();
    case Model::SMALL_VISION:
      return ConfigSmallVision();
    default:
      HWY_ABORT("unknown");
  }
}
"""


def _configs_module():
    from morello.bench import gemma_head

    return gemma_head._configs_module()


def test_the_kernel_list_is_read_from_the_model_configs() -> None:
    configs = _configs_module()
    models = configs.models_in(CONFIGS)
    assert [(m.name, m.model_dim, m.vocab_size, m.ff_hidden_dim) for m in models] == [
        ("Small", 96, 1000, 384),
        ("SmallVision", 96, 1024, 384),
    ]
    assert configs.projections(models[0]) == [
        ("q", 96, 128, "f32"),
        ("kv", 96, 64, "f32"),
        ("attn_out", 128, 96, "f32"),
        ("gating", 96, 384, "bf16"),
        ("down", 384, 96, "bf16"),
        ("vocab", 96, 1000, "bf16"),
    ]
    # Rows of K bf16 padded to an odd number of 64-byte lines: 96 -> 3 lines, 128 -> 5.
    assert configs.padded_stride(96) == 96 and configs.padded_stride(128) == 160
    text = configs.kernel_list(models, [1, 2])
    requests = kernel_list.parse(tomllib.loads(text), "generated")
    shapes = {(r.shape, r.dtypes[0], r.b_stride, r.threads) for r in requests}
    assert ((1, 128, 96), "f32", 160, 2) in shapes  # attention output, padded
    assert ((1, 128, 96), "f32", None, 1) in shapes  # and dense
    assert ((1, 96, 1024), "bf16", None, 1) in shapes  # the helper's vocabulary
    assert len(requests) == len({r.name for r in requests})


def test_the_shipped_list_covers_every_decode_projection() -> None:
    """kernels_3ed403e.toml: Gemma 2 2B's projections, dense and padded, at 1 and 2 threads."""
    requests = kernel_list.load(INTEGRATION / "kernels_3ed403e.toml")
    got = {(r.shape, r.dtypes[0], r.b_stride, r.threads) for r in requests}
    for k, n, a in (
        (2304, 2048, "f32"),
        (2048, 2304, "f32"),
        (2304, 9216, "bf16"),
        (9216, 2304, "bf16"),
        (2304, 256000, "bf16"),
    ):
        for stride in (None, _configs_module().padded_stride(k)):
            for t in (1, 2):
                assert ((1, k, n), a, stride if stride != k else None, t) in got, (k, n, stride)
    for r in requests:
        assert r.dtypes[1:] == ("bf16", "f32") and r.layouts == ("row", "col", "row")
        assert r.weights_from_dram


def test_the_head_driver_output_is_read_and_reported() -> None:
    from morello.bench import gemma_head

    line = (
        "RESULT name=Gemma2_2B_{site} k={k} n={n} a={a} c={c} stride={s} target=best "
        "threads=2 isa=AVX3_ZEN4 routed=1 kernel_threads=2 gemma_ms={g} ours_ms=1.0 "
        "ratio={g} ours_gbps=20 gemma_gbps=15 ours_within=1 gemma_within=1 "
        "autotune_calls=40 copies=8"
    )
    projections = [
        ("Gemma2_2B", "q", 2304, 2048, "f32", "f32"),
        ("Gemma2_2B", "kv", 2304, 2048, "f32", "f32"),
        ("Gemma2_2B", "attn_out", 2048, 2304, "f32", "bf16"),
        ("Gemma2_2B", "gating", 2304, 9216, "bf16", "bf16"),
        ("Gemma2_2B", "down", 9216, 2304, "bf16", "f32"),
    ]
    sites = {(k, n, a, c): (m, s) for m, s, k, n, a, c in projections[::-1]}
    output = "\n".join(
        line.format(site=s, k=k, n=n, a=a, c=c, s=k + 32, g=g)
        for (_, s, k, n, a, c), g in zip(projections[2:], (1.5, 2.0, 0.9), strict=True)
    )
    output += "\n" + line.format(site="q", k=2304, n=2048, a="f32", c="f32", s=2336, g=1.2)
    rows = gemma_head.parse(output, sites)
    assert [r.site for r in rows] == ["attn_out", "gating", "down", "q"]
    table = "\n".join(gemma_head.format_rows(rows))
    assert "2304→9216" in table and "best AVX3_ZEN4" in table and "0.90x" in table
    # q and kv share a shape; the gating stays gemma's on both sides.
    (total,) = gemma_head.layer_totals(rows, projections)
    gemma = 1.2 + 1.2 + 1.5 + 2 * 2.0 + 0.9
    assert f"gemma {gemma:.3f} ms, with the adapter {4 * 1.0 + 2 * 2.0:.3f} ms" in total
