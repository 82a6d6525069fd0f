"""The host profile: what ``morello calibrate`` measured on this machine, and what the
synthesizer and the code generator tune to.

The cost model's ``Rates`` and the L2 budget decide which program the search finds, so
they are part of the memo table's key: a calibrated host searches into a table of its
own. The prefetch distance is not a cost but the code: headers rendered with a profile
say so in a comment. The profile is a small JSON file beside the memo table; only the
front end reads it, and passes what it holds down as arguments.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from morello.core.cost import CostModel
from morello.core.kernels import DOT_PREFETCH_BYTES
from morello.core.rates import RATES, Rates
from morello.core.target import AVX2_LIMITS, MemoryLimits
from morello.errors import HostProfileError
from morello.store import cache_dir

RERUN = "rerun `morello calibrate`"
# The probes' version, saved with the profile: a probe that measures something new (2: the
# loads probe feeds FMAs; 3: reads as several streams) makes the fastest measurements of
# the old one incomparable.
PROBES = 3


@dataclass(frozen=True, slots=True)
class HostProfile:
    prefetch_bytes: int  # how far ahead the dot kernel prefetches B
    source: str  # where the numbers come from: a calibration, or the built-in default
    rates: Rates = RATES
    l2_budget: int = AVX2_LIMITS.l2  # bytes of L2 a program may plan for
    # The fastest each probe has measured on this host, over every calibration: what the
    # rates settle from, so that a calibration among busy neighbours cannot make them worse.
    fastest: Rates | None = None

    @property
    def limits(self) -> MemoryLimits:
        """What a synthesized program may allocate on this host."""
        return AVX2_LIMITS._replace(l2=self.l2_budget).quantized()

    @property
    def model(self) -> CostModel:
        """The cost model this host's syntheses search by."""
        return CostModel(self.rates, self.limits)


DEFAULT = HostProfile(DOT_PREFETCH_BYTES, "built-in default; run `morello calibrate`")


def profile_path() -> Path:
    """$MORELLO_HOST, else host.json in the user's cache directory, beside the memo table."""
    if os.environ.get("MORELLO_HOST"):
        return Path(os.environ["MORELLO_HOST"])
    return cache_dir() / "host.json"


def load(path: Path | None = None) -> HostProfile:
    """The saved profile, or DEFAULT if this host was never calibrated. A profile written
    before the rates were measured keeps the default rates; one measured by older probes
    keeps its rates but not its fastest measurements."""
    path = path or profile_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return DEFAULT
    except (OSError, ValueError) as exc:
        raise HostProfileError(
            f"{path}: not a host profile ({exc}); rerun `morello calibrate`"
        ) from exc
    if not isinstance(data, dict):
        raise HostProfileError(
            f"{path}: not a host profile (not an object); rerun `morello calibrate`"
        )
    distance = _count(path, data, "prefetch_bytes", minimum=0)
    l2 = _count(path, data, "l2_budget", minimum=1) if "l2_budget" in data else DEFAULT.l2_budget
    rates = _rates(path, data.get("rates", {}))
    fastest = None
    # Measured by other probes, the fastest would outrank every new measurement (or lack
    # one): the next calibration starts afresh.
    if data.get("fastest") is not None:
        current = data.get("probes", 1) == PROBES
        fastest = _rates(path, data["fastest"], "fastest", complete=current)
        fastest = fastest if current else None
    return HostProfile(distance, str(data.get("source", path)), rates, l2, fastest)


def _count(path: Path, data: dict, key: str, minimum: int) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise HostProfileError(
            f"{path}: {key!r} must be a byte count >= {minimum}, not {value!r}; "
            "rerun `morello calibrate`"
        )
    return value


def _rates(path: Path, data: object, key: str = "rates", complete: bool = False) -> Rates:
    """The rates a profile gives, the defaults filling in for those it omits unless
    ``complete``: a measurement it lacks must not pass for one (a default faster than the
    host would stay the fastest "measured" until ``--fresh``)."""
    if not isinstance(data, dict):
        raise HostProfileError(f"{path}: {key!r} must be an object; rerun `morello calibrate`")
    known = {f.name for f in fields(Rates)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise HostProfileError(
            f"{path}: unknown rates {unknown} in {key!r}; rerun `morello calibrate`"
        )
    missing = sorted(known - set(data))
    if complete and missing:
        raise HostProfileError(
            f"{path}: {key!r} lacks the rates {missing}; rerun `morello calibrate --fresh`"
        )
    for name, value in data.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise HostProfileError(
                f"{path}: rate {name!r} in {key!r} must be a positive number, not {value!r}; "
                "rerun `morello calibrate`"
            )
    return replace(RATES, **{name: float(value) for name, value in data.items()})


def save(profile: HostProfile, path: Path | None = None) -> Path:
    """Writes the profile atomically: a reader sees the old file or the new, never half."""
    path = path or profile_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".host-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({**asdict(profile), "probes": PROBES}, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
