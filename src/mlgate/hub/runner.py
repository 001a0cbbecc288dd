"""What a worker does with a job key: claim the job's lease, run it, record the outcome.

At-least-once: a job is leased (``lease`` seconds) to the attempt that claimed it, and a
small heartbeat thread renews the lease while the work runs (it does nothing else: the work
itself runs in the queue's worker). A ``watch`` message scheduled just after the lease ends
re-enqueues the job if nobody renewed it (its worker was killed); the next claim takes it
over. A failure is retried with exponential backoff until ``max_attempts``, then the job is
failed with its error; refusals (permission, missing model, lifecycle) fail at once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from mlgate.errors import MlgateError
from mlgate.hub import intake_jobs
from mlgate.hub.jobs import JobQueue, Progress, submit
from mlgate.hub.pullthrough import fetch
from mlgate.registry.errors import NotFound, PermissionDenied, TransitionRefused
from mlgate.registry.jobstate import Job, JobState
from mlgate.registry.rescan import Baseline
from mlgate.registry.service import Registry
from mlgate.registry.upstream import publish_key

log = logging.getLogger("mlgate.worker")

# Retrying these cannot help: the job is failed at its first attempt.
_FINAL = (PermissionDenied, NotFound, TransitionRefused)

Handler = Callable[[Registry, Job, "WorkerSettings", Progress], Mapping[str, Any]]


@dataclass(frozen=True)
class WorkerSettings:
    """``lease``: seconds an attempt holds a job between heartbeats' renewals; after
    ``max_attempts`` attempts a job fails; a retry waits ``retry_delay`` x 2^(attempt-1)
    seconds (at most ``max_retry_delay``). ``upstream``/``upstream_token``: the hub to fetch
    pull-through repos from (the token is only ever sent there)."""

    lease: float = 60.0
    max_attempts: int = 5
    retry_delay: float = 5.0
    max_retry_delay: float = 3600.0
    upstream: str | None = None
    upstream_token: str | None = None

    def backoff(self, attempt: int) -> float:
        """Seconds before retrying after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.max_retry_delay, self.retry_delay * 2 ** max(0, attempt - 1)))


class Runner:
    """Runs jobs from ``queue`` against ``registry`` (acting as the worker's identity)."""

    def __init__(self, registry: Registry, queue: JobQueue, settings: WorkerSettings) -> None:
        self.registry = registry
        self.queue = queue
        self.settings = settings
        self.host = f"{socket.gethostname()}:{os.getpid()}"

    def run(self, key: str) -> None:
        """Claim ``key`` and run it, unless another attempt holds it or it is finished."""
        name = f"{self.host}:{uuid.uuid4().hex[:8]}"  # one lease holder per attempt
        job = self.registry.jobs.claim(key, name, self.settings.lease, self.settings.max_attempts)
        if job is None:
            return
        self.queue.watch(key, job.attempts, self.settings.lease + 1)
        log.info("running %s (attempt %d)", key, job.attempts)
        with _Heartbeat(self.registry, key, name, self.settings.lease) as beat:
            try:
                result = HANDLERS[job.kind](self.registry, job, self.settings, beat.progress)
            except Exception as e:  # any failure is the job's error: recorded, retried
                self._failed(job, name, e)
                return
        if not self.registry.jobs.finish(key, name, result):
            log.warning("%s: finished after its lease was taken over; result dropped", key)

    def _failed(self, job: Job, name: str, error: Exception) -> None:
        text = str(error) if isinstance(error, MlgateError) else f"{type(error).__name__}: {error}"
        final = isinstance(error, _FINAL) or job.attempts >= self.settings.max_attempts
        delay = None if final else self.settings.backoff(job.attempts)
        recorded = self.registry.jobs.attempt_failed(job.key, name, text, delay)
        log.warning("%s attempt %d failed%s: %r", job.key, job.attempts, " (final)" * final, text)
        if recorded is not None and delay is not None:
            self.queue.enqueue(job.key, delay)

    def watch(self, key: str, attempt: int) -> None:
        """Re-enqueue ``key`` if attempt ``attempt`` is still running with an expired lease
        (its worker died); look again at the lease's end while it is renewed."""
        try:
            job = self.registry.jobs.get(key)
        except NotFound:
            return
        if job.state is not JobState.RUNNING or job.attempts != attempt or not job.lease_until:
            return
        left = _seconds_until(job.lease_until)
        if left > 0:
            self.queue.watch(key, attempt, left + 1)
            return
        log.warning("%s: lease of %s expired; enqueued again", key, job.worker)
        self.queue.enqueue(key)

    def sweep(self) -> None:
        """Re-enqueue every job whose lease expired, and have approved pull-through
        versions published (periodic, and at start-up)."""
        for job in self.registry.jobs.expired():
            log.warning("%s: lease of %s expired; enqueued again", job.key, job.worker)
            self.queue.enqueue(job.key)
        for ref in self.registry.upstream.approved_pulls():
            submit(self.registry, self.queue, publish_key(ref), "publish", {"ref": ref})

    def start_up(self) -> int:
        """Re-enqueue expired and queued jobs (a queue that lost its messages, e.g. a Redis
        restarted without persistence, strands nothing); duplicates are claimed once."""
        self.sweep()
        queued = self.registry.jobs.queued()
        for job in queued:  # a retry keeps its backoff
            self.queue.enqueue(job.key, _seconds_until(job.lease_until) if job.lease_until else 0)
        return len(queued)


def _seconds_until(stamp: str) -> float:
    return (datetime.fromisoformat(stamp) - datetime.now(UTC)).total_seconds()


class _Heartbeat:
    """Renews a job's lease every ``lease / 3`` seconds until the job ends; ``progress``
    records a step (and renews at once)."""

    def __init__(self, registry: Registry, key: str, worker: str, lease: float) -> None:
        self.registry, self.key, self.worker, self.lease = registry, key, worker, lease
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"lease {key}", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def progress(self, step: str, **details: Any) -> None:
        self._renew({"step": step, **details})

    def _loop(self) -> None:
        while not self._stop.wait(self.lease / 3):
            self._renew(None)

    def _renew(self, progress: Mapping[str, Any] | None) -> None:
        try:
            held = self.registry.jobs.heartbeat(self.key, self.worker, self.lease, progress)
        except MlgateError as e:  # the database is away: the lease may lapse, a retry follows
            log.warning("%s: cannot renew the lease: %s", self.key, e)
            return
        if not held:
            log.warning("%s: lease lost to another attempt", self.key)


def _rescan(
    registry: Registry, job: Job, settings: WorkerSettings, progress: Progress
) -> Mapping[str, Any]:
    ref = str(job.args["ref"])
    # The verdict before this job's first attempt: a re-run after a crash compares with
    # it, not with the report the crashed attempt may already have stored.
    stashed = (job.progress or {}).get("baseline")
    baseline = Baseline.from_json(stashed) if stashed else registry.rescans.baseline(ref)
    progress("scanning", baseline=baseline.to_json())
    return registry.rescans.rescan(ref, baseline).to_json()


def _publish(
    registry: Registry, job: Job, settings: WorkerSettings, progress: Progress
) -> Mapping[str, Any]:
    version = registry.upstream.publish_approved(str(job.args["ref"]))
    return {"version": version.ref, "state": version.state.value}


HANDLERS: dict[str, Handler] = {
    "fetch": fetch,
    "ingest": intake_jobs.ingest,
    "upload": intake_jobs.ingest_upload,
    "scan": intake_jobs.scan,
    "rescan": _rescan,
    "publish": _publish,
}
