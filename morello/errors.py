"""Every error morello raises on purpose derives from ``MorelloError``; the command line
prints its message as one line and exits with status 2."""

from __future__ import annotations


class MorelloError(Exception):
    """A failure with a message meant for the user: it names what is wrong."""


class SpecError(MorelloError, ValueError):
    """Input that cannot be synthesized: an impossible shape, an unsupported dtype or
    layout, a bad kernel name, a malformed kernel list or option."""


class MemoTableError(MorelloError):
    """A memo table that cannot be used: corrupt, foreign, or written by another model."""


class FileAccessError(MorelloError, OSError):
    """A file or directory that cannot be read, written or created."""


class HostProfileError(MorelloError):
    """A host profile that cannot be read; the message names the file."""


class BuildError(MorelloError):
    """Compiling generated code failed, or a compiled kernel computed a wrong result."""
