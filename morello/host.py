"""What the code generator tunes to the machine it runs on, measured by ``morello calibrate``.

The cost model ranks programs; it does not choose how far ahead the dot kernel prefetches
the weights it streams from DRAM. That distance is the bandwidth-latency product of the
host's memory, and it is not portable: 1 KiB ahead took one core to 94-97% of its read
bandwidth on a Zen 4 VM with 22 GB/s a core, where a Zen 5 VM with 41 GB/s needed 8 KiB
(1 KiB left it at 58%). So it is measured: the seed kernel, rendered with each candidate
distance, timed on weights too large for any cache. The winner is written to a small JSON
file beside the memo table; headers rendered afterwards use it, and say so in a comment.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from morello.db import cache_dir
from morello.kernels import DOT_PREFETCH_BYTES
from morello.memo import Memo
from morello.spec import SpecError

PREFETCH_CANDIDATES = (0, 512, 1024, 2048, 4096, 8192, 16384, 32768)
PROBE = ("1x2048x16384", "bf16,bf16,f32", "row,col,row")  # the seed: one token of decode


class HostError(SpecError):
    """A host profile that cannot be read; the message names the file."""


@dataclass(frozen=True, slots=True)
class HostProfile:
    prefetch_bytes: int  # how far ahead the dot kernel prefetches B
    source: str  # where the numbers come from: a calibration, or the built-in default


DEFAULT = HostProfile(DOT_PREFETCH_BYTES, "built-in default; run `morello calibrate`")


def profile_path() -> Path:
    """$MORELLO_HOST, else host.json in the user's cache directory, beside the memo table."""
    if os.environ.get("MORELLO_HOST"):
        return Path(os.environ["MORELLO_HOST"])
    return cache_dir() / "host.json"


def load(path: Path | None = None) -> HostProfile:
    """The saved profile, or DEFAULT if this host was never calibrated."""
    path = path or profile_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return DEFAULT
    except (OSError, ValueError) as exc:
        raise HostError(f"{path}: not a host profile ({exc}); rerun `morello calibrate`") from exc
    distance = data.get("prefetch_bytes") if isinstance(data, dict) else None
    if not isinstance(distance, int) or isinstance(distance, bool) or distance < 0:
        raise HostError(
            f"{path}: 'prefetch_bytes' must be a byte count >= 0, not {distance!r}; "
            "rerun `morello calibrate`"
        )
    return HostProfile(distance, str(data.get("source", path)))


def save(profile: HostProfile, path: Path | None = None) -> Path:
    """Writes the profile atomically: a reader sees the old file or the new, never half."""
    path = path or profile_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".host-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(profile), f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@dataclass(frozen=True, slots=True)
class Trial:
    prefetch_bytes: int
    seconds: float  # median per call
    gb_per_s: float  # the weights read per second


def calibrate(
    memo: Memo,
    candidates: Sequence[int] = PREFETCH_CANDIDATES,
    *,
    log: Callable[[str], None] = lambda line: None,
) -> tuple[HostProfile, list[Trial]]:
    """Times the seed kernel at each prefetch distance (1 thread, cold weights, every
    candidate checked against the exact product); the fastest median wins."""
    from morello.api import matmul_problem, synthesize_spec
    from morello.rerank import Candidate, measure

    log(f"synthesizing the probe kernel, matmul {' '.join(PROBE)}")
    program = synthesize_spec(matmul_problem(*PROBE), memo=memo).program
    trials = measure(
        program.spec,
        [Candidate(program, f"prefetch {d} B", d) for d in candidates],
        threads=1,
        log=log,
    )
    weights = program.spec.operands[1].bytes
    found = [
        Trial(t.candidate.prefetch_bytes or 0, t.seconds, weights / t.seconds / 1e9) for t in trials
    ]
    best = min(found, key=lambda t: t.seconds)
    source = f"morello calibrate: seed kernel at {best.gb_per_s:.1f} GB/s, 1 thread"
    return HostProfile(best.prefetch_bytes, source), found
