"""A kernel name is refused when it would break the header, and accepted names compile.

The names tried are every identifier in rendered headers (templates, runtime, kernel
macros and the locals codegen numbers) and every macro the standard headers define here,
as the compiler itself lists them.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from morello.core.spec import matmul_problem
from morello.emit.names import check_name
from morello.errors import SpecError
from morello.front.api import Synthesized, synthesize_spec

CXX = shutil.which("g++")
# What an includer may have included before a morello header.
STANDARD_HEADERS = [
    "cassert",
    "cerrno",
    "cfloat",
    "cinttypes",
    "climits",
    "clocale",
    "cmath",
    "csetjmp",
    "csignal",
    "cstdarg",
    "cstddef",
    "cstdint",
    "cstdio",
    "cstdlib",
    "cstring",
    "ctime",
    "immintrin.h",
    "algorithm",
    "atomic",
    "chrono",
    "condition_variable",
    "iostream",
    "mutex",
    "string",
    "thread",
    "vector",
]
INCLUDES = "".join(f"#include <{h}>\n" for h in STANDARD_HEADERS)
# C++ comments and string literals hold no names.
_NOT_CODE = re.compile(r"//[^\n]*|/\*.*?\*/|\"(\\.|[^\"\\])*\"", re.S)


def _refused(name: str) -> bool:
    try:
        check_name(name)
    except SpecError:
        return True
    return False


@functools.cache
def _programs() -> list[tuple[Synthesized, str | None]]:
    """Programs that use every kind of kernel, copy, loop and bias."""
    cases = [
        ("1x2048x16384", "bf16,bf16,f32", "row,col,row", 2, "add"),
        ("64x64x64", "f32,f32,f32", "row,row,row", 1, "store"),
        ("3x100x37", "bf16,bf16,f32", "row,row,row", 1, None),
        ("1x512x64", "f32,bf16,f32", "row,col,row", 2, None),
    ]
    found = []
    for shape, dtypes, layouts, threads, bias in cases:
        spec = matmul_problem(shape, dtypes, layouts, threads=threads, accumulate=bool(bias))
        found.append((synthesize_spec(spec, threads=threads), bias))
    return found


def _headers(name: str) -> list[str]:
    return [result.to_header(name, bias=bias) for result, bias in _programs()]


@pytest.fixture(scope="module")
def header_identifiers() -> set[str]:
    found: set[str] = set()
    for header in _headers("kernel_under_test"):
        found |= set(re.findall(r"(?<![\w.])[A-Za-z_]\w*", _NOT_CODE.sub(" ", header)))
    found.discard("kernel_under_test")
    found.discard("kernel_under_test_kernel")
    return found


def test_keywords_standard_macros_and_reserved_names_are_refused() -> None:
    for name in ("class", "int", "NULL", "EOF", "errno", "assert", "INT_MAX", "PRId64"):
        assert _refused(name), name
    for name in ("__x", "_Upper", "_lower", "1abc", "a-b", "ünï"):
        assert _refused(name), name
    for name in ("matmul", "gemma_ffw_down", "dot8", "Gemm"):
        assert not _refused(name), name


def test_every_name_the_header_declares_or_uses_is_refused(header_identifiers: set[str]) -> None:
    # Names that reach the kernel's own scopes: its parameters, the descriptor's members,
    # the runtime's and the namespace's names.
    for name in ("ParallelFor", "parallel_for", "m", "k", "n", "name", "threads", "Args", "args"):
        assert name in header_identifiers, name
        assert _refused(name), name
    for name in ("a", "b", "c", "bias", "run", "detail", "DefaultParallelFor", "KernelList"):
        assert _refused(name), name


@pytest.mark.skipif(CXX is None, reason="needs g++")
def test_every_standard_macro_is_refused() -> None:
    listed = subprocess.run(
        [CXX, "-std=c++17", "-mavx2", "-mfma", "-dM", "-E", "-x", "c++", "-"],
        input=INCLUDES,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    macros = {line.split()[1].split("(")[0] for line in listed.splitlines()}
    accepted = sorted(m for m in macros if not _refused(m))
    assert not accepted, f"{len(accepted)} macros accepted as kernel names: {accepted[:20]}"


@pytest.mark.skipif(CXX is None, reason="needs g++")
def test_every_accepted_header_identifier_compiles_as_a_kernel_name(
    header_identifiers: set[str], tmp_path: Path
) -> None:
    # The names check_name lets through (locals of a kernel body, say) must really be safe:
    # one translation unit includes the standard headers, then a header per such name.
    accepted = sorted(n for n in header_identifiers if not _refused(n))
    for i, (result, bias) in enumerate(_programs()):
        lines = [INCLUDES]
        for name in accepted:
            (tmp_path / f"{name}_{i}.hpp").write_text(result.to_header(name, bias=bias))
            lines.append(f'#include "{name}_{i}.hpp"\n')
        tu = tmp_path / f"program_{i}.cpp"
        tu.write_text("".join(lines))
        proc = subprocess.run(
            [CXX, "-std=c++17", "-mavx2", "-mfma", "-fsyntax-only", str(tu)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, f"names {accepted}:\n{proc.stderr[:4000]}"
