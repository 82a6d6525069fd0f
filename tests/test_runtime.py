"""The default thread pool of the emitted runtime, under stress: every task runs exactly
once, for any task count, from several host threads at once."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import morello

DRIVER = r"""
#include "kernel.hpp"
#include <atomic>
#include <cstdio>
#include <thread>
#include <vector>

int main() {
  std::atomic<long> failures{0};
  auto hammer = [&](int seed) {
    for (int round = 0; round < 2000; ++round) {
      const std::size_t tasks = static_cast<std::size_t>((round * 7 + seed) % 9);
      std::vector<std::atomic<int>> hits(tasks);
      morello::DefaultParallelFor{}(tasks, [&](std::size_t t) { hits[t].fetch_add(1); });
      for (auto& h : hits) failures += h.load() != 1;
    }
  };
  std::thread other(hammer, 3);
  hammer(0);
  other.join();
  // A parallel_for inside a task runs serially instead of waiting on its own pool.
  std::atomic<int> nested{0};
  morello::DefaultParallelFor{}(4, [&](std::size_t) {
    morello::DefaultParallelFor{}(3, [&](std::size_t) { nested.fetch_add(1); });
  });
  failures += nested.load() != 12;
  // A const body works too.
  std::atomic<int> hits{0};
  const auto body = [&](std::size_t) { hits.fetch_add(1); };
  morello::DefaultParallelFor{}(5, body);
  failures += hits.load() != 5;
  std::printf("%ld\n", failures.load());
  return failures.load() != 0;
}
"""


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
def test_default_pool_runs_every_task_once(tmp_path: Path) -> None:
    spec = morello.matmul_problem("1x64x64", "bf16,bf16,f32", "row,col,row", threads=2)
    (tmp_path / "kernel.hpp").write_text(morello.synthesize(spec, threads=2).to_header("gemm"))
    (tmp_path / "driver.cpp").write_text(DRIVER)
    exe = tmp_path / "driver"
    subprocess.run(
        [
            "g++",
            "-std=c++17",
            "-O2",
            "-mavx2",
            "-mfma",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-fsanitize=thread",
            str(tmp_path / "driver.cpp"),
            "-o",
            str(exe),
        ],
        check=True,
        capture_output=True,
    )
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip() == "0"
