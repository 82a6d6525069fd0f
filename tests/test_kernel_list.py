"""Kernel lists (``morello/kernel_list.py``) and ``morello generate``: every error names
the kernel and the field; output is deterministic and unchanged headers are not
rewritten."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from morello.core.memo import InMemoryMemo
from morello.errors import FileAccessError, SpecError
from morello.front.generate import generate
from morello.front.kernel_list import load, parse

GOOD = """
[[kernel]]
name = "ffw"
shape = [1, 64, 40]
dtypes = ["bf16", "bf16", "f32"]
layouts = "row,col,row"
threads = 2
bias = true

[[kernel]]
name = "square"
shape = "8x8x8"
dtypes = "f32,f32,f32"
accumulate = true
"""


def kernel(**fields: object) -> dict:
    base: dict = {"name": "gemm", "shape": [2, 3, 4], "dtypes": "f32,f32,f32"}
    base.update(fields)
    return {"kernel": [{k: v for k, v in base.items() if v is not None}]}


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({}, ["no kernels"]),
        ({"kernels": []}, ["unknown top-level key 'kernels'"]),
        (kernel(name=None), ["kernel #1", "'name'", "missing"]),
        (kernel(name="2fast"), ["kernel '2fast'", "'name'", "identifier"]),
        (kernel(name="class"), ["'name'", "keyword"]),
        (kernel(shape=None), ["kernel 'gemm'", "'shape'", "missing"]),
        (kernel(shape=[1, 2]), ["kernel 'gemm'", "'shape'"]),
        (kernel(shape="1x0x3"), ["kernel 'gemm'", "'shape'", "dimension K"]),
        (kernel(shape=[1.5, 2, 3]), ["'shape'"]),
        (kernel(shape=[1, [2], 3]), ["kernel 'gemm'", "'shape'", "[1, [2], 3]"]),
        (kernel(shape=[1, "2", 3]), ["'shape'"]),
        (kernel(shape=[1, True, 3]), ["'shape'"]),
        (kernel(shape="1xtwox3"), ["'shape'"]),
        (kernel(shape={"m": 1}), ["'shape'"]),
        (kernel(name="m"), ["kernel 'm'", "'name'", "uses itself"]),
        (kernel(name="NULL"), ["'name'", "macro"]),
        (kernel(threads=4096), ["'threads'"]),
        (kernel(dtypes="f16,f32,f32"), ["kernel 'gemm'", "'dtypes'", "'f16'"]),
        (kernel(dtypes="bf16,bf16,bf16"), ["'dtypes'", "no kernel path"]),
        (kernel(layouts="row,diag,row"), ["'layouts'", "'diag'"]),
        (kernel(layouts=["row", "col"]), ["'layouts'", "A, B and C"]),
        (kernel(threads=0), ["'threads'", "from 1 to 1024"]),
        (kernel(threads="2"), ["'threads'", "not a int"]),
        (kernel(bias="yes"), ["'bias'", "not a bool"]),
        (kernel(op="conv"), ["'op'", "'conv'"]),
        (kernel(tile=4), ["unknown field 'tile'"]),
        (kernel(b_stride=2), ["kernel 'gemm'", "'b_stride'", "shorter"]),
        (kernel(b_stride="wide"), ["'b_stride'", "not a int"]),
    ],
)
def test_errors_name_the_kernel_and_the_field(data: dict, words: list[str]) -> None:
    with pytest.raises(SpecError) as error:
        parse(data, "kernels.toml")
    assert str(error.value).startswith("kernels.toml: ")
    for word in words:
        assert word in str(error.value), (word, str(error.value))


def test_names_may_not_clash_with_each_other_or_the_descriptors() -> None:
    for second in ("gemm", "gemm_kernel"):
        data = {"kernel": [kernel()["kernel"][0], kernel(name=second)["kernel"][0]]}
        with pytest.raises(SpecError, match=f"kernel '{second}': field 'name': clashes"):
            parse(data, "kernels.toml")


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[kernel]\nname = ")
    with pytest.raises(SpecError, match="not valid TOML"):
        load(bad)
    with pytest.raises(FileAccessError, match="cannot read kernel list"):
        load(tmp_path / "missing.toml")


def test_generate_is_deterministic_and_rewrites_only_what_changed(tmp_path: Path) -> None:
    lst = tmp_path / "kernels.toml"
    lst.write_text(GOOD)
    requests = load(lst)
    first = generate(requests, tmp_path / "one", InMemoryMemo())
    generate(requests, tmp_path / "two", InMemoryMemo())
    names = sorted(p.name for p in first.written)
    assert names == ["ffw.hpp", "morello_kernels.hpp", "square.hpp"]
    for name in names:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    again = generate(requests, tmp_path / "one", InMemoryMemo())
    assert again.written == ()
    lst.write_text(GOOD.replace('"8x8x8"', '"8x16x8"'))
    changed = generate(load(lst), tmp_path / "one", InMemoryMemo())
    assert [p.name for p in changed.written] == ["square.hpp"]
    umbrella = (tmp_path / "one" / "morello_kernels.hpp").read_text()
    assert "using morello_kernels = KernelList<ffw_kernel, square_kernel>;" in umbrella
    header = (tmp_path / "one" / "ffw.hpp").read_text()
    assert "const float* __restrict bias, float* __restrict c" in header
    assert "static constexpr bool bias = true;" in header


def test_the_headers_depend_on_the_host_profile_once_there_is_one(tmp_path: Path) -> None:
    from morello.front.generate import generator_inputs
    from morello.tune import host

    lst = tmp_path / "kernels.toml"
    assert host.profile_path().resolve() not in generator_inputs(lst)  # never calibrated
    host.save(host.HostProfile(2048, "a test"))
    assert host.profile_path().resolve() in generator_inputs(lst)


def test_generate_command(tmp_path: Path) -> None:
    lst = tmp_path / "kernels.toml"
    lst.write_text(GOOD)
    out = tmp_path / "out"
    base = [sys.executable, "-m", "morello", "generate", str(lst), "-o", str(out)]
    listing = subprocess.run([*base, "--list"], capture_output=True, text=True, check=True)
    assert f"output {out / 'ffw.hpp'}" in listing.stdout
    assert f"depends {lst.resolve()}" in listing.stdout
    assert "header.hpp.j2" in listing.stdout  # the templates, so a new morello regenerates
    made = subprocess.run([*base, "--umbrella", "all.hpp"], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    assert "morello: synthesizing ffw" in made.stderr
    quiet = subprocess.run([*base, "--quiet"], capture_output=True, text=True)
    assert quiet.returncode == 0, quiet.stderr
    assert "synthesizing" not in quiet.stderr
    assert "using all = KernelList" in (out / "all.hpp").read_text()
    for umbrella, words in (("square.hpp", "a kernel"), ("../x.hpp", "file name")):
        bad = subprocess.run([*base, "--umbrella", umbrella], capture_output=True, text=True)
        assert bad.returncode == 2 and words in bad.stderr, bad.stderr
