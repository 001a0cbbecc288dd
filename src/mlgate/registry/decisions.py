"""Decisions on a version: approval, rejection, publication (signing and ML-BOM),
deprecation and revocation, each checked against the lifecycle and the policy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select

from mlgate.registry import lineage, store
from mlgate.registry import schema as t
from mlgate.registry.aliases import Aliases
from mlgate.registry.context import RegistryContext
from mlgate.registry.errors import RegistryError, TransitionRefused
from mlgate.registry.lifecycle import State, check_transition
from mlgate.registry.policy import RegistryPolicy
from mlgate.registry.records import Version
from mlgate.registry.roles import Action


class Decisions:
    """Review and publication; aliases move through :class:`Aliases` (publish with an alias,
    fall-back on revoke)."""

    def __init__(self, ctx: RegistryContext, aliases: Aliases) -> None:
        self.ctx = ctx
        self.aliases = aliases

    def approve(self, ref: str, reason: str) -> Version:
        """Record the actor's approval; the version is approved once policy is satisfied."""
        policy = self.ctx.policy
        with self.ctx.write(Action.APPROVE) as conn:
            row = self.ctx.row(conn, ref)
            subject = self.ctx.subject(conn, row)
            check_transition(subject, State(row.state), State.APPROVED)
            approvers = self._approvers(conn, row.id)
            if self.ctx.actor in approvers:
                raise TransitionRefused(f"{self.ctx.actor} has already approved {subject}")
            conn.execute(
                t.decisions.insert().values(
                    version_id=row.id,
                    actor=self.ctx.actor,
                    decision="approve",
                    reason=reason,
                    at=store.now(),
                )
            )
            approvers.add(self.ctx.actor)
            independent = {a for a in approvers if a != row.ingested_by}
            enough = len(approvers) >= policy.required_approvals
            separated = bool(independent) or not policy.separation_of_duties
            details = {
                "reason": reason,
                "approvals": len(approvers),
                "required": policy.required_approvals,
            }
            self.ctx.append_audit(conn, "approve", subject, details)
            if enough and separated:
                store.record_state(
                    conn, row.id, State.SCANNED, State.APPROVED, self.ctx.actor, reason
                )
        return self.ctx.show(ref)

    def pending_reason(self, version: Version) -> str | None:
        """Why a scanned version is not approved yet (None when it is not waiting)."""
        return pending_reason(version, self.ctx.policy)

    def reject(self, ref: str, reason: str) -> Version:
        """Reject a scanned version, with the reviewer's reason."""
        if not reason.strip():
            raise TransitionRefused("a rejection needs a reason")
        with self.ctx.write(Action.REJECT) as conn:
            row = self.ctx.row(conn, ref)
            self.record_rejection(
                conn,
                row.id,
                self.ctx.subject(conn, row),
                State(row.state),
                State.REJECTED,
                self.ctx.actor,
                reason,
            )
        return self.ctx.show(ref)

    def record_rejection(
        self,
        conn: Connection,
        version_id: int,
        subject: str,
        current: State,
        target: State,
        actor: str,
        reason: str,
    ) -> None:
        check_transition(subject, current, target)
        conn.execute(
            t.decisions.insert().values(
                version_id=version_id, actor=actor, decision="reject", reason=reason, at=store.now()
            )
        )
        store.record_state(conn, version_id, current, target, actor, reason)
        self.ctx.append_audit(conn, "reject", subject, {"reason": reason}, actor=actor)

    def _approvers(self, conn: Connection, version_id: int) -> set[str]:
        rows = conn.execute(
            select(t.decisions.c.actor).where(
                t.decisions.c.version_id == version_id, t.decisions.c.decision == "approve"
            )
        )
        return {r.actor for r in rows}

    def publish(self, ref: str, *, alias: str | None = None) -> Version:
        """Sign an approved version with the organisation key, attach its ML-BOM, publish."""
        from mlgate.bom import build_cyclonedx  # noqa: PLC0415  (heavy; loaded on use)
        from mlgate.bom.cyclonedx import add_dynamic_test  # noqa: PLC0415
        from mlgate.provenance.client_metadata import HF_CLIENT_METADATA  # noqa: PLC0415
        from mlgate.provenance.errors import ContentMismatch  # noqa: PLC0415
        from mlgate.provenance.signing import sign_model  # noqa: PLC0415

        version = self.ctx.show(ref)
        self.ctx.require(Action.PUBLISH)
        check_transition(version.ref, version.state, State.PUBLISHED)
        key = self.ctx.org_key()
        view = self.ctx.view(version.content_digest, version.files)
        self._refuse_pickles(version, view)
        sig_path = self.ctx.scratch() / "model.sig"
        recorded = {f.path: f.digest for f in version.files}
        try:
            # Every file is signed (git paths too: they are content the registry serves), and
            # only if the bytes hashed for the signature are the recorded digests: a blob
            # altered in the store since ingest is refused here, not signed and caught at pull.
            # The HF client's bookkeeping folder is listed as ignored (ingest refuses files
            # there), so a `hf download --local-dir` copy of a hub version verifies as is.
            sign_model(
                view,
                key.signer,
                signature_path=sig_path,
                ignore=(HF_CLIENT_METADATA,),
                ignore_git=False,
                expect=recorded,
            )
            signature = sig_path.read_text(encoding="utf-8")
        except ContentMismatch as e:
            raise RegistryError(
                f"{version.ref} not published: its stored blobs no longer match the digests "
                f"recorded at ingest ({e}); run `mlgate registry check`"
            ) from e
        finally:
            shutil.rmtree(sig_path.parent, ignore_errors=True)
        bom = build_cyclonedx(
            view,
            name=version.model,
            source=version.source.uri,
            revision=version.source.revision,
            actor=version.ingested_by,
        )
        if version.dynamic_report is not None:
            add_dynamic_test(bom, version.dynamic_report)
        with self.ctx.write(Action.PUBLISH) as conn:
            row = self.ctx.row(conn, version.ref)
            check_transition(version.ref, State(row.state), State.PUBLISHED)
            conn.execute(
                t.versions.update()
                .where(t.versions.c.id == row.id)
                .values(signature=signature, signed_by=key.signer.description, bom=json.dumps(bom))
            )
            lineage.add(conn, row.id, lineage.bom_sources(bom))
            store.record_state(
                conn,
                row.id,
                State.APPROVED,
                State.PUBLISHED,
                self.ctx.actor,
                f"signed by {key.signer.description}",
            )
            self.ctx.append_audit(conn, "publish", version.ref, {"key_id": key.key_id})
            if alias:
                self.aliases.point(conn, row.model_id, alias, row.id, version.model)
        return self.ctx.show(version.ref)

    def _refuse_pickles(self, version: Version, view: Path) -> None:
        """Under convert-on-ingest, only versions without pickle checkpoints are published."""
        if not self.ctx.policy.convert_on_ingest:
            return
        from mlgate.registry.conversion import checkpoints_in  # noqa: PLC0415

        pickles = checkpoints_in(view)
        if not pickles:
            return
        with self.ctx.read(Action.READ) as conn:
            row = self.ctx.row(conn, version.ref)
            successor = conn.execute(
                select(t.versions.c.number).where(t.versions.c.converted_from == row.id)
            ).scalar()
        hint = f"; publish its conversion {version.model}@{successor}" if successor else ""
        raise TransitionRefused(
            f"policy convert-on-ingest: {version.ref} holds pickle checkpoints "
            f"({', '.join(pickles)}) and is kept for audit only{hint}"
        )

    def deprecate(self, ref: str, reason: str) -> Version:
        """Mark a published version deprecated: still served, no new aliases."""
        return self._retire(ref, State.DEPRECATED, reason, Action.DEPRECATE)

    def revoke(self, ref: str, reason: str) -> Version:
        """Withdraw a version for good; aliases on it fall back to the previous published
        version they pointed at (or are removed when there is none)."""
        return self._retire(ref, State.REVOKED, reason, Action.REVOKE)

    def _retire(self, ref: str, target: State, reason: str, action: Action) -> Version:
        if not reason.strip():
            raise TransitionRefused(f"marking a version {target.value} needs a reason")
        with self.ctx.write(action) as conn:
            self.record_retirement(conn, self.ctx.row(conn, ref), target, reason)
        return self.ctx.show(ref)

    def record_retirement(
        self,
        conn: Connection,
        row: Any,
        target: State,
        reason: str,
        details: dict[str, str] | None = None,
    ) -> None:
        """Deprecate or revoke ``row`` inside the caller's write transaction (which checked
        the role): state, audit entry and, for a revocation, the aliases' fall-back."""
        subject = self.ctx.subject(conn, row)
        check_transition(subject, State(row.state), target)
        store.record_state(conn, row.id, State(row.state), target, self.ctx.actor, reason)
        self.ctx.append_audit(conn, target.value, subject, {"reason": reason, **(details or {})})
        if target is State.REVOKED:
            self.aliases.fall_back(conn, row.model_id, row.id)


def pending_reason(version: Version, policy: RegistryPolicy) -> str | None:
    """Why a scanned version is not approved yet under ``policy`` (None when it is not
    waiting); a pure function, so a remote client words it exactly as the registry does."""
    if version.state is not State.SCANNED:
        return None
    approvers = {d.actor for d in version.decisions if d.decision == "approve"}
    if not approvers:
        return "awaiting review"
    if len(approvers) < policy.required_approvals:
        return f"{len(approvers)} of {policy.required_approvals} approvals"
    return (
        f"separation of duties: {version.ingested_by} ingested it, so another reviewer must approve"
    )
