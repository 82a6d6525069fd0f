"""What both gemma.cpp benchmarks share (``gemma_cpp`` for 6eeef2e, ``gemma_head`` for
today's gemma.cpp): where the integration lives, the targets gemma runs as, the bar, and
running one build or driver step with its failure reported."""

from __future__ import annotations

import subprocess
from pathlib import Path

from morello.errors import BuildError

REPOSITORY = Path(__file__).resolve().parents[2]
INTEGRATION = REPOSITORY / "integrations" / "gemma_cpp"
TARGETS = ("best", "avx2")  # Highway's choice for the host, and AVX2 only
BAR = 1.05  # ours must be this much faster than gemma's own code, on every routed shape


def run_step(command: list[str], what: str) -> str:
    """``command``'s output; a failure raises with the tail of what it printed."""
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).splitlines()[-20:])
        raise BuildError(f"{what} failed ({' '.join(command[:3])} ...):\n{tail}")
    return done.stdout
