"""Ingest and scan asked through the management API, run as background jobs.

Fetching a multi-GB model, hashing it and scanning it take minutes: the API only checks who
asks and what (the role, the source, the upstream commit the revision names), submits a job
and answers ``202`` with it; a worker does the work. The job runs **as the requester**, with
the roles their token carried (read again when it runs): the version's ``ingested_by``, the
separation of duties and the audit log name the person who asked, never the worker. The
queue carries only the job's key; who asked is in the job's row in the registry database,
which only the hub writes, so nothing a queue server holds can change an identity.

Jobs are idempotent: an ingest is keyed by model and upstream commit (a retry after a
killed worker finds the version already there and does not ingest it twice), a scan by
version, rules and policy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlgate.hub.jobs import JobQueue, Progress, submit
from mlgate.hub.pullthrough import resolve_upstream, upstream_options
from mlgate.hub.settings import HubSettings
from mlgate.registry.errors import IngestRefused, NotFound
from mlgate.registry.ingest import check_name
from mlgate.registry.jobstate import Job
from mlgate.registry.rescan import rules_version
from mlgate.registry.roles import Action, parse_roles
from mlgate.registry.service import Registry
from mlgate.registry.sources import SourceError, parse_source

if TYPE_CHECKING:
    from mlgate.hub.runner import WorkerSettings


def submit_ingest(
    registry: Registry,
    queue: JobQueue,
    settings: HubSettings,
    source: str,
    *,
    name: str | None = None,
    owner: str | None = None,
    scan: bool = True,
) -> Job:
    """Queue the ingest of ``hf://ORG/NAME[@REV]`` from the hub's upstream, as the actor."""
    registry.require(Action.INGEST)  # who may ingest is answered before what
    try:
        kind, parsed = parse_source(source)
    except SourceError as e:
        raise IngestRefused(f"cannot ingest {source}: {e}") from e
    if kind != "huggingface" or parsed["repo_type"] != "model":
        raise IngestRefused("the hub ingests hf://ORG/NAME[@REV] model sources only")
    if settings.upstream is None:
        raise IngestRefused("this hub has no upstream: start it with --upstream URL")
    repo_id, revision = str(parsed["repo_id"]), str(parsed["revision"])
    model = name or repo_id
    check_name(model)
    commit = resolve_upstream(settings, repo_id, revision)
    args = {
        "repo_id": repo_id,
        "commit": commit,
        "revision": revision,
        "endpoint": settings.upstream,
        "name": model,
        "owner": owner,
        "scan": scan,
        **_requester(registry),
    }
    return submit(registry, queue, f"ingest:{model}:{repo_id}@{commit}", "ingest", args).job


def submit_scan(registry: Registry, queue: JobQueue, ref: str) -> Job:
    """Queue a scan (or re-scan) of version ``ref``, as the actor."""
    registry.require(Action.SCAN)
    version = registry.show(ref)  # the version must exist; the key names it by number
    policy = hashlib.sha256(registry.policy.to_json().encode()).hexdigest()[:12]
    key = f"scan:{version.ref}:{rules_version()}:{policy}"
    return submit(registry, queue, key, "scan", {"ref": version.ref, **_requester(registry)}).job


def ingest(
    registry: Registry, job: Job, settings: WorkerSettings, progress: Progress
) -> Mapping[str, Any]:
    """The ingest job: quarantine ``repo@commit`` as the requester, then scan it."""
    requester = as_requester(registry, job)
    name, repo_id, commit = str(job.args["name"]), str(job.args["repo_id"]), str(job.args["commit"])
    done = _already_ingested(requester, name, repo_id, commit)
    if done is not None:
        version = requester.show(done)
    else:
        progress("downloading", endpoint=job.args["endpoint"])
        version = requester.ingest(
            f"hf://{repo_id}@{commit}",
            name=name,
            owner=job.args.get("owner"),
            hub=upstream_options(job, settings),
            scan=False,
        )
    if job.args.get("scan", True) and version.scan_report is None:
        progress("scanning", version=version.ref)
        version = requester.scan(version.ref)
    return {"version": version.ref, "state": version.state.value, "risk": version.risk}


def scan(
    registry: Registry, job: Job, settings: WorkerSettings, progress: Progress
) -> Mapping[str, Any]:
    """The scan job, as the requester."""
    version = as_requester(registry, job).scan(str(job.args["ref"]))
    return {"version": version.ref, "state": version.state.value, "risk": version.risk}


def as_requester(registry: Registry, job: Job) -> Registry:
    """The worker's registry acting as whoever submitted ``job`` through the API (the
    worker itself for jobs the system submits: rescans, pull-through)."""
    actor = job.args.get("actor")
    if not actor:
        return registry
    scope = job.args.get("scope")
    return registry.acting_as(str(actor), parse_roles(",".join(scope)) if scope else None)


def _requester(registry: Registry) -> dict[str, Any]:
    scope = registry.context.scope
    return {"actor": registry.actor, "scope": sorted(r.value for r in scope) if scope else None}


def _already_ingested(registry: Registry, name: str, repo_id: str, commit: str) -> str | None:
    """The version of ``name`` already ingested from ``repo_id@commit`` (a re-run)."""
    try:
        versions = registry.downloads.versions_of(name)
    except NotFound:
        return None
    same = (v.ref for v in versions if (v.source.repo_id, v.source.revision) == (repo_id, commit))
    return next(same, None)
