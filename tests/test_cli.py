"""The ``morello`` command: in-process through ``main``, and as a real process for exit
codes; generated headers against g++ with and without AVX2."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from morello.front.cli import main

F32 = "f32,f32,f32"
BF16 = "bf16,bf16,f32"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``main(argv)`` in-process: (exit code, stdout, stderr). argparse exits by raising."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def run_process(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "morello", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def synth(shape: str, dtypes: str = F32, *extra: str) -> list[str]:
    return ["synth", "matmul", shape, "--dtypes", dtypes, *extra]


def assert_header(text: str, name: str) -> None:
    assert text.startswith("//")
    assert "#pragma once" in text
    assert "namespace morello" in text
    assert f" {name}(" in text


def test_synth_to_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "sub" / "kernel.hpp"
    code, out, err = run(synth("4x8x16", F32, "--name", "mm_small", "-o", str(out_file)), capsys)
    assert code == 0, err
    assert_header(out_file.read_text(), "mm_small")
    assert "predicted cost" in out
    assert "Specs solved" in out
    assert "resident" in out or "tile" in out  # the program tree, one action a line
    assert "#pragma once" not in out
    assert "Traceback" not in err


def test_synth_header_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(synth("3x5x7", BF16, "--layouts", "row,col,row"), capsys)
    assert code == 0, err
    assert_header(out, "matmul")
    assert "predicted cost" in err  # the report goes to stderr when stdout is the header
    assert "Specs solved" in err


ERRORS = [
    pytest.param(synth("0x8x16"), ["dimension M", "positive", "0"], id="zero-M"),
    pytest.param(synth("4x-1x16"), ["dimension K", "positive", "-1"], id="negative-K"),
    pytest.param(synth("4x8x-16"), ["dimension N", "-16"], id="negative-N"),
    pytest.param(synth("12x3"), ["'12x3'", "MxKxN"], id="two-dims"),
    pytest.param(synth("4x8x16", "f16,f32,f32"), ["'f16'", "f32", "bf16"], id="dtype-f16"),
    pytest.param(synth("4x8x16", "f32,f32"), ["--dtypes", "three"], id="two-dtypes"),
    pytest.param(
        synth("4x8x16", F32, "--layouts", "row,diag,row"), ["'diag'", "row", "col"], id="diag"
    ),
    pytest.param(synth("4x8x16", "bf16,bf16,bf16"), ["no kernel path", "bf16"], id="bf16-C"),
    pytest.param(synth("4x8x16", F32, "--threads", "0"), ["threads", "0"], id="threads-0"),
    pytest.param(synth("4x8x16", F32, "--threads", "x"), ["--threads", "'x'"], id="threads-x"),
    pytest.param(synth("4x8x16", F32, "--name", "1bad"), ["--name", "'1bad'"], id="name-1bad"),
    pytest.param(["synth", "matmul", "4x8x16"], ["--dtypes"], id="no-dtypes"),
    pytest.param(
        synth("1x64x16", BF16, "--layouts", "row,col,row", "--b-stride", "60"),
        ["stride 60", "shorter", "64"],
        id="b-stride-short",
    ),
]


@pytest.mark.parametrize(("argv", "words"), ERRORS)
def test_errors(argv: list[str], words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(argv, capsys)
    assert code == 2
    assert err.startswith("morello: error:"), err
    assert "Traceback" not in err
    assert out == ""
    if "known" in err:  # an unknown name lists the known ones
        assert all(word in err.split("known", 1)[1] for word in words[1:])
    for word in words:
        assert word in err, (word, err)


def test_process_exit_codes(tmp_path: Path) -> None:
    ok = run_process(*synth("2x3x4", F32, "-o", "k.hpp"), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert_header((tmp_path / "k.hpp").read_text(), "matmul")
    assert "predicted cost" in ok.stdout
    for argv in (synth("2x0x4"), synth("12x3"), synth("2x3x4", F32, "--threads", "x")):
        bad = run_process(*argv)
        assert bad.returncode == 2, (argv, bad.stderr)
        assert bad.stderr.startswith("morello: error:"), bad.stderr
        assert "Traceback" not in bad.stderr


# Regressions: each of these once escaped as a traceback or a header that did not compile.


def test_unwritable_output_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    bad = run_process(*synth("2x3x4", F32, "-o", str(tmp_path / "file" / "k.hpp")))
    assert bad.returncode == 2, bad.stderr
    assert bad.stderr.startswith("morello: error:")
    assert "Traceback" not in bad.stderr


def test_keyword_name_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(synth("2x3x4", F32, "--name", "class"), capsys)
    assert code == 2
    assert err.startswith("morello: error:")


@pytest.mark.parametrize("threads", ["1025", "100000"])
def test_a_thread_count_no_machine_has_is_refused_at_once(
    threads: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(synth("2x3x4", F32, "--threads", threads), capsys)
    assert code == 2
    assert f"threads must be from 1 to 1024, got {threads}" in err, err


def test_far_more_threads_than_cpus_is_warned_about(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    code, _, err = run(synth("2x3x4", F32, "--threads", "16", "--no-db"), capsys)
    assert code == 0, err
    assert "--threads 16 is far above this machine's 2 CPUs" in err, err


def test_negative_leading_dimension_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(synth("-4x8x16"), capsys)
    assert code == 2
    assert "dimension M" in err, err


# The headers against a real compiler.

GXX = shutil.which("g++")
needs_gxx = pytest.mark.skipif(GXX is None, reason="g++ not found")
C_TYPES = {"f32": "float", "bf16": "uint16_t"}


def compile_header(
    header: Path, name: str, dtypes: str, flags: list[str]
) -> subprocess.CompletedProcess[str]:
    """Compile a translation unit that calls the kernel, so the template is instantiated."""
    assert GXX is not None
    a, b, _ = (C_TYPES[d] for d in dtypes.split(","))
    source = header.with_suffix(".cpp")
    source.write_text(
        f'#include <cstdint>\n#include "{header.name}"\n'
        f"void call(const {a}* a, const {b}* b, float* c) {{ morello::{name}(a, b, c); }}\n"
    )
    cmd = [GXX, "-std=c++17", *flags, "-c", str(source), "-o", str(source.with_suffix(".o"))]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@needs_gxx
@pytest.mark.parametrize(
    ("shape", "dtypes", "extra"),
    [
        pytest.param("4x8x16", F32, [], id="4x8x16-f32"),
        pytest.param(
            "1x64x32", BF16, ["--layouts", "row,col,row", "--threads", "2"], id="1x64x32-bf16"
        ),
    ],
)
def test_header_compiles_only_with_avx2(
    shape: str, dtypes: str, extra: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    header = tmp_path / "kernel.hpp"
    code, _, err = run(synth(shape, dtypes, *extra, "--name", "mm", "-o", str(header)), capsys)
    assert code == 0, err

    plain = compile_header(header, "mm", dtypes, ["-O1"])
    assert plain.returncode != 0
    assert "#error" in plain.stderr
    assert "needs AVX2 and FMA" in plain.stderr

    flags = ["-O3", "-mavx2", "-mfma", "-Wall", "-Wextra", "-Werror"]
    avx2 = compile_header(header, "mm", dtypes, flags)
    assert avx2.returncode == 0, avx2.stderr


def test_python_api_refuses_mismatched_threads() -> None:
    import morello

    spec = morello.matmul_problem("1x64x64", "bf16,bf16,f32", "row,col,row", threads=2)
    with pytest.raises(morello.SpecError, match="threads"):
        morello.synthesize(spec)
    assert morello.synthesize(spec, threads=2).threads == 2


# The memo table from the command line.


def test_a_second_synth_answers_from_the_memo_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "memo.sqlite3")
    args = synth("8x64x24", BF16, "--layouts", "row,col,row", "--db", db)
    code, first, cold = run(args, capsys)
    assert code == 0, cold
    code, second, warm = run(args, capsys)
    assert code == 0, warm
    assert " 0 Specs solved" not in cold
    assert " 0 Specs solved" in warm and "answered from the memo table" in warm
    assert first == second  # the same header
    code, out, err = run(["db", "stats", "--db", db], capsys)
    assert code == 0, err
    for words in ("tables", "Specs covered", "regions stored", "Specs per region", "bytes"):
        assert words in out


def test_no_db_writes_no_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(synth("4x8x16", F32, "--no-db"), capsys)
    assert code == 0, err
    assert "no memo table" in err
    assert not (tmp_path / "default-memo.sqlite3").exists()
    code, _, err = run(synth("4x8x16", F32), capsys)  # the default location ($MORELLO_DB)
    assert code == 0, err
    assert (tmp_path / "default-memo.sqlite3").exists()


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (synth("4x8x16", F32, "--db", "x.sqlite3", "--no-db"), ["--db", "--no-db"]),
        (["db", "stats", "--db", "missing.sqlite3"], ["no memo table", "missing.sqlite3"]),
        (["precompute", "--max-size", "0"], ["--max-size", "0"]),
        (["precompute", "--jobs", "0"], ["--jobs", "0"]),
        (["precompute", "--dtypes", "f16,f32,f32"], ["'f16'"]),
    ],
)
def test_memo_table_errors(
    argv: list[str], words: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(argv, capsys)
    assert code == 2
    assert err.startswith("morello: error:"), err
    for word in words:
        assert word in err, (word, err)


def test_a_corrupt_memo_table_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "memo.sqlite3"
    bad.write_text("not a database\n" * 200)
    for argv in (synth("2x3x4", F32, "--db", str(bad)), ["db", "stats", "--db", str(bad)]):
        result = run_process(*argv)
        assert result.returncode == 2, result.stderr
        assert "not a readable morello memo table" in result.stderr
        assert "Traceback" not in result.stderr


def test_precompute_fills_then_skips(tmp_path: Path) -> None:
    db = str(tmp_path / "memo.sqlite3")
    first = run_process("precompute", "--max-size", "2", "--jobs", "2", "--db", db)
    assert first.returncode == 0, first.stderr
    assert "16 matmuls up to 2^3; 0 already" in first.stderr
    assert "Specs per region" in first.stdout
    again = run_process("precompute", "--max-size", "3", "--jobs", "1", "--db", db)
    assert again.returncode == 0, again.stderr
    assert "54 matmuls up to 3^3; 16 already" in again.stderr
