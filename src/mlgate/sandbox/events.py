"""What was seen during a sandboxed load, from the three observers.

``audit``: Python audit hooks inside the loader's process; ``syscall``: the system-call trace
recorded outside the sandbox (native code cannot hide from it); ``network``: the fake network
inside the sandbox (names resolved, bytes sent); ``probe``: the behaviour probe's output
statistics (``name=value`` details; written from the model's process, so a payload can forge
them: they describe quality, never safety). Every text field is attacker-controlled.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

_MAX_LINE = 8192
_MAX_FIELD = 600


@dataclass(frozen=True)
class SandboxEvent:
    """One observed action: who saw it, what kind, the call, and its details."""

    source: str  # audit | syscall | network | probe
    category: str  # process | code | network | dns | file-write | file-read | import | ...
    action: str  # the audit event or system call name
    detail: tuple[str, ...]
    phase: str = "load"  # import (the framework starting) | load | probe | done
    caller: str = ""
    pid: int | None = None
    result: str = ""  # a system call's return value ("-1 EPERM (...)")

    def describe(self) -> str:
        args = ", ".join(self.detail)
        where = f" from {self.caller}" if self.caller else ""
        result = f" = {self.result}" if self.result else ""
        return f"{self.action}({args}){result}{where}"


@dataclass(frozen=True)
class RunnerStatus:
    """The runner's own account of how far it got (``isolated``, ``loaded``...)."""

    status: str
    detail: str = ""


def parse_channel(
    lines: Iterable[bytes], limit: int
) -> tuple[list[SandboxEvent], list[RunnerStatus], bool]:
    """Events and statuses from the runner's channel; True when events past ``limit`` were
    dropped or lines could not be read (the record is then incomplete)."""
    events: list[SandboxEvent] = []
    statuses: list[RunnerStatus] = []
    lossy = False
    for record in _records(lines):
        if record is None:
            lossy = True
            continue
        kind = _text(record.get("kind"))
        if kind == "status":
            detail = _text(record.get("error") or record.get("type") or "")
            statuses.append(RunnerStatus(_text(record.get("status")), detail))
        elif len(events) >= limit:
            lossy = True
        elif kind in ("audit", "network", "probe"):
            events.append(_event(kind, record))
        else:
            lossy = True
    return events, statuses, lossy


def _records(lines: Iterable[bytes]) -> Iterator[dict[str, object] | None]:
    for line in lines:
        if len(line) > _MAX_LINE:
            yield None
            continue
        try:
            record = json.loads(line)
        except ValueError:
            yield None
            continue
        yield record if isinstance(record, dict) else None


def _event(source: str, record: dict[str, object]) -> SandboxEvent:
    args = record.get("args")
    detail = tuple(_text(a) for a in args[:16]) if isinstance(args, list) else ()
    pid = record.get("pid")
    return SandboxEvent(
        source=source,
        category=_text(record.get("category")),
        action=_text(record.get("event")),
        detail=detail,
        phase=_text(record.get("phase") or "load"),
        caller=_text(record.get("caller") or ""),
        pid=pid if isinstance(pid, int) else None,
    )


def _text(value: object) -> str:
    return str(value)[:_MAX_FIELD] if value is not None else ""
