"""The job queue: huey carries job keys from the hub (or the CLI) to ``mlgate worker``.

Two engines, one set of tasks:

* embedded (default): :class:`huey.SqliteHuey` in ``<data dir>/queue.db``: no extra service,
  workers on the same node;
* ``--queue redis://host:port/db[?name=QUEUE]``: :class:`huey.RedisHuey`, so workers on other
  machines share the queue (``name`` keeps several queues apart on one Redis).

A message holds nothing but a job key: the job itself (arguments, state, attempts, lease)
lives in the registry's ``jobs`` table (:mod:`mlgate.registry.jobstate`), because huey drops
a message once a worker takes it and a killed worker would lose it. Messages are JSON, never
pickle (huey's default): a worker must not execute whatever another client of a shared Redis
wrote there.

Tasks: ``run`` (claim and run a job), ``watch`` (re-enqueue a job whose lease expired: its
worker died), and ``sweep``, a periodic task (every minute, and at worker start-up) that
re-enqueues every expired lease.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from huey import RedisHuey, SqliteHuey, crontab
from huey.registry import Message
from huey.serializer import Serializer

from mlgate.errors import ConfigError
from mlgate.registry.errors import RegistryError
from mlgate.registry.jobstate import Job, JobState, Submitted
from mlgate.registry.service import Registry

QUEUE_FILE = "queue.db"
DEFAULT_NAME = "mlgate"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_MAX_MESSAGE = 64 * 1024  # a job key and huey's fields; anything larger is not ours
_TIMES = ("eta", "expires_resolved")


class Progress(Protocol):
    """How a running job reports a step (``progress("downloading", files=3)``); it also
    renews the job's lease."""

    def __call__(self, step: str, **details: Any) -> None: ...


class JobRunner(Protocol):
    """What a worker plugs into the queue (:class:`mlgate.hub.runner.Runner`)."""

    def run(self, key: str) -> None: ...

    def watch(self, key: str, attempt: int) -> None: ...

    def sweep(self) -> None: ...


class JsonSerializer(Serializer):  # type: ignore[misc]
    """huey messages as bounded JSON: a key in, a key out, nothing executable."""

    def _serialize(self, data: Any) -> bytes:
        if not isinstance(data, Message):
            raise TypeError(f"the mlgate queue carries task messages only, not {type(data)}")
        if data.on_complete or data.on_error or data.chord_config:
            raise TypeError("the mlgate queue does not chain tasks")
        fields = data._asdict()
        for name in _TIMES:
            if isinstance(fields[name], datetime):
                fields[name] = fields[name].isoformat()
        return json.dumps(fields).encode()

    def _deserialize(self, data: bytes) -> Any:
        if len(data) > _MAX_MESSAGE:
            raise ValueError(f"queue message of {len(data)} bytes refused")
        fields = json.loads(data)
        if not isinstance(fields, dict) or not isinstance(fields.get("args"), list):
            raise ValueError("not an mlgate queue message")
        if not all(isinstance(a, str | int) for a in fields["args"]):
            raise ValueError("queue message arguments must be strings or integers")
        values: dict[str, Any] = {name: fields.get(name) for name in Message._fields}
        values["args"] = tuple(fields["args"])
        values["kwargs"] = {}
        for name in _TIMES:
            if isinstance(values[name], str):
                values[name] = datetime.fromisoformat(values[name])
        return Message(**values)


class JobQueue:
    """Enqueue job keys; in a worker, :attr:`runner` runs what arrives."""

    def __init__(self, huey: Any, where: str) -> None:
        self.huey = huey
        self.where = where
        self.runner: JobRunner | None = None
        self._run = huey.task(name="mlgate_run")(self._run_task)
        self._watch = huey.task(name="mlgate_watch")(self._watch_task)
        huey.periodic_task(crontab(), name="mlgate_sweep")(self._sweep_task)

    def enqueue(self, key: str, delay: float = 0.0) -> None:
        """Have a worker run job ``key`` (after ``delay`` seconds: a retry's backoff)."""
        if delay > 0:
            self._run.schedule(args=(key,), delay=delay)
        else:
            self._run(key)

    def watch(self, key: str, attempt: int, delay: float) -> None:
        """Check in ``delay`` seconds that attempt ``attempt`` of ``key`` still holds its
        lease; if its worker died, the job is enqueued again."""
        self._watch.schedule(args=(key, attempt), delay=delay)

    def pending(self) -> int:
        """Messages waiting (ready or scheduled)."""
        return int(self.huey.pending_count()) + int(self.huey.scheduled_count())

    def _runner(self) -> JobRunner:
        if self.runner is None:
            raise ConfigError("this queue has no runner: jobs run in `mlgate worker`")
        return self.runner

    def _run_task(self, key: str) -> None:
        self._runner().run(key)

    def _watch_task(self, key: str, attempt: int) -> None:
        self._runner().watch(key, attempt)

    def _sweep_task(self) -> None:
        self._runner().sweep()


def submit(
    registry: Registry, queue: JobQueue, key: str, kind: str, args: dict[str, Any]
) -> Submitted:
    """Submit job ``key`` and enqueue it unless it is already underway or done."""
    submitted = registry.jobs.submit(key, kind, args)
    enqueue_submitted(queue, [submitted])
    return submitted


def enqueue_submitted(queue: JobQueue, submitted: list[Submitted]) -> int:
    """Enqueue the jobs among ``submitted`` that need a worker; how many."""
    fresh = [s.job.key for s in submitted if s.enqueue]
    for key in fresh:
        queue.enqueue(key)
    return len(fresh)


def wait_for(registry: Registry, keys: list[str], timeout: float, poll: float = 0.5) -> list[Job]:
    """The jobs ``keys`` once every one is done or failed; :class:`RegistryError` after
    ``timeout`` seconds (no worker running?)."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = registry.jobs.many(keys)
        left = [j for j in jobs if j.state not in (JobState.DONE, JobState.FAILED)]
        if not left:
            return jobs
        if time.monotonic() > deadline:
            raise RegistryError(
                f"{len(left)} of {len(keys)} jobs unfinished after {timeout:g} s "
                f"(e.g. {left[0].key}: {left[0].state.value}); is `mlgate worker` running "
                "on this queue?"
            )
        time.sleep(poll)


def open_queue(data_dir: Path, queue_url: str | None = None) -> JobQueue:
    """The queue of the registry in ``data_dir``: embedded, or on Redis at ``queue_url``."""
    serializer = JsonSerializer()
    if queue_url is None:
        path = Path(data_dir) / QUEUE_FILE
        huey = SqliteHuey(DEFAULT_NAME, filename=str(path), results=False, serializer=serializer)
        return JobQueue(huey, str(path))
    url, name = _redis_url(queue_url)
    huey = RedisHuey(name, url=url, results=False, serializer=serializer)
    return JobQueue(huey, f"{_redacted(url)} ({name})")


def _redis_url(queue_url: str) -> tuple[str, str]:
    """(URL for redis, queue name) from ``redis://host:port/db?name=QUEUE``."""
    parts = urlsplit(queue_url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(
            f"queue {_redacted(queue_url)!r}: use redis://host:port/db[?name=QUEUE] "
            "(or leave it out for the embedded queue in the data dir)"
        )
    query = parse_qs(parts.query)
    name = query.pop("name", [DEFAULT_NAME])[-1]
    if not _NAME.fullmatch(name):
        raise ConfigError(f"queue name {name!r}: letters, digits, '.', '_', ':', '-' only")
    return urlunsplit(parts._replace(query=urlencode(query, doseq=True))), name


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(parts.password, "***")))
