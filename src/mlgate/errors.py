"""Exception hierarchy and process exit codes.

Every error mlgate raises derives from :class:`MlgateError`; the CLI catches only that
root type and maps it to :data:`ExitCode.ERROR`.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes shared by every command (same meaning as fickling's)."""

    CLEAN = 0
    UNSAFE = 1
    ERROR = 2


class MlgateError(Exception):
    """Root of every error mlgate raises. The message tells the user what to do."""


class ConfigError(MlgateError):
    """The configuration file or a command-line option is invalid."""


class ScanError(MlgateError):
    """A scan could not be carried out at all (missing path, unreadable file)."""
