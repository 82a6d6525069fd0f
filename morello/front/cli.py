"""The ``morello`` command."""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from morello import __version__, cmake_dir
from morello.errors import BuildError, FileAccessError, HostProfileError, MorelloError, SpecError
from morello.front.kernel_list import UMBRELLA
from morello.front.progress import Progress
from morello.store import cache_dir
from morello.tune import host
from morello.tune.machine import ISAS, missing_features

# The search, the code generator, numpy and the measurement load when a command runs, not
# for `morello --help` or a mistyped option.
if TYPE_CHECKING:
    from morello.core.cost import CostModel
    from morello.core.memo import Memo
    from morello.front.api import Synthesized
    from morello.tune.rerank import Measured


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
    parser.add_argument(
        "--cmake-dir",
        action="version",
        version=str(cmake_dir()),
        help="print the directory of MorelloConfig.cmake (for Morello_DIR) and exit",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    synth = commands.add_parser("synth", help="synthesize a kernel and emit a C++ header")
    ops = synth.add_subparsers(dest="op", required=True, parser_class=_Parser)
    mm = ops.add_parser("matmul", help="C = A·B (C += A·B with --accumulate)")
    mm.add_argument("shape", help="MxKxN, e.g. 1x2048x16384")
    mm.add_argument("--dtypes", required=True, help="A,B,C dtypes: f32 or bf16 (C: f32)")
    mm.add_argument("--layouts", default="row,row,row", help="A,B,C layouts: row or col")
    mm.add_argument("--threads", type=int, default=1, help="threads the kernel runs on")
    mm.add_argument("--accumulate", action="store_true", help="C += A·B instead of C = A·B")
    mm.add_argument(
        "--weights-from-dram",
        action="store_true",
        help="B comes from DRAM on every call, however small (a model's weights in decode); "
        "by default operands that fit a share of L3 are taken to stay there",
    )
    mm.add_argument(
        "--b-stride",
        type=int,
        metavar="ELEMENTS",
        help="B's rows are padded: elements from one row of its storage to the next (one "
        "weight row of K for a col B); default dense",
    )
    mm.add_argument("--name", default="matmul", help="C++ function name (default: matmul)")
    mm.add_argument("-o", "--output", type=Path, help="header file to write (default: stdout)")
    mm.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    _quiet_option(mm)
    mm.add_argument(
        "--measure",
        type=int,
        default=1,
        metavar="K",
        help="time the model's optimum and its K-1 cheapest one-decision neighbours on this "
        "machine and emit the fastest (needs g++; default 1: the model decides)",
    )
    _db_options(mm)

    bench = commands.add_parser(
        "bench", help="time synthesized kernels side by side with peers and machine limits"
    )
    bench.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    bench.add_argument(
        "--suite",
        choices=("standard", "decode", "matmul"),
        default="standard",
        help="standard: the seed, Gemma 2B's decode MatVecs, a batched decode and square f32 "
        "matmuls (default); decode: every decode MatVec of eight open models, f32 and bf16 "
        "vectors (morello/bench/models.py); matmul: f32 matmuls 512³ to 2048³ and off powers "
        "of two",
    )
    bench.add_argument("--workdir", type=Path, help="where to build (default: a temp dir)")
    bench.add_argument(
        "--out",
        type=Path,
        default=Path("morello-bench"),
        help="directory for bench.json and bench.png (default: ./morello-bench)",
    )
    bench.add_argument(
        "--peers", default="numpy,torch,jax", help="peers to time (default: numpy,torch,jax)"
    )
    bench.add_argument(
        "--threads", default="1,2", help="thread counts, comma-separated (default: 1,2)"
    )
    bench.add_argument(
        "--workload",
        action="append",
        default=[],
        help="run only workloads whose name contains this (repeatable)",
    )
    bench.add_argument(
        "--measure",
        type=int,
        default=4,
        metavar="K",
        help="ours is the fastest of the model's optimum and its K-1 cheapest neighbours, "
        "timed before the suite (default 4; 1: the model's optimum)",
    )
    bench.add_argument(
        "--peer-isa",
        choices=ISAS,
        default="native",
        help="native: peers use every instruction the host has (default); avx2: peers and "
        "the FMA peak are kept to AVX2, emulating on an AVX-512 host the machine class our "
        "kernels target",
    )
    bench.add_argument(
        "--gemma-cpp",
        type=Path,
        metavar="WORKDIR",
        help="instead, gemma.cpp's own decode MatMul (today's, 3ed403e: WORKDIR/src/gemma.cpp) "
        "or MatVec (6eeef2e: WORKDIR/gemma.cpp) against the same calls through our kernels, "
        "in one process (integrations/gemma_cpp/README.md)",
    )
    bench.add_argument(
        "--synthesis",
        action="store_true",
        help="time synthesis instead (cold and warm memo table) and the table's compression",
    )
    _db_options(bench)

    pre = commands.add_parser(
        "precompute", help="fill the memo table with every matmul up to a size"
    )
    pre.add_argument("--max-size", type=int, default=64, help="largest M, K and N (default 64)")
    pre.add_argument(
        "--dtypes",
        action="append",
        help="A,B,C dtypes, repeatable (default: f32,f32,f32 and bf16,bf16,f32)",
    )
    pre.add_argument(
        "--layouts", action="append", help="A,B,C layouts, repeatable (default: row,row,row)"
    )
    pre.add_argument("--threads", type=int, default=1, help="threads the kernels run on")
    pre.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: CPUs)"
    )
    pre.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on a Dask distributed cluster instead of local processes, e.g. "
        "tcp://HOST:8786 (needs morello[dask]; workers need no access to the memo table)",
    )
    _quiet_option(pre)
    _db_options(pre, can_disable=False)

    gen = commands.add_parser(
        "generate", help="synthesize every kernel of a kernel list (TOML) into headers"
    )
    gen.add_argument("kernels", type=Path, help="the kernel list, e.g. kernels.toml")
    gen.add_argument("-o", "--output-dir", type=Path, required=True, help="where headers go")
    gen.add_argument(
        "--umbrella", default=UMBRELLA, help=f"header that includes all (default {UMBRELLA})"
    )
    gen.add_argument(
        "--list",
        action="store_true",
        help="print the headers it would write and the files they depend on, and stop",
    )
    _quiet_option(gen)
    _db_options(gen)

    cal = commands.add_parser(
        "calibrate",
        help="measure the cost model's rates on this machine, and how far ahead the dot "
        "kernel should prefetch",
    )
    cal.add_argument(
        "--profile",
        type=Path,
        help=f"host profile to write (default: {host.profile_path()}, or $MORELLO_HOST)",
    )
    cal.add_argument(
        "--fresh",
        action="store_true",
        help="forget what earlier calibrations measured (after moving to another machine); "
        "by default each rate is the fastest any calibration has measured here",
    )
    _db_options(cal)

    db = commands.add_parser("db", help="inspect the memo table")
    db_commands = db.add_subparsers(dest="db_command", required=True, parser_class=_Parser)
    stats = db_commands.add_parser("stats", help="tables, Specs, regions, bytes, compression")
    stats.add_argument("--tables", type=int, default=10, help="largest tables to list")
    _db_options(stats, can_disable=False)
    return parser


