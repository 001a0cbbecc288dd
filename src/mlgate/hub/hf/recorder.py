"""Download records by group commit: every download is recorded before its bytes are sent,
without one write transaction per download.

A request hands its record to the recorder and waits; one thread writes every record that
arrived meanwhile in a single transaction (:meth:`Downloads.record_many`) and wakes the
requests. Nothing is lost to a crash (a request whose record is not committed never gets its
bytes), and the registry's single writer (the audit chain is linear) commits a burst of
downloads at the cost of one. Measured before this, one transaction per download: 79
requests/s with a p99 of 2.3 s for 16 concurrent clients on SQLite.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from mlgate.registry.downloads import DownloadRecord, Downloads
from mlgate.registry.errors import RegistryError

MAX_BATCH = 500
WAIT_SECONDS = 60.0


@dataclass
class _Pending:
    record: DownloadRecord
    done: threading.Event = field(default_factory=threading.Event)
    error: Exception | None = None


class DownloadRecorder:
    """Records downloads through ``downloads`` in batches, one writer thread per process."""

    def __init__(self, downloads: Downloads) -> None:
        self._downloads = downloads
        self._pending: list[_Pending] = []
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None

    def record(self, record: DownloadRecord) -> None:
        """Return once ``record`` is committed; raise why it was not."""
        pending = _Pending(record)
        with self._ready:
            self._pending.append(pending)
            self._start()
            self._ready.notify()
        if not pending.done.wait(WAIT_SECONDS):
            raise RegistryError(f"download record not written in {WAIT_SECONDS:g} s")
        if pending.error is not None:
            raise pending.error

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="download records", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._pending:
                    self._ready.wait()
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            self._commit(batch)

    def _commit(self, batch: Sequence[_Pending]) -> None:
        try:
            outcome: Sequence[Exception | None] = self._downloads.record_many(
                [p.record for p in batch]
            )
        except Exception as e:
            outcome = [e] * len(batch)
        for pending, error in zip(batch, outcome, strict=True):
            pending.error = error
            pending.done.set()
