"""Copies too large for a small thread stack live in heap scratch.

A kernel keeps at most ``STACK_COPY_BYTES`` of copies on the stack; larger ones (an L2
copy of a long vector is 64 KiB here, up to the 512 KiB L2 budget) take per-thread heap
scratch. The driver runs kernels whose tasks hold such copies on threads with 64 KiB
stacks, where stack arrays overflowed, and calls them from several threads at once, on
small integers for which every result is exact: a copy shared by two holders would show.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from morello.core.cost import action_cost
from morello.core.dtypes import Dtype
from morello.core.layout import COL, EVEN_ODD, ROW
from morello.core.program import Program
from morello.core.rewrites import A, Action, Dim, Move, Tile, canonical, expand
from morello.core.search import Search
from morello.core.spec import Op, Spec, matmul_problem
from morello.core.target import Level
from morello.emit.codegen import STACK_COPY_BYTES, render_header

THREADS = 2
SHAPE = (1, 16384, 64)  # f32 A against bf16 B, as a K-long matrix-vector product
TO_L2 = Move(A, Level.L2, ROW, Dtype.F32)  # a plain copy: the space would not make it
TO_L2_COL = Move(A, Level.L2, COL, Dtype.F32)  # another copy of A in the same order
EVEN_ODD_L2 = Move(A, Level.L2, EVEN_ODD, Dtype.F32)
PARALLEL = Tile(Dim.N, 32, parallel=True)
KERNELS = {
    # A 64 KiB copy in each task.
    "task_copy": (PARALLEL, EVEN_ODD_L2),
    # One copy made before the loop and shared by the tasks, and two live at once in each
    # task, the second made from the first: three blocks that must not overlap.
    "nested_copies": (TO_L2, PARALLEL, TO_L2_COL, EVEN_ODD_L2),
}


def _chain(spec: Spec, forced: tuple[Action, ...], search: Search) -> Program:
    """``forced`` down the path of each action's computing child, the optimum elsewhere."""
    if not forced:
        return search.program(spec)
    action, *rest = forced
    children = expand(spec, action)
    assert children is not None, f"{action} does not apply to {spec}"
    body = next(i for i, c in enumerate(children) if c.op != Op.MOVE)
    kids = tuple(
        _chain(c, tuple(rest), search) if i == body else search.program(c)
        for i, c in enumerate(children)
    )
    cost = action_cost(spec, action, children, [k.cost for k in kids], search.threads)
    return Program(spec, action, kids, cost)


@pytest.fixture(scope="module")
def headers() -> dict[str, str]:
    shape = "x".join(map(str, SHAPE))
    spec = canonical(matmul_problem(shape, "f32,bf16,f32", "row,col,row", threads=THREADS))
    search = Search(THREADS)
    return {
        name: render_header(_chain(spec, forced, search), name, threads=THREADS)
        for name, forced in KERNELS.items()
    }


def _stack_bytes(header: str) -> list[int]:
    sizes = {"float": 4, "uint16_t": 2}
    arrays = re.findall(r"alignas\(64\) (float|uint16_t) buf\d+\[(\d+)\];", header)
    return [sizes[t] * int(n) for t, n in arrays]


def test_large_copies_take_scratch_and_small_ones_stay_on_the_stack(headers) -> None:
    assert headers["task_copy"].count("detail::Scratch scratch") == 1  # in the task
    assert headers["nested_copies"].count("detail::Scratch scratch") == 2  # body and task
    for header in headers.values():
        assert not _stack_bytes(header)
    shape = "1x256x64"  # a 1 KiB even/odd copy of A
    spec = canonical(matmul_problem(shape, "f32,bf16,f32", "row,col,row", threads=THREADS))
    small = _chain(spec, (PARALLEL, EVEN_ODD_L2), Search(THREADS))
    header = render_header(small, "small", threads=THREADS)
    assert _stack_bytes(header) == [1024] and "detail::Scratch scratch" not in header
    assert STACK_COPY_BYTES <= 4096


