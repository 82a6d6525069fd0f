from __future__ import annotations

import platform
from pathlib import Path

import pytest

from morello.tune.machine import missing_features

pytestmark = pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"), reason="reads x86 CPU flags"
)


def test_reports_missing_avx2(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor : 0\nflags : fpu sse sse2 avx\n")
    assert missing_features(info) == ("avx2", "fma")


def test_complete_machine(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("flags : sse avx avx2 fma f16c\n")
    assert missing_features(info) == ()


def test_unknown_when_unreadable(tmp_path: Path) -> None:
    assert missing_features(tmp_path / "absent") is None
