"""The CMake package, used the way a user's project uses it: tests/cmake_consumer is
configured in a fresh build directory, built, run (it checks every kernel of its list
against a plain loop), edited and rebuilt."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import morello

CONSUMER = Path(__file__).resolve().parent / "cmake_consumer"
BIN = Path(sys.executable).parent  # the virtual environment's cmake and ninja
PACKAGE_PREFIX = morello.cmake_dir().parent.parent  # holds morello/cmake/MorelloConfig.cmake

KERNELS = """
[[kernel]]
name = "gating"
shape = [1, 256, 48]
dtypes = ["bf16", "bf16", "f32"]
layouts = "row,col,row"
threads = 2
bias = true

[[kernel]]
name = "small"
shape = "5x12x9"
dtypes = "f32,f32,f32"
accumulate = true
layouts = "col,row,col"
"""

NEW_KERNEL = """
[[kernel]]
name = "added"
shape = [3, 70, 33]
dtypes = "f32,bf16,f32"
layouts = "row,col,row"
"""


def project(tmp_path: Path, kernels: str = KERNELS) -> Path:
    src = tmp_path / "src"
    shutil.copytree(CONSUMER, src)
    (src / "kernels.toml").write_text(kernels)
    return src


def activated_env() -> dict[str, str]:
    """As in a shell with the virtual environment activated."""
    return dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")


def cmake(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "cmake"), *args],
        capture_output=True,
        text=True,
        env=env or activated_env(),
        timeout=600,
    )


def configure(src: Path, build: Path, generator: str, *options: str, env=None) -> None:
    extra = [f"-DCMAKE_MAKE_PROGRAM={BIN / 'ninja'}"] if generator == "Ninja" else []
    done = cmake("-S", str(src), "-B", str(build), "-G", generator, *extra, *options, env=env)
    assert done.returncode == 0, done.stdout + done.stderr


def build(build_dir: Path, env=None) -> str:
    done = cmake("--build", str(build_dir), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def run_check(build_dir: Path) -> list[str]:
    done = subprocess.run([str(build_dir / "check")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.splitlines()


def headers(build_dir: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (build_dir / "consumer_kernels").glob("*.hpp")}


def test_ninja_build_regenerates_on_edit_and_only_then(tmp_path: Path) -> None:
    src, out = project(tmp_path), tmp_path / "build"
    cmake_dir = subprocess.run(
        [sys.executable, "-m", "morello", "--cmake-dir"], capture_output=True, text=True
    ).stdout.strip()
    configure(src, out, "Ninja", f"-DMorello_DIR={cmake_dir}")
    first = build(out)
    assert "morello: synthesizing the kernels" in first
    assert run_check(out) == ["gating 1x256x48: ok", "small 5x12x9: ok"]

    before = headers(out)
    again = build(out)
    assert "no work to do" in again
    assert headers(out) == before

    # Edit the list: one kernel changes shape, one is added, one stays as it was.
    (src / "kernels.toml").write_text(KERNELS.replace('"5x12x9"', '"6x16x10"') + NEW_KERNEL)
    rebuilt = build(out)
    assert "synthesizing" in rebuilt
    assert run_check(out) == [
        "gating 1x256x48: ok",
        "small 6x16x10: ok",
        "added 3x70x33: ok",
    ]
    after = headers(out)
    assert after["gating.hpp"] == before["gating.hpp"]  # unchanged text, not rewritten
    assert after["small.hpp"] != before["small.hpp"]
    assert "no work to do" in build(out)
    assert (out / "memo.sqlite3").exists()  # the DB the CMakeLists names


@pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")
def test_makefiles_through_cmake_prefix_path(tmp_path: Path) -> None:
    src, out = project(tmp_path), tmp_path / "build"
    configure(src, out, "Unix Makefiles", f"-DCMAKE_PREFIX_PATH={PACKAGE_PREFIX}")
    assert "synthesizing" in build(out)
    assert run_check(out) == ["gating 1x256x48: ok", "small 5x12x9: ok"]
    assert "synthesizing" not in build(out)


def test_a_plain_install_is_found_through_its_environment_prefix(tmp_path: Path) -> None:
    """pip install (not editable) into a new environment puts a config under
    <env>/share/cmake/Morello: CMAKE_PREFIX_PATH=<env> finds it, and it runs that
    environment's Python, with no Python on the PATH."""
    env_dir = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    site = next((env_dir / "lib").glob("python3*")) / "site-packages"
    # The new environment borrows this one's dependencies instead of downloading them.
    (site / "deps.pth").write_text(
        next(p for p in map(Path, sys.path) if p.name == "site-packages" and p.is_dir()).as_posix()
    )
    repo = CONSUMER.parent.parent
    staged = tmp_path / "morello-src"
    shutil.copytree(repo, staged, ignore=shutil.ignore_patterns(".venv", ".cache", ".git", "build"))
    # --ignore-installed: without it pip would uninstall this environment's morello first.
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed"]
    pip += ["--prefix"]
    installed = subprocess.run([*pip, str(env_dir), str(staged)], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    assert (env_dir / "share" / "cmake" / "Morello" / "MorelloConfig.cmake").exists()

    src, out = project(tmp_path), tmp_path / "build"
    bare = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    bare["PATH"] = "/usr/bin:/bin"
    configure(src, out, "Ninja", f"-DCMAKE_PREFIX_PATH={env_dir}", env=bare)
    cache = (out / "CMakeCache.txt").read_text()
    assert f"MORELLO_PYTHON_EXECUTABLE:FILEPATH={env_dir}/bin/python3" in cache
    build(out, env=bare)
    assert run_check(out) == ["gating 1x256x48: ok", "small 5x12x9: ok"]


@pytest.mark.parametrize(
    ("kernels", "options", "words"),
    [
        (KERNELS.replace('"f32,f32,f32"', '"f32,f16,f32"'), [], ["kernel 'small'", "'dtypes'"]),
        (KERNELS, ["-DMORELLO_PYTHON_EXECUTABLE=/usr/bin/false"], ["does not import morello"]),
    ],
    ids=["bad-dtype", "python-without-morello"],
)
def test_configure_errors_are_named(
    tmp_path: Path, kernels: str, options: list[str], words: list[str]
) -> None:
    src = project(tmp_path, kernels)
    done = cmake(
        "-S",
        str(src),
        "-B",
        str(tmp_path / "build"),
        "-G",
        "Ninja",
        f"-DCMAKE_MAKE_PROGRAM={BIN / 'ninja'}",
        f"-DMorello_DIR={morello.cmake_dir()}",
        *options,
    )
    assert done.returncode != 0
    for word in words:
        assert word in done.stderr, done.stderr


def test_cmake_install_of_the_repository_installs_the_config(tmp_path: Path) -> None:
    """The top-level CMakeLists installs the config: a prefix holding only it, plus a
    Python with morello on the PATH, is enough for find_package."""
    repo, prefix = CONSUMER.parent.parent, tmp_path / "prefix"
    configure(repo, tmp_path / "repo-build", "Ninja", f"-DCMAKE_INSTALL_PREFIX={prefix}")
    installed = cmake("--install", str(tmp_path / "repo-build"))
    assert installed.returncode == 0, installed.stderr
    assert (prefix / "share" / "cmake" / "Morello" / "MorelloConfig.cmake").exists()
    src, out = project(tmp_path), tmp_path / "build"
    configure(src, out, "Ninja", f"-DCMAKE_PREFIX_PATH={prefix}")
    build(out)
    assert run_check(out) == ["gating 1x256x48: ok", "small 5x12x9: ok"]
