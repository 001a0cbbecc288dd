"""Ingest and scan asked through the management API, run as background jobs.

Fetching a multi-GB model, hashing it and scanning it take minutes: the API only checks who
asks and what (the role, the source, the upstream commit the revision names), submits a job
and answers ``202`` with it; a worker does the work. The job runs **as the requester**, with
the roles their token carried (read again when it runs): the version's ``ingested_by``, the
separation of duties and the audit log name the person who asked, never the worker. The
queue carries only the job's key; who asked is in the job's row in the registry database,
which only the hub writes, so nothing a queue server holds can change an identity.

Jobs are idempotent: an ingest is keyed by model and upstream commit (a retry after a
killed worker finds the version already there and does not ingest it twice), an upload's
ingest by its session (:mod:`mlgate.hub.uploads`; the version records the session, so a
retry finds it too), a scan by version, rules and policy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from mlgate.hub.jobs import JobQueue, Progress, submit
from mlgate.hub.pullthrough import resolve_upstream, upstream_options
from mlgate.hub.settings import HubSettings
from mlgate.hub.uploads import UPLOADS_DIR, UploadStore
from mlgate.registry.errors import IngestRefused, NotFound
from mlgate.registry.ingest import Origin, check_name
from mlgate.registry.jobstate import Job
from mlgate.registry.records import Source, Version
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


def submit_upload(registry: Registry, queue: JobQueue, store: UploadStore, upload: str) -> Job:
    """Close upload session ``upload`` of the actor and queue its ingest, as the actor."""
    registry.require(Action.INGEST)
    manifest = store.commit(upload, registry.actor)
    args = {
        "upload": manifest.id,
        "name": manifest.name,
        "owner": manifest.owner,
        "scan": manifest.scan,
        **_requester(registry),
    }
    return submit(registry, queue, f"upload:{manifest.id}", "upload", args).job


def ingest(
    registry: Registry, job: Job, settings: WorkerSettings, progress: Progress
) -> Mapping[str, Any]:
    """The ingest job: quarantine ``repo@commit`` as the requester, then scan it."""
    requester = as_requester(registry, job)
    name, repo_id, commit = str(job.args["name"]), str(job.args["repo_id"]), str(job.args["commit"])
    done = _already_ingested(
        requester, name, lambda source: (source.repo_id, source.revision) == (repo_id, commit)
    )
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
    return _scanned(requester, version, job, progress)


def ingest_upload(
    registry: Registry, job: Job, settings: WorkerSettings, progress: Progress
) -> Mapping[str, Any]:
    """The upload job: quarantine a committed upload session as its uploader, scan it, and
    remove the session."""
    requester = as_requester(registry, job)
    store = UploadStore(registry.data_dir / UPLOADS_DIR)
    upload, name = str(job.args["upload"]), str(job.args["name"])
    tag = f"upload:{upload}"
    done = _already_ingested(
        requester, name, lambda source: (source.kind, source.requested_revision) == ("upload", tag)
    )
    if done is not None:
        version = requester.show(done)
    else:
        manifest, folder = store.committed(upload)
        progress("storing", files=len(manifest.files), size=manifest.size)
        origin = Origin("upload", manifest.origin or tag, tag)
        version = requester.intake.ingest(
            folder, name=name, owner=manifest.owner, scan=False, origin=origin
        )
    result = _scanned(requester, version, job, progress)
    store.remove(upload)
    return result


def _scanned(
    requester: Registry, version: Version, job: Job, progress: Progress
) -> Mapping[str, Any]:
    """Scan a version just ingested (unless the job says not to, or it has a report)."""
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


def _already_ingested(
    registry: Registry, name: str, matches: Callable[[Source], bool]
) -> str | None:
    """The version of ``name`` already ingested from the source ``matches`` (a re-run)."""
    try:
        versions = registry.downloads.versions_of(name)
    except NotFound:
        return None
    return next((v.ref for v in versions if matches(v.source)), None)