def _quiet_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no progress (by default: in place on a terminal, else a line every few seconds)",
    )


def _db_options(parser: argparse.ArgumentParser, *, can_disable: bool = True) -> None:
    parser.add_argument(
        "--db",
        type=Path,
        help=f"memo table file (default: {cache_dir()}/memo-<model>.sqlite3, named by the "
        "model and the host's rates, or $MORELLO_DB)",
    )
    if can_disable:
        parser.add_argument(
            "--no-db", action="store_true", help="search in memory only; read and write no file"
        )


def _memo(args: argparse.Namespace, model: CostModel) -> Memo:
    """The memo table of ``model``, the host's."""
    from morello.core.memo import InMemoryMemo
    from morello.store.db import open_memo

    if getattr(args, "no_db", False):
        if args.db is not None:
            raise SpecError("--db and --no-db contradict each other: pass one")
        return InMemoryMemo(model)
    return open_memo(args.db, model)


def _synth(args: argparse.Namespace) -> int:
    from morello.core.spec import matmul_problem
    from morello.emit.names import check_name
    from morello.front.api import synthesize_spec

    profile = host.load()
    spec = matmul_problem(
        args.shape,
        args.dtypes,
        args.layouts,
        threads=args.threads,
        accumulate=args.accumulate,
        limits=profile.limits,
        b_from_dram=args.weights_from_dram,
        b_stride=args.b_stride,
    )
    check_name(args.name, "--name")
    _warn_threads(args.threads, "--threads")
    missing = missing_features()
    if missing:
        print(
            f"morello: warning: this machine lacks {', '.join(missing)}; the kernel will "
            "compile only with -mavx2 -mfma and run only on a CPU that has them",
            file=sys.stderr,
        )
    report = sys.stdout if args.output else sys.stderr
    color = args.color == "always" or (args.color == "auto" and report.isatty())
    _at_least_one(args.measure, "--measure")
    memo = _memo(args, profile.model)
    progress = Progress("searching", sys.stderr, quiet=args.quiet)
    try:
        result = synthesize_spec(
            spec, threads=args.threads, memo=memo, progress=progress.update, profile=profile
        )
        progress.close()
        ranking = None
        if args.measure > 1:
            ranking = _rerank(result, memo, args.measure, report)
            result = replace(result, program=ranking[0].candidate.program)
    finally:
        memo.close()
    header = result.to_header(args.name, b_stride=args.b_stride)
    print(result.program.render_tree(color=color), file=report)
    print(
        f"\npredicted cost {result.program.cost:,.0f}; {result.stats.specs_solved:,} Specs "
        f"solved in {result.stats.seconds:.2f} s{_memo_note(memo)}",
        file=report,
    )
    if ranking is not None:
        from morello.tune.rerank import format_ranking

        print(f"\nmeasured on this machine, fastest first:\n{format_ranking(ranking)}", file=report)
    if args.output:
        try:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(header)
        except OSError as e:
            raise FileAccessError(f"cannot write {args.output}: {e.strerror or e}") from None
        print(f"wrote {args.output}", file=report)
    else:
        sys.stdout.write(header)
    return 0


