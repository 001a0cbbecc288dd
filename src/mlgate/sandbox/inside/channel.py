"""The event channel: JSON lines written to a pipe the supervisor reads outside the sandbox.

Each line stays under PIPE_BUF (4096 bytes) so that lines written by several processes (the
loader and the fake network) never interleave. A payload shares the loader's process and could
write lines too; it can only add events or go quiet, and the supervisor treats a missing final
status as an incomplete run (the syscall trace, recorded outside, is the authority).
"""

from __future__ import annotations

import json
import os
from typing import Any

_MAX_LINE = 4000
_MAX_TEXT = 300


class Channel:
    """Writes events to one file descriptor; silent once the reader has gone."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.closed = False

    def emit(self, kind: str, **fields: Any) -> None:
        if self.closed:
            return
        record = {"kind": kind, **{k: _field(v) for k, v in fields.items()}}
        line = json.dumps(record, ensure_ascii=True, default=repr)
        if len(line) > _MAX_LINE:
            short = {k: inert(v)[:200] for k, v in fields.items()}
            record = {"kind": kind, "truncated": True, **short}
            line = json.dumps(record, ensure_ascii=True, default=repr)[:_MAX_LINE]
        try:
            os.write(self.fd, line.encode("ascii") + b"\n")
        except OSError:
            self.closed = True


def inert(value: Any) -> str:
    """A short printable text for any value (arguments of hooks can be anything)."""
    try:
        text = value if isinstance(value, str) else repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text[:_MAX_TEXT]


def _field(value: Any) -> Any:
    if isinstance(value, (int, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [inert(v) for v in value[:16]]
    return inert(value)
