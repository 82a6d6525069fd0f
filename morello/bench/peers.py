"""The systems a user could pick instead of ours, each timed by a loop in compiled code.

A peer is a function from a benchmark problem to contenders, or a ``Skipped`` reason when
its package is not installed (they are the optional ``bench`` extra). Each contender's
inputs are prepared beforehand in the dtypes it computes in: a peer without a mixed
bf16·f32 product gets its weights widened to f32 (or its f32 vector narrowed to bf16)
once, outside the timed loop, and its name and note say so.
"""

from __future__ import annotations

import ctypes
import functools
import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from morello.core.dtypes import Dtype
from morello.tune.harness import NativeBench, aligned_empty, python_timer
from morello.tune.inputs import Inputs, Problem, error_bound
from morello.tune.machine import ISAS


class Skipped(Exception):
    """A peer that cannot run here; the message says why."""


@dataclass(frozen=True, slots=True)
class Contender:
    system: str  # e.g. "torch bf16"
    note: str  # how its inputs differ from the problem's, if they do
    run: Callable[[int], float]  # reps -> seconds, the loop in compiled code
    output: Callable[[], np.ndarray]  # the last call's result, as f32
    tolerance: float  # its error bound relative to |A|·|B|: see error_bound


def _roundings(problem: Problem, dtype: Dtype, bf16_output: bool = False) -> int:
    narrowed = problem.a_dtype != dtype and dtype == Dtype.BF16
    return int(narrowed) + int(bf16_output)


# --- numpy: its own BLAS (scipy-openblas), called from the compiled loop through a pointer.


def _openblas() -> ctypes.CDLL:
    root = Path(np.__file__).parent
    candidates = sorted(root.parent.glob("numpy.libs/libscipy_openblas64_*.so"))
    candidates += sorted(root.parent.glob("scipy_openblas64/lib/libscipy_openblas64_*.so"))
    for path in candidates:
        lib = ctypes.CDLL(str(path))
        if hasattr(lib, "scipy_cblas_sgemm64_"):
            return lib
    raise Skipped("numpy's BLAS is not the ILP64 scipy-openblas this benchmark can call")


def numpy_peer(
    native: NativeBench, problem: Problem, inputs: Inputs, threads: int
) -> list[Contender]:
    lib = _openblas()
    lib.scipy_openblas_set_num_threads64_(ctypes.c_int(threads))
    a, b = inputs.copies(Dtype.F32, Dtype.F32)
    c = aligned_empty((problem.m, problem.n), np.float32)
    widened = _dtype_note(problem, Dtype.F32)
    if problem.m == 1 and problem.b_col:  # numpy's W @ x is a matrix-vector product
        x = [row.reshape(problem.k) for row in a]
        run = native.sgemv(_address(lib, "scipy_cblas_sgemv64_"), b, x, c.reshape(problem.n))
        widened = ", ".join(filter(None, [widened, "W @ x (sgemv)"]))
    else:
        mkn = (problem.m, problem.k, problem.n)
        run = native.sgemm(_address(lib, "scipy_cblas_sgemm64_"), problem.b_col, mkn, a, b, c)
    return [Contender("numpy f32", widened, run, lambda: c, error_bound(problem.k))]


def _address(lib: ctypes.CDLL, symbol: str) -> int:
    return ctypes.cast(getattr(lib, symbol), ctypes.c_void_p).value or 0


# --- PyTorch: the loop runs in TorchScript's interpreter, which is C++.


def _torch():
    try:
        import torch
    except ImportError as exc:
        raise Skipped("torch is not installed (pip install -e '.[bench]')") from exc
    return torch


def torch_peer(
    native: NativeBench, problem: Problem, inputs: Inputs, threads: int
) -> list[Contender]:
    torch = _torch()
    torch.set_num_threads(threads)
    loop = _torch_loop(torch)
    found = []
    for dtype in _peer_dtypes(problem):
        a, b = inputs.copies(dtype, dtype)
        ta = [_to_torch(torch, x) for x in a]
        tb = [_to_torch(torch, x) for x in b]
        tc = torch.empty((problem.m, problem.n), dtype=ta[0].dtype)

        def run(reps: int, ta=ta, tb=tb, tc=tc) -> None:
            loop(ta, tb, tc, reps, problem.b_col)

        bf16_out = dtype == Dtype.BF16
        tolerance = error_bound(problem.k, _roundings(problem, dtype, bf16_out))
        note = _dtype_note(problem, dtype)
        if dtype == Dtype.BF16:
            note = ", ".join(filter(None, [note, "bf16 output"]))
        found.append(
            Contender(
                f"torch {dtype.value}",
                note,
                python_timer(run),
                lambda tc=tc: tc.float().numpy(),
                tolerance,
            )
        )
    return found


@functools.cache  # scripting takes a while; the loop is the same for every problem
def _torch_loop(torch):
    def loop(a: list[torch.Tensor], b: list[torch.Tensor], c: torch.Tensor, reps: int, b_col: bool):
        for r in range(reps):
            i = r % len(a)
            if b_col:
                torch.mm(a[i], b[i].t(), out=c)  # F.linear would allocate its output
            else:
                torch.mm(a[i], b[i], out=c)

    with warnings.catch_warnings():  # deprecated in favour of torch.compile, which needs a
        warnings.simplefilter("ignore", DeprecationWarning)  # C++ toolchain at run time
        return torch.jit.script(loop)