def _warn_threads(threads: int, what: str) -> None:
    """Far more threads than this machine has is legal (a kernel built for a bigger host),
    but more often a typo: say so, as the search for many threads takes longer."""
    cpus = os.cpu_count() or 1
    if threads > 4 * cpus:
        print(
            f"morello: warning: {what} {threads} is far above this machine's {cpus} CPUs; "
            "the kernel is synthesized for that many, but cannot be measured here",
            file=sys.stderr,
        )


def _memo_note(memo: Memo) -> str:
    from morello.store.db import MemoDB

    if not isinstance(memo, MemoDB):
        return " (no memo table)"
    return f"; {memo.loaded:,} answered from the memo table {memo.path}"


def _at_least_one(value: int, option: str) -> None:
    if value < 1:
        raise SpecError(f"{option} must be at least 1, got {value}")


def _rerank(result: Synthesized, memo: Memo, count: int, report: TextIO) -> list[Measured]:
    from morello.tune.rerank import rank

    def log(line: str) -> None:
        print(f"measuring: {line}", file=report, flush=True)

    try:
        spec = result.program.spec
        return rank(spec, result.threads, memo, count, result.prefetch_bytes, log)
    except BuildError as e:
        raise BuildError(f"--measure: {e}") from None


def _thread_counts(text: str) -> tuple[int, ...]:
    try:
        threads = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise SpecError(f"--threads {text!r} must be comma-separated integers") from None
    if not threads or min(threads) < 1:
        raise SpecError(f"--threads {text!r}: thread counts must be at least 1")
    return threads


def _bench(args: argparse.Namespace) -> int:
    from morello.bench.suite import run_suite, run_synthesis_suite

    if args.synthesis:
        return run_synthesis_suite(args.db, host.load(), tuple(args.workload))
    if args.gemma_cpp is not None:
        from morello.bench import gemma_cpp

        return gemma_cpp.run(args.gemma_cpp, args.out, _thread_counts(args.threads), args.quick)
    from morello.bench.peers import PEERS

    peers = tuple(p.strip() for p in args.peers.split(",") if p.strip())
    unknown = [p for p in peers if p not in PEERS]
    if unknown:
        raise SpecError(f"--peers: unknown peer {unknown[0]!r} (known: {', '.join(PEERS)})")
    threads = _thread_counts(args.threads)
    only = tuple(args.workload)
    _at_least_one(args.measure, "--measure")
    options = {
        "quick": args.quick,
        "peers": peers,
        "threads": threads,
        "only": only,
        "measure": args.measure,
        "peer_isa": args.peer_isa,
        "suite": args.suite,
    }
    profile = host.load()
    if profile == host.DEFAULT:
        print("morello: calibrating this host first (morello calibrate)", file=sys.stderr)
        profile = _calibrate(args)
    memo = _memo(args, profile.model)
    try:
        if args.workdir is not None:
            return run_suite(args.workdir, memo, args.out, profile=profile, **options)
        with tempfile.TemporaryDirectory(prefix="morello-bench-") as tmp:
            return run_suite(Path(tmp), memo, args.out, profile=profile, **options)
    finally:
        memo.close()


def _precompute(args: argparse.Namespace) -> int:
    from morello.store import precompute
    from morello.store.db import default_db_path

    _at_least_one(args.max_size, "--max-size")
    _at_least_one(args.jobs, "--jobs")
    model = host.load().model
    path = args.db or default_db_path(model)
    todo = precompute.problems(
        args.max_size,
        args.dtypes or ["f32,f32,f32", "bf16,bf16,f32"],
        args.layouts or ["row,row,row"],
        args.threads,
    )
    left = precompute.pending(path, todo, model)
    where = f"the cluster at {args.scheduler}" if args.scheduler else f"{args.jobs} processes"
    print(
        f"{len(todo):,} matmuls up to {args.max_size}^3; {len(todo) - len(left):,} already "
        f"in {path}; solving {len(left):,} on {where}",
        file=sys.stderr,
    )
    progress = Progress(
        "precompute",
        sys.stderr,
        unit="matmuls",
        total=len(todo),
        start=len(todo) - len(left),
        quiet=args.quiet,
    )
    if args.scheduler:
        precompute.run_on_cluster(
            path, left, args.scheduler, progress=progress.advance, model=model
        )
    else:
        precompute.run(path, left, workers=args.jobs, progress=progress.advance, model=model)
    progress.close()
    return _db_stats(argparse.Namespace(db=path, tables=0))