DRIVER = r"""
#include "task_copy.hpp"
#include "nested_copies.hpp"
#include <pthread.h>
#include <cstdio>
#include <cstring>
#include <thread>
#include <type_traits>
#include <vector>

constexpr int64_t M = 1, K = %(k)d, N = %(n)d;

// A host pool whose threads have 64 KiB stacks: every task on a thread of its own.
struct SmallStacks {
  template <class F>
  void operator()(std::size_t tasks, F&& body) const {
    struct Task { std::remove_reference_t<F>* body; std::size_t t; };
    std::vector<Task> args(tasks);
    std::vector<pthread_t> threads(tasks);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    if (pthread_attr_setstacksize(&attr, 64 * 1024) != 0) std::abort();
    for (std::size_t t = 0; t < tasks; ++t) {
      args[t] = {&body, t};
      auto run = [](void* p) -> void* {
        auto* task = static_cast<Task*>(p);
        (*task->body)(task->t);
        return nullptr;
      };
      if (pthread_create(&threads[t], &attr, run, &args[t]) != 0) std::abort();
    }
    for (pthread_t& thread : threads) pthread_join(thread, nullptr);
    pthread_attr_destroy(&attr);
  }
};

// Tasks in turn on the calling thread: its scratch is held while its tasks take theirs.
struct Serial {
  template <class F>
  void operator()(std::size_t tasks, F&& body) const {
    for (std::size_t t = 0; t < tasks; ++t) body(t);
  }
};

struct Problem {
  std::vector<float> a, c, want;
  std::vector<uint16_t> b;  // col: N rows of K

  explicit Problem(unsigned seed) : a(M * K), c(M * N), want(M * N), b(K * N) {
    unsigned x = seed * 2654435761u + 1;
    auto small = [&] { x = x * 1103515245u + 12345u; return static_cast<int>((x >> 16) %% 7) - 3; };
    for (float& v : a) v = static_cast<float>(small());
    for (uint16_t& v : b) {
      const float f = static_cast<float>(small());
      uint32_t bits;
      std::memcpy(&bits, &f, sizeof bits);
      v = static_cast<uint16_t>(bits >> 16);  // exact: a small integer
    }
    for (int64_t j = 0; j < N; ++j) {
      double sum = 0;
      for (int64_t k = 0; k < K; ++k) {
        uint32_t bits = static_cast<uint32_t>(b[j * K + k]) << 16;
        float f;
        std::memcpy(&f, &bits, sizeof f);
        sum += static_cast<double>(a[k]) * f;
      }
      want[j] = static_cast<float>(sum);  // exact: |sum| < 2^24
    }
  }

  template <class Kernel, class Pool>
  bool check(Kernel kernel, Pool pool) {
    std::fill(c.begin(), c.end(), -1.0f);
    kernel(a.data(), b.data(), c.data(), pool);
    return c == want;
  }
};

template <class Pool>
bool both(Problem& p, Pool pool) {
  auto task_copy = [](auto... args) { morello::task_copy(args...); };
  auto nested = [](auto... args) { morello::nested_copies(args...); };
  return p.check(task_copy, pool) && p.check(nested, pool);
}

int main() {
  long failures = 0;
  Problem first(0);
  failures += !both(first, SmallStacks{});
  failures += !both(first, Serial{});
  failures += !both(first, morello::DefaultParallelFor{});
  // Concurrent calls, each on inputs of its own, through every kind of pool.
  std::vector<std::thread> callers;
  std::vector<long> failed(4, 0);
  for (unsigned i = 0; i < failed.size(); ++i) {
    callers.emplace_back([&failed, i] {
      Problem p(i + 1);
      for (int round = 0; round < 10; ++round) {
        failed[i] += !both(p, SmallStacks{});
        failed[i] += !both(p, Serial{});
        failed[i] += !both(p, morello::DefaultParallelFor{});
      }
    });
  }
  for (auto& caller : callers) caller.join();
  for (long f : failed) failures += f;
  std::printf("%%ld\n", failures);
  return failures != 0;
}
"""


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
@pytest.mark.parametrize("build", [["-O2"], ["-O1", "-fsanitize=thread"]], ids=["O2", "tsan"])
def test_large_copies_run_on_small_stacks_and_concurrent_calls(
    headers, build: list[str], tmp_path: Path
) -> None:
    for name, header in headers.items():
        (tmp_path / f"{name}.hpp").write_text(header)
    (tmp_path / "driver.cpp").write_text(DRIVER % {"k": SHAPE[1], "n": SHAPE[2]})
    exe = tmp_path / "driver"
    flags = ["-std=c++17", *build, "-mavx2", "-mfma", "-Wall", "-Wextra", "-Werror", "-pthread"]
    subprocess.run(
        ["g++", *flags, str(tmp_path / "driver.cpp"), "-o", str(exe)],
        check=True,
        capture_output=True,
    )
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"exit {run.returncode}: {run.stdout}{run.stderr}"
    assert run.stdout.strip() == "0"
