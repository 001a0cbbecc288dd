"""Exception hierarchy and process exit codes.

Every error mlgate raises derives from :class:`MlgateError`; the CLI catches only that
root type and maps it to :data:`ExitCode.ERROR`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from enum import IntEnum
from typing import ParamSpec, TypeVar

_P = ParamSpec("_P")
_R = TypeVar("_R")
_MAX_DETAIL = 200  # parser messages can quote the hostile input: kept short and inert


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


class UnreadableInputError(MlgateError):
    """An input file could not be parsed (malformed, truncated or hostile content)."""


def public_entry(error: type[MlgateError]) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Make a public entry point raise only :class:`MlgateError`: an exception from a parser
    (``json`` recursion on deeply nested metadata, ``OverflowError`` on absurd shapes,
    ``UnicodeDecodeError`` in truncated escapes, py7zr CRC errors...) becomes ``error``, naming
    the input (the first argument), so the CLI exits 2 with a message instead of a traceback.
    """

    def decorate(func: Callable[_P, _R]) -> Callable[_P, _R]:
        @functools.wraps(func)
        def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            try:
                return func(*args, **kwargs)
            except MlgateError:
                raise
            except Exception as e:
                subject = f"{args[0]}: " if args else ""
                raise error(f"{subject}could not be read: {_explain(e)}") from e

        return wrapper

    return decorate


def _explain(error: Exception) -> str:
    if isinstance(error, RecursionError):
        return "structures nested too deeply to be parsed (RecursionError)"
    detail = str(error)[:_MAX_DETAIL]
    # Inert: control characters from the input (terminal escapes, newlines) shown escaped.
    inert = "".join(c if c.isprintable() else repr(c)[1:-1] for c in detail)
    return f"{type(error).__name__}: {inert}"
