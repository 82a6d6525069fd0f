"""Progress: a line every few seconds off a terminal, in place on one, nothing when quiet."""

from __future__ import annotations

import io

from morello.front.progress import LINE_EVERY_S, Progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_a_line_every_few_seconds_with_count_rate_and_elapsed() -> None:
    clock, out = Clock(), io.StringIO()
    progress = Progress("searching", out, clock=clock)
    for step in range(1, 31):  # 30 updates, one a second
        clock.now += 1.0
        progress.update(step * 1000)
    lines = out.getvalue().splitlines()
    assert len(lines) == 30 // LINE_EVERY_S
    assert lines[0] == "searching: 5,000 Specs solved, 1,000/s, 5 s"
    assert lines[-1] == "searching: 30,000 Specs solved, 1,000/s, 30 s"
    assert "\r" not in out.getvalue()


def test_a_known_total_gives_the_share_and_the_time_left_from_the_rate_of_this_run() -> None:
    clock, out = Clock(), io.StringIO()
    # 600 of 1,000 were done before (a resumed run): the rate counts this run's work only.
    progress = Progress("precompute", out, unit="matmuls", total=1000, start=600, clock=clock)
    clock.now += 80.0
    progress.advance(200)
    assert out.getvalue() == (
        "precompute: 800 of 1,000 matmuls (80%), 2/s, 1 min 20 s, about 1 min 20 s left\n"
    )


def test_quiet_prints_nothing() -> None:
    clock, out = Clock(), io.StringIO()
    progress = Progress("searching", out, quiet=True, clock=clock)
    for step in range(100):
        clock.now += 1.0
        progress.update(step)
    progress.close()
    assert out.getvalue() == ""


def test_a_terminal_is_redrawn_in_place_and_cleared_at_the_end() -> None:
    clock, out = Clock(), Terminal()
    progress = Progress("searching", out, clock=clock)
    for step in range(1, 4):
        clock.now += 1.0
        progress.update(step)
    progress.close()
    text = out.getvalue()
    assert "\n" not in text
    assert text.count("\r\x1b[K") == 4  # three redraws, then the clearing
    assert text.endswith("\r\x1b[K")
