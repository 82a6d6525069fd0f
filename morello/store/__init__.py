"""What the search has solved, kept: the memo table's encoding (table), its file (db), and
filling it ahead of time (precompute)."""

import os
from pathlib import Path


def cache_dir() -> Path:
    """morello's directory in the user's cache ($XDG_CACHE_HOME is honoured)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "morello"