def _to_torch(torch, x: np.ndarray):
    if x.dtype == np.float32:
        return torch.from_numpy(x)
    return torch.from_numpy(x.view(np.uint16)).view(torch.bfloat16)  # shares the memory


def _peer_dtypes(problem: Problem) -> list[Dtype]:
    """bf16 where the problem's weights are bf16 (so the vector is narrowed when f32), and
    f32 always (so bf16 weights are widened)."""
    return [Dtype.BF16, Dtype.F32] if problem.b_dtype == Dtype.BF16 else [Dtype.F32]


def _dtype_note(problem: Problem, dtype: Dtype) -> str:
    changed = [
        f"{what} {'widened to' if dtype == Dtype.F32 else 'narrowed to'} {dtype.value}"
        for what, own in (("A", problem.a_dtype), ("B", problem.b_dtype))
        if own != dtype
    ]
    return (", ".join(changed) + " beforehand") if changed else ""


# --- JAX: a jitted fori_loop of the dot, so the loop runs inside XLA.


def _jax():
    try:
        import jax
        import jax.numpy as jnp
    except ImportError as exc:
        raise Skipped("jax is not installed (pip install -e '.[bench]')") from exc
    return jax, jnp


def jax_peer(
    native: NativeBench, problem: Problem, inputs: Inputs, threads: int
) -> list[Contender]:
    jax, jnp = _jax()
    found = []
    for dtype in _peer_dtypes(problem):
        a, b = inputs.copies(dtype, dtype)
        ja = tuple(jnp.asarray(x) for x in a)
        jb = tuple(jnp.asarray(x) for x in b)
        loop = _jax_loop(jax, jnp, problem.b_col, (problem.m, problem.n))
        result: list = [None]

        def call(reps: int, ja=ja, jb=jb, loop=loop, result=result) -> None:
            result[0] = loop(ja, jb, _iterations(reps, len(ja))).block_until_ready()

        tolerance = error_bound(problem.k, _roundings(problem, dtype))
        found.append(
            Contender(
                f"jax {dtype.value}",
                _dtype_note(problem, dtype),
                _per_unit(python_timer(call), len(ja)),
                lambda result=result: np.asarray(result[0], dtype=np.float32),
                tolerance,
            )
        )
    return found


def _iterations(reps: int, copies: int) -> int:
    return max(1, math.ceil(reps / copies))


def _per_unit(run: Callable[[int], float], copies: int) -> Callable[[int], float]:
    """An iteration of the XLA loop is one call per copy: scale its time to `reps` calls."""
    return lambda reps: run(reps) * reps / (_iterations(reps, copies) * copies)


def _jax_loop(jax, jnp, b_col: bool, out_shape: tuple[int, int]):
    @jax.jit
    def loop(a, b, iterations):
        def body(_, carry):
            scale, y = carry
            for ai, bi in zip(a, b, strict=True):
                # Scaling A by a value XLA cannot know keeps the dot inside the loop (it
                # would hoist a loop-invariant one); the scale stays exactly 1.
                y = jnp.dot(
                    ai * scale.astype(ai.dtype),
                    bi.T if b_col else bi,
                    preferred_element_type=jnp.float32,
                )
                scale = jnp.where(jnp.isnan(y[0, 0]), 2.0, 1.0).astype(jnp.float32)
            return scale, y

        init = (jnp.float32(1), jnp.zeros(out_shape, jnp.float32))
        return jax.lax.fori_loop(0, iterations, body, init)[1]

    return loop


PEERS: dict[str, Callable[..., Sequence[Contender]]] = {
    "numpy": numpy_peer,
    "torch": torch_peer,
    "jax": jax_peer,
}


# Peers that pick their kernels by CPUID with no switch to keep them to AVX2, and why.
UNCAPPED = {
    "jax": "XLA's dots run in YNNPACK, which picks AVX-512 or AMX kernels by CPUID",
}


def peer_environment(threads: int, isa: str = "native") -> dict[str, str]:
    """What every peer's runtime reads at start-up to use `threads` threads and, with `isa`
    "avx2", no instruction newer than AVX2: on a host with AVX-512 or AMX that emulates the
    machine class our kernels target, where the peers could not use them either."""
    if isa not in ISAS:
        raise ValueError(f"peer ISA {isa!r} is not one of {', '.join(ISAS)}")
    env = {name: str(threads) for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    flags = os.environ.get("XLA_FLAGS", "")
    if threads == 1:
        flags += " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    if isa == "avx2":
        env |= {
            "OPENBLAS_CORETYPE": "Haswell",  # its first AVX2+FMA kernels
            "ONEDNN_MAX_CPU_ISA": "AVX2",  # PyTorch's matmuls
            "ATEN_CPU_CAPABILITY": "avx2",  # PyTorch's own vectorized kernels
            "MKL_ENABLE_INSTRUCTIONS": "AVX2",  # PyTorch's f32 matmuls
        }
    env["XLA_FLAGS"] = flags.strip()
    return env
