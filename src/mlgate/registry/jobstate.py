"""Durable state of background jobs (the ``jobs`` table): what the queue engine cannot keep.

The queue (huey, :mod:`mlgate.hub.jobs`) carries only a job's key to a worker and forgets the
message once a worker takes it, so a worker killed mid-job would lose it. The registry keeps
each job here instead: idempotent by key (``fetch:org/name@<commit>``, ``rescan:m@3:<rules>``;
submitting a key twice runs it once), its state (queued, running, done, failed), attempts,
progress, result and last error, and while it runs a *lease* (``lease_until``, ``worker``)
that the worker renews. A job whose lease expired is handed out again (at-least-once; the
jobs are idempotent, so a second run is safe), until ``max_attempts`` is spent. A queued job
waiting for a retry keeps in ``lease_until`` the time it may run again, so that a duplicate
message (re-enqueued after a crash) cannot cut its backoff short.

Every transition is one short write transaction, so two workers never both claim a job.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Row, select

from mlgate.registry import schema as t
from mlgate.registry import store
from mlgate.registry.context import RegistryContext
from mlgate.registry.errors import NotFound, RegistryError
from mlgate.registry.roles import Action

# Who may ask for each kind of job: a reader's request may trigger a pull-through fetch;
# scanning work (and publishing an approved pull-through version) needs the scan right.
KINDS: dict[str, Action] = {
    "fetch": Action.DOWNLOAD,
    "ingest": Action.INGEST,
    "upload": Action.INGEST,
    "scan": Action.SCAN,
    "rescan": Action.SCAN,
    "publish": Action.SCAN,
}
_MAX_KEY = 512
_MAX_ERROR = 2000  # an error message (possibly quoting a hostile server) is kept short
_MAX_LIST = 1000


class JobState(StrEnum):
    """Where a job stands: waiting for a worker, leased to one, or finished."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class Job:
    """A job as recorded (what the API shows as its progress)."""

    key: str
    kind: str
    args: dict[str, Any]
    state: JobState
    attempts: int
    progress: dict[str, Any] | None
    result: dict[str, Any] | None
    error: str | None
    lease_until: str | None
    worker: str | None
    created_at: str
    updated_at: str

    def to_json(self) -> dict[str, Any]:
        """JSON form, for the API and ``--format json``."""
        data = dict(vars(self))
        data["state"] = self.state.value
        return data


@dataclass(frozen=True)
class Submitted:
    """A submitted job; ``enqueue`` is true when the caller must put its key on the queue
    (new, or a failed job given a fresh start), false when it is already underway or done."""

    job: Job
    enqueue: bool


def lease_end(seconds: float) -> str:
    """The stored timestamp ``seconds`` from now."""
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="microseconds")


class Jobs:
    """Submit, claim, renew, finish and fail jobs; read their state."""

    def __init__(self, ctx: RegistryContext) -> None:
        self.ctx = ctx

    # -- front ends ---------------------------------------------------------------------

    def submit(self, key: str, kind: str, args: Mapping[str, Any]) -> Submitted:
        """Record job ``key`` unless it exists; a failed one is queued again."""
        if kind not in KINDS:
            raise RegistryError(f"unknown job kind {kind!r}")
        with self.ctx.write(KINDS[kind]) as conn:
            return submit_in(conn, key, kind, args)

    def get(self, key: str) -> Job:
        """The job ``key``."""
        with self.ctx.read(Action.READ) as conn:
            row = _row(conn, key)
        if row is None:
            raise NotFound(f"no job {key!r}")
        return _job(row)

    def many(self, keys: list[str]) -> list[Job]:
        """The jobs among ``keys`` that exist, in the order given."""
        found: dict[str, Job] = {}
        with self.ctx.read(Action.READ) as conn:
            for start in range(0, len(keys), _MAX_LIST):
                chunk = keys[start : start + _MAX_LIST]
                rows = conn.execute(select(t.jobs).where(t.jobs.c.key.in_(chunk)))
                found.update((r.key, _job(r)) for r in rows)
        return [found[k] for k in keys if k in found]

    def recent(self, state: JobState | None = None, limit: int = 100) -> list[Job]:
        """The most recently updated jobs (in ``state``), at most ``limit`` (<= 1000)."""
        query = select(t.jobs).order_by(t.jobs.c.updated_at.desc(), t.jobs.c.key)
        if state is not None:
            query = query.where(t.jobs.c.state == state.value)
        with self.ctx.read(Action.READ) as conn:
            rows = conn.execute(query.limit(max(1, min(limit, _MAX_LIST))))
            return [_job(r) for r in rows]

    # -- workers ------------------------------------------------------------------------

    def claim(self, key: str, worker: str, lease: float, max_attempts: int) -> Job | None:
        """Lease job ``key`` to ``worker`` if it is queued or its last lease expired; None
        when another worker holds it or it is finished. A job whose attempts are spent is
        failed here (a job that kills its worker every time must not loop for ever)."""
        with self.ctx.write(Action.SCAN) as conn:
            row = _row(conn, key)
            if row is None or not _claimable(row):
                return None
            if row.attempts >= max_attempts:
                why = f"gave up after {row.attempts} attempts: {row.error or 'worker lost'}"
                _update(conn, key, state=JobState.FAILED, error=_short(why), lease_until=None)
                return None
            _update(
                conn,
                key,
                state=JobState.RUNNING,
                attempts=row.attempts + 1,
                lease_until=lease_end(lease),
                worker=worker,
            )
            return _job(_must(conn, key))

    def heartbeat(
        self, key: str, worker: str, lease: float, progress: Mapping[str, Any] | None = None
    ) -> bool:
        """Renew ``worker``'s lease on ``key`` (and record ``progress``); False when the
        worker no longer holds it (it expired and another worker took the job over)."""
        values: dict[str, Any] = {"lease_until": lease_end(lease)}
        if progress is not None:
            values["progress"] = _dump(progress)
        with self.ctx.write(Action.SCAN) as conn:
            return _owned_update(conn, key, worker, values)

    def finish(self, key: str, worker: str, result: Mapping[str, Any]) -> bool:
        """Mark ``key`` done with ``result``; False (nothing changed) if ``worker`` lost it."""
        values = {
            "state": JobState.DONE.value,
            "result": _dump(result),
            "error": None,
            "lease_until": None,
        }
        with self.ctx.write(Action.SCAN) as conn:
            return _owned_update(conn, key, worker, values)

    def attempt_failed(
        self, key: str, worker: str, error: str, retry_in: float | None
    ) -> Job | None:
        """Record a failed attempt: queued again to run in ``retry_in`` seconds, or failed
        for good (``retry_in`` None); None if ``worker`` no longer held the job."""
        state = JobState.FAILED if retry_in is None else JobState.QUEUED
        not_before = None if retry_in is None else lease_end(retry_in)
        values = {"state": state.value, "error": _short(error), "lease_until": not_before}
        with self.ctx.write(Action.SCAN) as conn:
            if not _owned_update(conn, key, worker, values):
                return None
            return _job(_must(conn, key))

    def expired(self) -> list[Job]:
        """Running jobs whose lease has expired (their worker died or hangs)."""
        with self.ctx.read(Action.READ) as conn:
            rows = conn.execute(
                select(t.jobs).where(
                    t.jobs.c.state == JobState.RUNNING.value,
                    t.jobs.c.lease_until < store.now(),
                )
            )
            return [_job(r) for r in rows]

    def queued(self) -> list[Job]:
        """Every queued job (what a worker re-enqueues on start-up)."""
        with self.ctx.read(Action.READ) as conn:
            rows = conn.execute(select(t.jobs).where(t.jobs.c.state == JobState.QUEUED.value))
            return [_job(r) for r in rows]


