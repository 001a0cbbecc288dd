"""The audit page's chain verification, incremental so that it stays fast on large logs.

Re-hashing the whole chain costs about 0.9 s per 20,000 entries. The console keeps the
prefix it has verified (up to entry ``seq`` with hash ``head``) and, on the next view,
re-hashes only the entries appended since, chained to ``head``, after checking that entry
``seq`` still carries that hash and that the checkpoints within the prefix are the ones it
verified (deleting, truncating or re-signing history falls back to a whole re-hash).

An in-place edit of an old entry that leaves its stored hash alone is only visible to a
re-hash of that entry, so the whole chain is still re-hashed at least every
:data:`FULL_EVERY_SECONDS` and on demand (``?verify=full``), and the page says which entries
were re-hashed when: it never claims more than was checked (an auditor reading "verified"
must be able to trust it).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, select

from mlgate.registry import audit, schema
from mlgate.registry.roles import Action
from mlgate.registry.service import Registry

FULL_EVERY_SECONDS = 60.0


@dataclass(frozen=True)
class ChainState:
    """The whole-chain verification the page shows, and how it was obtained."""

    result: audit.AuditVerification
    seq: int  # last entry verified
    head: str  # its hash
    checkpoints: int  # checkpoints verified (all of them at or before ``seq``)
    full_seq: int  # entries 1..full_seq were re-hashed by the last whole verification
    full_at: float  # when (time.time) that whole verification ran
    full_monotonic: float

    @property
    def incremental(self) -> bool:
        """Whether entries past ``full_seq`` were verified on a later view."""
        return self.seq > self.full_seq

    def age(self) -> float:
        return time.monotonic() - self.full_monotonic


def verify(registry: Registry, known: ChainState | None, full: bool) -> ChainState:
    """The chain verified, re-hashing only what ``known`` does not cover when that is sound."""
    key = registry.org_public_key()
    with registry.context.read(Action.READ) as conn:
        points = audit.read_checkpoints(conn)
        if full or known is None or not _extendable(conn, known, points):
            return _whole(conn, points, key)
        return _extend(conn, known, points, key)


def _extendable(conn: Connection, known: ChainState, points: list[audit.Checkpoint]) -> bool:
    """Whether the verified prefix is still the stored one (else: verify everything)."""
    if not known.result.ok or known.age() > FULL_EVERY_SECONDS:
        return False
    entries = schema.audit_entries.c
    stored = conn.execute(select(entries.hash).where(entries.seq == known.seq)).scalar()
    old_points = sum(1 for p in points if p.seq <= known.seq)
    return stored == known.head and old_points == known.checkpoints


def _whole(conn: Connection, points: list[audit.Checkpoint], key: Any) -> ChainState:
    last = _Last()
    result = audit.verify_log(last.track(audit.read_entries(conn)), points, key)
    return ChainState(
        result, last.seq, last.head, len(points), last.seq, time.time(), time.monotonic()
    )


def _extend(
    conn: Connection, known: ChainState, points: list[audit.Checkpoint], key: Any
) -> ChainState:
    last = _Last(known.seq, known.head)
    new_points = [p for p in points if p.seq > known.seq]
    entries = last.track(audit.read_entries(conn, after=known.seq))
    tail = audit.verify_log(entries, new_points, key, after=known.seq, prev=known.head)
    result = replace(
        tail,
        entries=known.result.entries + tail.entries,
        checkpoints=known.checkpoints + tail.checkpoints,
    )
    return replace(known, result=result, seq=last.seq, head=last.head, checkpoints=len(points))


class _Last:
    """Remembers the last entry of a stream as it goes by (the new verified head)."""

    def __init__(self, seq: int = 0, head: str = audit.GENESIS) -> None:
        self.seq, self.head = seq, head

    def track(self, entries: Iterable[audit.AuditEntry]) -> Iterator[audit.AuditEntry]:
        for entry in entries:
            self.seq, self.head = entry.seq, entry.hash
            yield entry
