"""Pull-through requests (the ``upstream_requests`` table) and the policy that may publish
what they bring in.

When a hub client asks for a repo the registry does not have, the hub resolves the revision
on its upstream to an immutable commit and records the request here: one row per (repo,
commit), however many clients ask, and one fetch job for it (submitted in the same
transaction). Every request is in the audit log with its requester. The fetch job (run by a
worker, :mod:`mlgate.hub.pullthrough`) quarantines and scans the commit, links the version
to the request and, when the admin's policy ``auto_publish_below`` allows it, has
``mlgate-policy`` approve and publish it, recorded as such in history and audit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, select

from mlgate.findings import Severity
from mlgate.registry import schema as t
from mlgate.registry import store
from mlgate.registry.aliases import Aliases
from mlgate.registry.context import RegistryContext
from mlgate.registry.decisions import Decisions
from mlgate.registry.intake import POLICY_ACTOR
from mlgate.registry.jobstate import Submitted, submit_in
from mlgate.registry.lifecycle import State
from mlgate.registry.records import Version
from mlgate.registry.roles import Action, Role

REQUESTED = "requested"
FETCHED = "fetched"


@dataclass(frozen=True)
class UpstreamRequest:
    """A repo commit asked for through the hub; ``version`` (``name@N``) once fetched."""

    repo_id: str
    commit: str
    requested_revision: str
    requested_by: str
    requested_at: str
    state: str
    version: str | None


def fetch_key(repo_id: str, commit: str) -> str:
    """The idempotency key of the fetch job of ``repo_id`` at ``commit``."""
    return f"fetch:{repo_id}@{commit}"


def publish_key(ref: str) -> str:
    """The idempotency key of the job publishing approved pull-through version ``ref``."""
    return f"publish:{ref}"


class Upstream:
    """Record pull-through requests, find and link what they fetched, auto-publish."""

    def __init__(self, ctx: RegistryContext) -> None:
        self.ctx = ctx

    def record(
        self, repo_id: str, commit: str, revision: str, endpoint: str
    ) -> tuple[UpstreamRequest, Submitted]:
        """Record that the actor asked for ``repo_id`` at ``commit`` (resolved from
        ``revision`` on ``endpoint``) and submit its fetch job, once per (repo, commit)."""
        with self.ctx.write(Action.DOWNLOAD) as conn:
            row = _row(conn, repo_id, commit)
            if row is None:
                conn.execute(
                    t.upstream_requests.insert().values(
                        repo_id=repo_id,
                        commit=commit,
                        requested_revision=revision,
                        requested_by=self.ctx.actor,
                        requested_at=store.now(),
                        state=REQUESTED,
                    )
                )
            args = {"repo_id": repo_id, "commit": commit, "revision": revision}
            args["endpoint"] = endpoint
            submitted = submit_in(conn, fetch_key(repo_id, commit), "fetch", args)
            details = {**args, "first": row is None, "job": submitted.job.key}
            self.ctx.append_audit(conn, "upstream-request", f"{repo_id}@{commit}", details)
            return _request(conn, _must(conn, repo_id, commit)), submitted

    def find(self, repo_id: str, commit: str) -> UpstreamRequest | None:
        """The request for ``repo_id`` at ``commit``, if any."""
        with self.ctx.read(Action.READ) as conn:
            row = _row(conn, repo_id, commit)
            return None if row is None else _request(conn, row)

    def version_for(self, repo_id: str, commit: str) -> Version | None:
        """The newest version of model ``repo_id`` ingested from a hub at ``commit``: a
        fetch that ran before (or was killed after ingesting) is not done twice."""
        with self.ctx.read(Action.READ) as conn:
            model = conn.execute(select(t.models.c.id).where(t.models.c.name == repo_id)).scalar()
            row = conn.execute(
                select(t.versions)
                .where(
                    t.versions.c.model_id == model,
                    t.versions.c.source_kind == "huggingface",
                    t.versions.c.repo_id == repo_id,
                    t.versions.c.revision == commit,
                )
                .order_by(t.versions.c.number.desc())
                .limit(1)
            ).first()
            return None if row is None else store.to_version(conn, row, repo_id, detail=True)

    def link(self, repo_id: str, commit: str, version: Version) -> None:
        """Mark the request fetched as ``version`` (audited)."""
        with self.ctx.write(Action.INGEST) as conn:
            row = self.ctx.row(conn, version.ref)
            conn.execute(
                t.upstream_requests.update()
                .where(
                    t.upstream_requests.c.repo_id == repo_id,
                    t.upstream_requests.c.commit == commit,
                )
                .values(state=FETCHED, version_id=row.id, error=None)
            )
            details = {"version": version.ref, "state": version.state.value}
            self.ctx.append_audit(conn, "upstream-fetched", f"{repo_id}@{commit}", details)

    def auto_publish(self, version: Version) -> Version:
        """Approve and publish a pulled-through ``version`` as ``mlgate-policy`` when the
        policy's ``auto_publish_below`` allows it (complete scan, every finding below the
        threshold); otherwise leave it for review. Approval still counts as one approval:
        with ``required_approvals`` above one a reviewer must add theirs."""
        threshold = self.ctx.policy.auto_publish_below
        if threshold is None or version.state is not State.SCANNED:
            return version
        if not _all_below(version, threshold):
            return version
        self.ctx.require(Action.INGEST)  # the worker that fetched it, not any caller
        if self.find(version.source.repo_id or "", version.source.revision or "") is None:
            return version  # only what came in through pull-through
        decisions = _policy_decisions(self.ctx)
        reason = (
            f"automatic: policy auto-publish-below {threshold.name}; "
            f"complete scan, risk {version.risk}"
        )
        approved = decisions.approve(version.ref, reason)
        if approved.state is not State.APPROVED:
            return approved
        return decisions.publish(version.ref)

    def publish_approved(self, ref: str) -> Version:
        """Publish ``ref`` as ``mlgate-policy`` if it came in through pull-through and a
        reviewer has approved it: the client asked for it, review was the only gate."""
        version = self.ctx.show(ref)
        if version.state is not State.APPROVED or ref not in self.approved_pulls():
            return version
        self.ctx.require(Action.INGEST)  # the worker, as for auto_publish
        return _policy_decisions(self.ctx).publish(ref)

    def approved_pulls(self) -> list[str]:
        """Pulled-through versions approved and not yet published (``name@N``)."""
        with self.ctx.read(Action.READ) as conn:
            rows = conn.execute(
                select(t.models.c.name, t.versions.c.number)
                .join(t.versions, t.versions.c.model_id == t.models.c.id)
                .join(t.upstream_requests, t.upstream_requests.c.version_id == t.versions.c.id)
                .where(t.versions.c.state == State.APPROVED.value)
            )
            return sorted({f"{r.name}@{r.number}" for r in rows})


class _PolicyContext(RegistryContext):
    """``mlgate-policy``: approves and publishes only what the admin's policy has already
    decided (its authority is the policy, not a user row), visibly under its own name."""

    def actor_roles(self, conn: Connection) -> frozenset[Role]:
        return frozenset({Role.REVIEWER, Role.PUBLISHER})


def _policy_decisions(ctx: RegistryContext) -> Decisions:
    policy = _PolicyContext(ctx.engine, ctx.data_dir, POLICY_ACTOR)
    policy._key = ctx._key
    return Decisions(policy, Aliases(policy))


def _all_below(version: Version, threshold: Severity) -> bool:
    """True when the version's scan is complete and every finding is below ``threshold``."""
    summary = (version.scan_report or {}).get("summary", {})
    if summary.get("complete") is not True or version.risk == "incomplete":
        return False
    name = summary.get("max_severity")
    return name is None or Severity[name] < threshold


def _row(conn: Connection, repo_id: str, commit: str) -> Row[Any] | None:
    return conn.execute(
        select(t.upstream_requests).where(
            t.upstream_requests.c.repo_id == repo_id, t.upstream_requests.c.commit == commit
        )
    ).first()


def _must(conn: Connection, repo_id: str, commit: str) -> Row[Any]:
    row = _row(conn, repo_id, commit)
    assert row is not None
    return row


def _request(conn: Connection, row: Row[Any]) -> UpstreamRequest:
    ref = None
    if row.version_id is not None:
        version = conn.execute(select(t.versions).where(t.versions.c.id == row.version_id)).one()
        ref = f"{row.repo_id}@{version.number}"
    return UpstreamRequest(
        row.repo_id,
        row.commit,
        row.requested_revision,
        row.requested_by,
        row.requested_at,
        row.state,
        ref,
    )
