"""How long work reports how far it got: rewritten in place on a terminal; a line every few
seconds anywhere else (a log file, a CMake build waiting on a kernel), so that a stalled
job can be told from a slow one; nothing with ``--quiet``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

LINE_EVERY_S = 5.0  # between lines in a log: frequent enough to show life, few enough to read
REDRAW_EVERY_S = 0.1  # between redraws on a terminal


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


class Progress:
    """A count of done work (``update`` with the total so far, or ``advance`` by some),
    shown with its rate and the time elapsed, and the time left when the total is known."""

    def __init__(
        self,
        label: str,
        stream: TextIO,
        *,
        unit: str = "Specs solved",
        total: int | None = None,
        start: int = 0,
        quiet: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.unit = unit
        self.total = total
        self.done = start
        self._start = start
        self._stream = stream
        self._quiet = quiet
        self._tty = stream.isatty()
        self._clock = clock
        self._began = clock()
        self._shown = self._began
        self._drawn = False

    def update(self, done: int) -> None:
        self.done = done
        now = self._clock()
        if self._quiet or now - self._shown < (REDRAW_EVERY_S if self._tty else LINE_EVERY_S):
            return
        self._shown = now
        if self._tty:
            print(f"\r\x1b[K{self.line(now)}", end="", file=self._stream, flush=True)
            self._drawn = True
        else:
            print(self.line(now), file=self._stream, flush=True)

    def advance(self, amount: int) -> None:
        self.update(self.done + amount)

    def line(self, now: float | None = None) -> str:
        elapsed = (self._clock() if now is None else now) - self._began
        new = self.done - self._start
        rate = new / elapsed if elapsed > 0 else 0.0
        count = f"{self.done:,} {self.unit}"
        left = ""
        if self.total is not None:
            share = self.done / max(self.total, 1)
            count = f"{self.done:,} of {self.total:,} {self.unit} ({share:.0%})"
            if rate > 0 and self.done < self.total:
                left = f", about {_duration((self.total - self.done) / rate)} left"
        return f"{self.label}: {count}, {rate:,.0f}/s, {_duration(elapsed)}{left}"

    def close(self) -> None:
        """Clears the terminal line (what follows prints the result)."""
        if self._drawn:
            print("\r\x1b[K", end="", file=self._stream, flush=True)
            self._drawn = False