def submit_in(conn: Connection, key: str, kind: str, args: Mapping[str, Any]) -> Submitted:
    """:meth:`Jobs.submit` inside the caller's write transaction (the role check is the
    caller's), so that recording a request and its job commit together."""
    if not key or len(key) > _MAX_KEY or not key.isprintable():
        raise RegistryError(f"a job key must be 1 to {_MAX_KEY} printable characters")
    row = _row(conn, key)
    if row is None:
        at = store.now()
        conn.execute(
            t.jobs.insert().values(
                key=key,
                kind=kind,
                args=_dump(args),
                state=JobState.QUEUED.value,
                attempts=0,
                created_at=at,
                updated_at=at,
            )
        )
        return Submitted(_job(_must(conn, key)), True)
    if row.state == JobState.FAILED.value:
        _update(
            conn,
            key,
            state=JobState.QUEUED,
            attempts=0,
            progress=None,
            worker=None,
            lease_until=None,
        )
        return Submitted(_job(_must(conn, key)), True)
    return Submitted(_job(row), False)


def _claimable(row: Row[Any]) -> bool:
    # Queued: once its retry time (if any) has come; running: once its lease has expired.
    if row.state not in (JobState.QUEUED.value, JobState.RUNNING.value):
        return False
    return (row.lease_until or "") <= store.now()


def _owned_update(conn: Connection, key: str, worker: str, values: dict[str, Any]) -> bool:
    done = conn.execute(
        t.jobs.update()
        .where(
            t.jobs.c.key == key,
            t.jobs.c.worker == worker,
            t.jobs.c.state == JobState.RUNNING.value,
        )
        .values(updated_at=store.now(), **values)
    )
    return bool(done.rowcount)


def _update(conn: Connection, key: str, **values: Any) -> None:
    plain = {k: v.value if isinstance(v, JobState) else v for k, v in values.items()}
    conn.execute(t.jobs.update().where(t.jobs.c.key == key).values(updated_at=store.now(), **plain))


def _row(conn: Connection, key: str) -> Row[Any] | None:
    return conn.execute(select(t.jobs).where(t.jobs.c.key == key)).first()


def _must(conn: Connection, key: str) -> Row[Any]:
    return conn.execute(select(t.jobs).where(t.jobs.c.key == key)).one()


def _job(r: Row[Any]) -> Job:
    return Job(
        r.key,
        r.kind,
        json.loads(r.args),
        JobState(r.state),
        r.attempts,
        _load(r.progress),
        _load(r.result),
        r.error,
        r.lease_until,
        r.worker,
        r.created_at,
        r.updated_at,
    )


def _dump(data: Mapping[str, Any]) -> str:
    return json.dumps(dict(data), sort_keys=True)


def _load(text: str | None) -> dict[str, Any] | None:
    return None if text is None else dict(json.loads(text))


def _short(error: str) -> str:
    return error if len(error) <= _MAX_ERROR else error[: _MAX_ERROR - 1] + "…"
