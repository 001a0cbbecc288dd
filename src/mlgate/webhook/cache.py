"""The webhook's registry lookups, cached briefly (issue 12: decisions in < 50 ms p99, so
the webhook is never the reason operators turn it off).

A reference (model, revision) resolves to the same version until someone acts on the
registry: an ingest, publish, reject, revoke, deprecate, alias move or rollback, each of
which appends to the audit log in its own transaction, under the registry's write lock (so
the entries a reader sees are a prefix of the log). Each request first checks, in one cheap
read, whether any entry other than an admission (the webhooks' own records) was appended
since the last check; if so every cached lookup is dropped. A lookup that started before
such a drop is not stored (its answer may predate the change). Entries also expire after
``ttl`` seconds, and at most ``size`` are kept: a revocation is never missed, and memory is
bounded whatever references manifests invent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from mlgate.hub.hf.errors import HfError
from mlgate.hub.hf.revisions import Resolved, resolve
from mlgate.registry.service import Registry

Lookup = Callable[[str, str], Resolved]


@dataclass(frozen=True)
class _Refusal:
    """A cached :class:`HfError`, raised afresh on each hit (exceptions carry tracebacks)."""

    status: int
    message: str
    code: str | None


@dataclass(frozen=True)
class _Entry:
    expires: float
    found: Resolved | _Refusal


class LookupCache:
    """Resolved references shared by the webhook's request threads."""

    def __init__(
        self, ttl: float = 5.0, size: int = 4096, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl, self.size, self.clock = ttl, size, clock
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._seen = 0  # the audit seq up to which the entries are known fresh
        self._generation = 0  # bumped on every drop

    def lookups(self, registry: Registry) -> Lookup:
        """The resolver for one request, after checking the audit log for changes."""
        with self._lock:
            seen = self._seen
        head, changed = registry.auditing.changed_since(seen)
        with self._lock:
            if changed:
                self._drop()
            self._seen = max(self._seen, head)
        return lambda name, revision: self._lookup(registry, name, revision)

    def _drop(self) -> None:
        self._entries.clear()
        self._generation += 1

    def _lookup(self, registry: Registry, name: str, revision: str) -> Resolved:
        key = (name, revision)
        with self._lock:
            entry = self._entries.get(key)
            generation = self._generation
        if entry is None or entry.expires <= self.clock():
            entry = _Entry(self.clock() + self.ttl, _resolve(registry, name, revision))
            self._store(key, entry, generation)
        if isinstance(entry.found, _Refusal):
            raise HfError(entry.found.status, entry.found.message, entry.found.code)
        return entry.found

    def _store(self, key: tuple[str, str], entry: _Entry, generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                return
            self._entries.pop(key, None)
            if len(self._entries) >= self.size:
                del self._entries[next(iter(self._entries))]  # the oldest stored
            self._entries[key] = entry


def _resolve(registry: Registry, name: str, revision: str) -> Resolved | _Refusal:
    try:
        return resolve(registry, name, revision)
    except HfError as e:
        return _Refusal(e.status, e.message, e.code)
