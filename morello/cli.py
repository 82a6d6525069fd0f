"""The ``morello`` command."""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from morello import __version__
from morello.api import matmul_problem, synthesize_spec
from morello.codegen import check_name
from morello.cpu import missing_features
from morello.spec import SpecError


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Let a shape such as -4x8x16 reach the shape parser, which names the bad dimension,
        # instead of being taken for an option.
        self._negative_number_matcher = re.compile(r"^-\d+([xX*]-?\d+)*$|^-\d*\.\d+$")

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"morello: error: {message}\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="morello", description=__doc__)
    parser.add_argument("--version", action="version", version=f"morello {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    synth = commands.add_parser("synth", help="synthesize a kernel and emit a C++ header")
    ops = synth.add_subparsers(dest="op", required=True, parser_class=_Parser)
    mm = ops.add_parser("matmul", help="C = A·B (C += A·B with --accumulate)")
    mm.add_argument("shape", help="MxKxN, e.g. 1x2048x16384")
    mm.add_argument("--dtypes", required=True, help="A,B,C dtypes: f32 or bf16 (C: f32)")
    mm.add_argument("--layouts", default="row,row,row", help="A,B,C layouts: row or col")
    mm.add_argument("--threads", type=int, default=1, help="threads the kernel runs on")
    mm.add_argument("--accumulate", action="store_true", help="C += A·B instead of C = A·B")
    mm.add_argument("--name", default="matmul", help="C++ function name (default: matmul)")
    mm.add_argument("-o", "--output", type=Path, help="header file to write (default: stdout)")
    mm.add_argument("--color", choices=("auto", "always", "never"), default="auto")

    bench = commands.add_parser("bench", help="time synthesized kernels against machine limits")
    bench.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    bench.add_argument("--workdir", type=Path, help="where to build (default: a temp dir)")
    return parser


def _synth(args: argparse.Namespace) -> int:
    spec = matmul_problem(
        args.shape, args.dtypes, args.layouts, threads=args.threads, accumulate=args.accumulate
    )
    check_name(args.name, "--name")
    missing = missing_features()
    if missing:
        print(
            f"morello: warning: this machine lacks {', '.join(missing)}; the kernel will "
            "compile only with -mavx2 -mfma and run only on a CPU that has them",
            file=sys.stderr,
        )
    report = sys.stdout if args.output else sys.stderr
    tty = report.isatty()
    color = args.color == "always" or (args.color == "auto" and tty)

    def progress(solved: int) -> None:
        if tty:
            print(f"\rsearching: {solved:,} Specs solved", end="", file=report, flush=True)

    result = synthesize_spec(spec, threads=args.threads, progress=progress)
    if tty:
        print("\r\x1b[K", end="", file=report)
    header = result.to_header(args.name)
    print(result.program.render_tree(color=color), file=report)
    print(
        f"\npredicted cost {result.program.cost:,.0f}; {result.stats.specs_solved:,} Specs "
        f"solved in {result.stats.seconds:.2f} s",
        file=report,
    )
    if args.output:
        try:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(header)
        except OSError as e:
            raise SpecError(f"cannot write {args.output}: {e.strerror or e}") from None
        print(f"wrote {args.output}", file=report)
    else:
        sys.stdout.write(header)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from morello.benchmarks import run_suite

    if args.workdir is not None:
        return run_suite(args.workdir, quick=args.quick)
    with tempfile.TemporaryDirectory(prefix="morello-bench-") as tmp:
        return run_suite(Path(tmp), quick=args.quick)


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        match args.command:
            case "synth":
                return _synth(args)
            case "bench":
                return _bench(args)
    except SpecError as e:
        print(f"morello: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("morello: interrupted", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