def _generate(args: argparse.Namespace) -> int:
    from morello.front import kernel_list
    from morello.front.generate import check_umbrella, generate, generator_inputs, header_names

    requests = kernel_list.load(args.kernels)
    check_umbrella(requests, args.umbrella)
    for request in requests:
        _warn_threads(request.threads, f"kernel {request.name!r}: threads")
    if args.list:
        for name in header_names(requests, args.umbrella):
            print(f"output {args.output_dir / name}")
        for path in generator_inputs(args.kernels):
            print(f"depends {path}")
        return 0
    profile = host.load()
    memo = _memo(args, profile.model)
    try:
        result = generate(
            requests,
            args.output_dir,
            memo,
            umbrella=args.umbrella,
            stream=sys.stderr,
            quiet=args.quiet,
            profile=profile,
        )
    finally:
        memo.close()
    for path in result.written:
        print(f"morello: wrote {path}", file=sys.stderr)
    if result.unchanged:
        print(f"morello: {len(result.unchanged)} headers unchanged", file=sys.stderr)
    return 0


def _calibrate(args: argparse.Namespace) -> host.HostProfile:
    """Measures the host, prints what it found and writes the profile."""
    from morello.core.rates import RATES
    from morello.store.db import db_file_name
    from morello.tune.calibrate import KEEP_TIME, calibrate

    def log(line: str) -> None:
        print(f"calibrating: {line}", file=sys.stderr, flush=True)

    path = getattr(args, "profile", None) or host.profile_path()
    try:
        previous = host.DEFAULT if getattr(args, "fresh", False) else host.load(path)
    except HostProfileError as e:
        log(f"replacing an unreadable profile: {e}")
        previous = host.DEFAULT
    try:
        found = calibrate(lambda model: _memo(args, model), previous, log=log)
    except BuildError as e:
        raise BuildError(f"calibrate: {e}") from None
    profile = found.profile
    print(f"clock {found.clock_hz / 1e9:.2f} GHz (a chain of dependent adds)")
    print(f"{'rate':>24}  {'measured':>9}  {'fastest yet':>11}  {'used':>6}  {'default':>7}")
    for m in found.rates:
        default = getattr(RATES, m.name)
        print(f"{m.name:>24}  {m.measured:>9.2f}  {m.fastest:>11.2f}  {m.used:>6g}  {default:>7g}")
    l2 = f"{profile.l2_budget >> 10:>7} KiB"
    print(f"{'l2_budget':>24}  {l2} (half the L2 the kernel reports, up to the default)")
    print(f"\n{'prefetch ahead':>14}  {'median':>9}  {'weights read':>12}")
    for t in sorted(found.trials, key=lambda t: t.prefetch_bytes):
        mark = ""
        if t == found.trials[0]:
            mark = "  <- fastest"
        elif t.prefetch_bytes == profile.prefetch_bytes:
            mark = f"  <- kept: the saved distance, within {KEEP_TIME:.0%} of the fastest"
        print(
            f"{t.prefetch_bytes:>12} B  {t.seconds * 1e3:>6.3f} ms  {t.gb_per_s:>7.1f} GB/s{mark}"
        )
    host.save(profile, path)
    print(
        f"wrote {path}: syntheses from now on use these rates (memo table "
        f"{db_file_name(profile.model)}) and prefetch {profile.prefetch_bytes} B ahead"
    )
    return profile


def _db_stats(args: argparse.Namespace) -> int:
    from morello.store.db import MemoDB, default_db_path, format_stats

    model = host.load().model
    path = args.db or default_db_path(model)
    if not path.exists():
        raise SpecError(f"no memo table at {path} (nothing synthesized into it yet)")
    with MemoDB(path, model) as memo:
        print(format_stats(memo.stats(), args.tables))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        match args.command:
            case "synth":
                return _synth(args)
            case "bench":
                return _bench(args)
            case "generate":
                return _generate(args)
            case "precompute":
                return _precompute(args)
            case "calibrate":
                _calibrate(args)
                return 0
            case "db":
                return _db_stats(args)
    except MorelloError as e:
        print(f"morello: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("morello: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``morello synth ... | head``): stop quietly, as cat does.
        # Point stdout at devnull so that the interpreter's final flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return 2


if __name__ == "__main__":
    sys.exit(main())
