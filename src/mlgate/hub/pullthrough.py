"""Pull-through quarantine: a repo the hub does not have is fetched from its upstream into
quarantine by a background job, never served straight through.

In the request path (:func:`request`), the hub only resolves the revision to an immutable
commit on the upstream (one metadata call, shared by concurrent requests and cached a few
seconds), records the request (:class:`mlgate.registry.upstream.Upstream`: one row and one
fetch job per repo + commit, every requester audited) and enqueues the job. The answer is a
:class:`PullState` that the route turns into ``403 GatedRepo`` with its message until the
version is approved (or published at once by the ``auto_publish_below`` policy).

In a worker, :func:`fetch` runs the job: ingest ``hf://repo@commit`` from the upstream as
the worker's identity (the registry model name is the repo id), scan, link the version to
the request and apply the auto-publish policy. Each step is skipped when already done, so a
job re-run after its worker was killed neither fetches nor records anything twice.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from mlgate.hub.jobs import JobQueue, Progress, submit
from mlgate.hub.settings import HubSettings
from mlgate.registry.errors import IngestRefused, NotFound, PermissionDenied, RegistryError
from mlgate.registry.ingest import HubOptions, check_name
from mlgate.registry.jobstate import Job, JobState
from mlgate.registry.lifecycle import SERVED, State
from mlgate.registry.records import Version
from mlgate.registry.service import Registry
from mlgate.registry.sources._http import HttpStatusError
from mlgate.registry.sources.base import SourceError
from mlgate.registry.sources.huggingface import resolve_revision
from mlgate.registry.upstream import fetch_key, publish_key

if TYPE_CHECKING:
    from mlgate.hub.runner import WorkerSettings

RESOLVE_TTL = 10.0  # seconds a resolved revision is reused (a branch may move upstream)
_MAX_CACHED = 1024
_STRIPES = 64
_MAX_MESSAGE = 300


class PullStatus(StrEnum):
    """Where a pulled-through repo commit stands, as the hub answers it."""

    FETCHING = "fetching"
    FAILED = "failed"
    PENDING = "pending"
    REJECTED = "rejected"
    REVOKED = "revoked"
    SERVED = "served"


@dataclass(frozen=True)
class PullState:
    """``status`` and a one-line ``message`` safe to send as ``X-Error-Message`` (printable
    ASCII, bounded); ``version`` once fetched (served when ``status`` is SERVED)."""

    status: PullStatus
    message: str
    repo_id: str
    commit: str
    version: Version | None = None


class UpstreamNotFound(NotFound):
    """The upstream has no such repo or revision; ``error_code`` is the Hub's code for it
    (``RepoNotFound``, ``RevisionNotFound``), which clients map to their own errors."""

    def __init__(self, message: str, error_code: str) -> None:
        super().__init__(message)
        self.error_code = error_code


def request(
    registry: Registry, settings: HubSettings, queue: JobQueue, repo_id: str, revision: str
) -> PullState:
    """Ask for ``repo_id`` at ``revision`` through the upstream, as ``registry``'s actor (the
    authenticated requester): resolve, record, enqueue one fetch; the state to answer with.
    Blocking (one upstream metadata call at most): call it from a worker thread."""
    commit = resolve_upstream(settings, repo_id, revision)
    assert settings.upstream is not None  # resolve_upstream refused otherwise
    _, submitted = registry.upstream.record(repo_id, commit, revision, settings.upstream)
    if submitted.enqueue:
        queue.enqueue(submitted.job.key)
    return state_of(registry, repo_id, commit)


def resolve_upstream(settings: HubSettings, repo_id: str, revision: str) -> str:
    """The commit ``revision`` of ``repo_id`` names on the hub's upstream (one metadata call,
    shared by concurrent callers and cached a few seconds); :class:`UpstreamNotFound`."""
    if settings.upstream is None:
        raise RegistryError("this hub has no upstream: start it with --upstream URL")
    return _RESOLVER.resolve(settings.upstream, settings.upstream_token, repo_id, revision)


def upstream_options(job: Job, settings: WorkerSettings) -> HubOptions:
    """How a worker reaches the upstream a job names: only the worker's own ``--upstream``
    when it has one (its token is sent nowhere else)."""
    endpoint = str(job.args["endpoint"])
    if settings.upstream is None:
        return HubOptions(endpoint, None)
    if endpoint.rstrip("/") != settings.upstream.rstrip("/"):
        raise PermissionDenied(
            f"job for {endpoint}, but this worker fetches from {settings.upstream} only"
        )
    return HubOptions(endpoint, settings.upstream_token)


def approved(registry: Registry, queue: JobQueue, ref: str) -> bool:
    """After a reviewer approved ``ref``: if it came in through pull-through, have a worker
    publish it (as ``mlgate-policy``); whether a job was submitted. Workers also find such
    versions by themselves every minute (an approval made with the CLI)."""
    if ref not in registry.upstream.approved_pulls():
        return False
    submit(registry, queue, publish_key(ref), "publish", {"ref": ref})
    return True


def state_of(registry: Registry, repo_id: str, commit: str) -> PullState:
    """The state of a pull-through request (for the route, or to poll)."""
    pulled = registry.upstream.find(repo_id, commit)
    if pulled is None:
        raise NotFound(f"{repo_id}@{commit} was never requested through the upstream")
    if pulled.version is not None:
        return _version_state(registry, repo_id, commit, registry.show(pulled.version))
    job = registry.jobs.get(fetch_key(repo_id, commit))
    if job.state is JobState.FAILED:
        why = f"quarantined: fetching from upstream failed: {job.error}"
        return PullState(PullStatus.FAILED, _header_safe(why), repo_id, commit)
    step = (job.progress or {}).get("step", job.state.value)
    why = f"quarantined: fetching from upstream ({step})"
    return PullState(PullStatus.FETCHING, _header_safe(why), repo_id, commit)


def _version_state(registry: Registry, repo_id: str, commit: str, version: Version) -> PullState:
    if version.state in SERVED:
        return PullState(PullStatus.SERVED, "", repo_id, commit, version)
    if version.state is State.REJECTED:
        reason = next((d.reason for d in reversed(version.decisions) if d.decision == "reject"), "")
        status, why = PullStatus.REJECTED, f"rejected: {reason}"
    elif version.state is State.REVOKED:
        status, why = PullStatus.REVOKED, f"revoked: {version.history[-1].reason}"
    elif version.state is State.APPROVED:
        status, why = PullStatus.PENDING, "quarantined: approved, being published"
    else:
        pending = registry.pending_reason(version) or version.state.value
        status, why = PullStatus.PENDING, f"quarantined: pending review ({pending})"
    return PullState(status, _header_safe(why), repo_id, commit, version)


def _header_safe(text: str) -> str:
    """One printable ASCII line (no CR/LF: header injection), at most 300 characters."""
    clean = "".join(c if " " <= c <= "~" else "?" for c in text)
    return clean if len(clean) <= _MAX_MESSAGE else clean[: _MAX_MESSAGE - 3] + "..."


def fetch(
    registry: Registry, job: Job, settings: WorkerSettings, progress: Progress
) -> Mapping[str, Any]:
    """The fetch job: quarantine, scan, link and (by policy) publish ``repo@commit``."""
    repo_id, commit = str(job.args["repo_id"]), str(job.args["commit"])
    hub = upstream_options(job, settings)
    version = registry.upstream.version_for(repo_id, commit)
    if version is None:
        progress("downloading", endpoint=hub.endpoint)
        version = registry.ingest(f"hf://{repo_id}@{commit}", name=repo_id, hub=hub)
    if version.state is State.QUARANTINED and version.scan_report is None:
        progress("scanning")
        version = registry.scan(version.ref)
    # Published by policy before it is linked: until then the hub answers "fetching", never
    # "pending review" for a version about to be served.
    version = registry.upstream.auto_publish(version)
    registry.upstream.link(repo_id, commit, version)
    return {"version": version.ref, "state": version.state.value, "risk": version.risk}


class _Resolver:
    """Revision -> commit on the upstream, single-flight and cached ``RESOLVE_TTL`` seconds:
    a burst of requests for one repo costs the upstream one metadata call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stripes = [threading.Lock() for _ in range(_STRIPES)]
        self._cache: OrderedDict[tuple[str, ...], tuple[str, float]] = OrderedDict()

    def resolve(self, endpoint: str, token: str | None, repo_id: str, revision: str) -> str:
        # The token is part of the key: what one token may see says nothing of another.
        secret = hashlib.sha256((token or "").encode()).hexdigest()
        key = (endpoint, secret, repo_id, revision)
        with self._stripes[hash(key) % _STRIPES]:
            cached = self._get(key)
            if cached is not None:
                return cached
            commit = _resolve(endpoint, token, repo_id, revision)
            self._put(key, commit)
            return commit

    def _get(self, key: tuple[str, ...]) -> str | None:
        with self._lock:
            hit = self._cache.get(key)
            if hit is None or hit[1] < time.monotonic():
                return None
            return hit[0]

    def _put(self, key: tuple[str, ...], commit: str) -> None:
        with self._lock:
            self._cache[key] = (commit, time.monotonic() + RESOLVE_TTL)
            self._cache.move_to_end(key)
            while len(self._cache) > _MAX_CACHED:
                self._cache.popitem(last=False)


def _resolve(endpoint: str, token: str | None, repo_id: str, revision: str) -> str:
    try:
        check_name(repo_id)
    except IngestRefused as e:
        raise UpstreamNotFound(str(e), "RepoNotFound") from e
    try:
        return resolve_revision(endpoint, repo_id, revision, token=token)
    except SourceError as e:
        status = e if isinstance(e, HttpStatusError) else e.__cause__
        if isinstance(status, HttpStatusError) and status.status in (401, 404):
            code = "RevisionNotFound" if status.error_code == "RevisionNotFound" else "RepoNotFound"
            raise UpstreamNotFound(f"{repo_id}@{revision}: not found upstream", code) from e
        raise RegistryError(f"the upstream hub failed for {repo_id}@{revision}: {e}") from e


_RESOLVER = _Resolver()
