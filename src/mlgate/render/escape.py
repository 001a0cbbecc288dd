"""Keeping attacker-controlled text inert in every output.

File names, archive member names, ``--reason`` texts and strings read from scanned models are
written by whoever supplied the model. Printed raw, they could forge report lines (``\\n``),
drive the terminal (ANSI CSI / OSC escape sequences: clear the screen, set the title, hide
text, hyperlinks), reorder what the reader sees (Unicode bidirectional overrides such as
U+202E, "Trojan Source", CVE-2021-42574), or crash an encoder (file names that are not valid
UTF-8 reach Python as lone surrogates through ``surrogateescape``).

Every text output goes through :func:`inert` (one field or one line) or :func:`inert_block`
(multi-line text whose line breaks are mlgate's own); JSON and SARIF go through
:func:`json_safe`. Escapes are visible and unambiguous to a reader: ``\\x1b``, ``\\u202e``,
``\\n``, and ``\\xff`` for a byte of a name that is not UTF-8.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path
from typing import Any

import click

from mlgate.errors import MlgateError

# Control (Cc), format (Cf: bidi overrides and isolates, zero-width characters), line and
# paragraph separators (Zl, Zp) and surrogates (Cs: undecodable bytes of a file name).
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_SURROGATE_ESCAPES = range(0xDC80, 0xDD00)  # how surrogateescape carries the bytes 0x80-0xFF
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


class UndecodableNameError(MlgateError):
    """A file name is not valid UTF-8, so no UTF-8 document (lock, signature, BOM) can name it."""


def _escape_char(char: str) -> str:
    code = ord(char)
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    if code in _SURROGATE_ESCAPES:
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _unsafe(char: str) -> bool:
    return unicodedata.category(char) in _UNSAFE_CATEGORIES


def inert(text: str) -> str:
    """``text`` with every control, format, separator and surrogate character escaped.

    For one field or one line: a newline in it is shown as ``\\n``, never output.
    """
    if text.isprintable():  # fast path: str.isprintable is False for every unsafe category
        return text
    return "".join(_escape_char(c) if _unsafe(c) else c for c in text)


def inert_block(text: str) -> str:
    """Multi-line ``text`` (evidence, pseudo-Python) made inert line by line.

    Only ``\\n`` separates lines; every other separator (``\\r``, U+2028, U+0085...) is escaped.
    """
    return "\n".join(inert(line) for line in text.split("\n"))


def echo(line: str, *, err: bool = False) -> None:
    """Print one line whose every unsafe character is escaped (a newline in it included)."""
    click.echo(inert(line), err=err)


def json_safe(value: Any) -> Any:
    """``value`` with every string valid Unicode, so that any JSON encoder and parser takes it.

    JSON escapes control characters itself; only the lone surrogates of names that are not
    UTF-8 need replacing (strict parsers reject them, UTF-8 encoders raise).
    """
    if isinstance(value, str):
        return _surrogates_escaped(value)
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def inert_json(text: str) -> str:
    """JSON ``text`` with every unsafe character written as a JSON ``\\uXXXX`` escape.

    For JSON encoded with ``ensure_ascii=False`` (BOMs, audit lines) that goes to a terminal:
    such characters can only sit inside JSON strings, where the escape means the same
    character, so the document is unchanged for any parser.
    """
    if text.isascii():
        return text
    return "".join(_json_escape(c) if _unsafe(c) else c for c in text)


def _json_escape(char: str) -> str:
    utf16 = char.encode("utf-16-be", "surrogatepass")
    return "".join(
        f"\\u{int.from_bytes(utf16[i : i + 2], 'big'):04x}" for i in range(0, len(utf16), 2)
    )


def _surrogates_escaped(text: str) -> str:
    if text.isascii():
        return text
    return "".join(_escape_char(c) if unicodedata.category(c) == "Cs" else c for c in text)


def require_utf8_names(model: Path) -> None:
    """Refuse, before any work, a model holding a file name that is not valid UTF-8.

    Locks, OpenSSF Model Signing statements and BOMs are UTF-8 documents: such a name cannot
    be recorded in them faithfully, and recording an altered name would pin a different file.
    """
    if not model.is_dir():
        _check_name(model.name, model)
        return
    for folder, dirs, files in os.walk(model):
        for name in (*dirs, *files):
            _check_name(name, Path(folder) / name)


def _check_name(name: str, path: Path) -> None:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise UndecodableNameError(
            f"the file name {inert(str(path))} is not valid UTF-8 and cannot be recorded; "
            "rename it (or remove it) and run the command again"
        ) from None
