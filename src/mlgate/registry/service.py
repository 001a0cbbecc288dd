"""The registry: inventory, lifecycle, roles, aliases and downloads, as one Python API.

Every change checks the actor's role and the lifecycle, records who did it, and appends an
audit entry in the same transaction, so the inventory and its audit log never disagree.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, select

from mlgate.findings import Severity, relative_finding
from mlgate.registry import audit, database, store
from mlgate.registry import schema as t
from mlgate.registry.blobs import BlobStore
from mlgate.registry.errors import NotFound, PermissionDenied, RegistryError, TransitionRefused
from mlgate.registry.ingest import (
    HubOptions,
    StoredFile,
    check_name,
    content_digest,
    default_name,
    discard_staging,
    formats_json,
    read_license,
    stage,
    store_files,
    vendor_evidence,
)
from mlgate.registry.lifecycle import SERVED, State, check_transition
from mlgate.registry.orgkey import OrgKey, load_org_key, pem_text, public_key_from_pem
from mlgate.registry.policy import RegistryPolicy
from mlgate.registry.records import ModelSummary, StateChange, Version
from mlgate.registry.roles import Action, Role, parse_roles, require
from mlgate.registry.sources import SourceLimits

POLICY_ACTOR = "mlgate-policy"
_SIGNING_KEY = "signing_key"
_PUBLIC_KEY = "signing_public_key"
_POLICY = "policy"


def default_actor() -> str:
    """The acting identity: ``MLGATE_ACTOR``, else the operating-system user."""
    return os.environ.get("MLGATE_ACTOR") or getpass.getuser()


def split_ref(ref: str) -> tuple[str, str | None]:
    """``name@3`` / ``name@production`` / ``name`` -> (name, selector)."""
    name, _, selector = ref.partition("@")
    return name, selector or None


class Registry:
    """An open registry: a database (SQLite or PostgreSQL) plus a blob store on disk.

    Open one with :func:`open_registry` or create one with :func:`init_registry`. ``actor``
    is the identity every call acts as; its roles come from the registry's user table.
    """

    def __init__(self, engine: Engine, data_dir: Path, actor: str) -> None:
        self.engine = engine
        self.data_dir = data_dir
        self.actor = actor
        self.blobs = BlobStore(data_dir / "blobs")
        self._key: OrgKey | None = None

    # -- set-up -----------------------------------------------------------------------

    @property
    def policy(self) -> RegistryPolicy:
        """The policy the registry enforces."""
        with database.read_transaction(self.engine) as conn:
            text = store.get_setting(conn, _POLICY)
        return RegistryPolicy.from_json(text) if text else RegistryPolicy()

    def set_policy(self, policy: RegistryPolicy) -> None:
        """Replace the policy (admin only; audited)."""
        with self._write(Action.ADMINISTER) as conn:
            store.put_setting(conn, _POLICY, policy.to_json())
            self._audit(conn, "policy", "registry", json.loads(policy.to_json()))

    def add_user(self, name: str, roles: str | frozenset[Role]) -> None:
        """Create or update a user with ``roles`` (admin only; audited)."""
        wanted = parse_roles(roles) if isinstance(roles, str) else roles
        if not name or len(name) > 128:
            raise RegistryError("a user name must be 1 to 128 characters")
        with self._write(Action.ADMINISTER) as conn:
            conn.execute(t.principals.delete().where(t.principals.c.name == name))
            conn.execute(
                t.principals.insert().values(
                    name=name,
                    roles=",".join(sorted(r.value for r in wanted)),
                    created_at=store.now(),
                    created_by=self.actor,
                )
            )
            self._audit(conn, "user", name, {"roles": sorted(r.value for r in wanted)})

    def users(self) -> dict[str, tuple[str, ...]]:
        """Every user and their roles."""
        with self._read(Action.READ) as conn:
            rows = conn.execute(select(t.principals).order_by(t.principals.c.name))
            return {r.name: tuple(r.roles.split(",")) for r in rows}

    def roles_of(self, conn: Connection, name: str) -> frozenset[Role]:
        """The roles of user ``name`` (none if unknown)."""
        text = conn.execute(
            select(t.principals.c.roles).where(t.principals.c.name == name)
        ).scalar()
        return parse_roles(text) if text else frozenset()

    # -- ingest and scan ------------------------------------------------------------------

    def ingest(
        self,
        source: str | Path,
        *,
        name: str | None = None,
        owner: str | None = None,
        hub: HubOptions | None = None,
        limits: SourceLimits | None = None,
        scan: bool = True,
    ) -> Version:
        """Quarantine the model at ``source`` (a path or ``hf://org/name@rev``) as a new
        version, then scan it (unless ``scan=False``) and apply the auto-reject policy."""
        self.require(Action.INGEST)
        staging_root = self.data_dir / "staging"
        staged = stage(str(source), hub or HubOptions(), staging_root, limits or SourceLimits())
        try:
            model = check_name(name or default_name(staged))
            stored = store_files(staged, self.blobs)
        finally:
            discard_staging(staged, staging_root)
        digest = content_digest(stored)
        licence = read_license(self.view(digest, stored))
        with self._write(Action.INGEST) as conn:
            number = self._record_ingest(
                conn, model, owner or self.actor, staged, stored, digest, licence
            )
        version = self.show(f"{model}@{number}")
        if not scan:
            return version
        version = self.scan(version.ref)
        if self.policy.convert_on_ingest and version.state is State.SCANNED:
            return self._convert(version)
        return version

    def _convert(self, original: Version) -> Version:
        """Ingest the safetensors conversion of ``original`` as the next version."""
        from mlgate.registry.conversion import checkpoints_in, convert_view  # noqa: PLC0415

        view = self.view(original.content_digest, original.files)
        if not checkpoints_in(view):
            return original
        scratch = self._scratch()
        try:
            outcome = convert_view(view, scratch)
            if outcome.folder is None:
                with self._write(Action.INGEST) as conn:
                    self._audit(conn, "convert", original.ref, {"refused": outcome.reason})
                return original
            staged = stage(str(outcome.folder), HubOptions(), scratch, SourceLimits())
            stored = store_files(staged, self.blobs)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        digest = content_digest(stored)
        licence = read_license(self.view(digest, stored))
        with self._write(Action.INGEST) as conn:
            row = self._row(conn, original.ref)
            source = replace(
                staged,
                kind="converted",
                uri=original.source.uri,
                repo_id=original.source.repo_id,
                revision=original.source.revision,
                requested_revision=original.source.requested_revision,
            )
            number = self._record_ingest(
                conn,
                original.model,
                original.owner,
                source,
                stored,
                digest,
                licence,
                converted_from=row.id,
            )
            self._audit(
                conn,
                "convert",
                original.ref,
                {"into": f"{original.model}@{number}", "result": outcome.reason},
            )
        return self.scan(f"{original.model}@{number}")

    def _record_ingest(
        self,
        conn: Connection,
        model: str,
        owner: str,
        staged: Any,
        stored: list[StoredFile],
        digest: str,
        licence: str | None,
        converted_from: int | None = None,
    ) -> int:
        row = conn.execute(select(t.models).where(t.models.c.name == model)).first()
        if row is None:
            model_id = store.insert_id(
                conn, t.models.insert().values(name=model, owner=owner, created_at=store.now())
            )
        else:
            model_id = row.id
        number = store.next_number(conn, model_id)
        version_id = store.insert_id(
            conn,
            t.versions.insert().values(
                model_id=model_id,
                number=number,
                state=State.QUARANTINED.value,
                source_kind=staged.kind,
                source_uri=staged.uri,
                repo_id=staged.repo_id,
                revision=staged.revision,
                requested_revision=staged.requested_revision,
                content_digest=digest,
                size=sum(f.size for f in stored),
                file_count=len(stored),
                formats=formats_json(stored),
                license=licence,
                owner=owner,
                ingested_at=store.now(),
                ingested_by=self.actor,
                risk="unscanned",
                converted_from=converted_from,
            ),
        )
        for f in stored:
            conn.execute(
                t.files.insert().values(
                    version_id=version_id,
                    path=f.path,
                    digest=f.digest,
                    size=f.size,
                    format=f.format,
                )
            )
            if conn.execute(select(t.blobs.c.digest).where(t.blobs.c.digest == f.digest)).first():
                continue
            conn.execute(
                t.blobs.insert().values(digest=f.digest, size=f.size, created_at=store.now())
            )
        origin = f"converted from version {converted_from}" if converted_from else staged.uri
        store.record_state(
            conn, version_id, None, State.QUARANTINED, self.actor, f"ingested from {origin}"
        )
        details: dict[str, Any] = {
            "source": staged.uri,
            "revision": staged.revision,
            "content_digest": digest,
            "files": {f.path: f.digest for f in stored},
        }
        evidence = vendor_evidence(stored, self.blobs)
        if evidence:
            details["vendor_evidence"] = evidence
        self._audit(conn, "ingest", f"{model}@{number}", details)
        return number

    def scan(self, ref: str) -> Version:
        """Scan a version statically, attach the report and apply the auto-reject policy."""
        from mlgate.api import scan as scan_paths  # noqa: PLC0415  (heavy; loaded on use)
        from mlgate.render.json import report_to_dict  # noqa: PLC0415

        version = self.show(ref)
        view = self.view(version.content_digest, version.files)
        report = scan_paths(view)
        policy = self.policy
        fail_on = policy.auto_reject_at or Severity.HIGH
        # Recorded paths are the model's own, never the internal view's.
        relative = [relative_finding(f, view) for f in report.findings]
        artifacts = tuple(
            replace(a, artifact=Path(a.artifact).relative_to(view).as_posix())
            if Path(a.artifact).is_relative_to(view)
            else a
            for a in report.artifacts
        )
        data = report_to_dict(type(report)((version.ref,), tuple(relative), artifacts), fail_on)
        formats = {a.artifact: a.format for a in artifacts}
        # The version's summary: what the scan found each file to be, not the ingest-time guess.
        summary = sorted({formats.get(f.path, f.format) for f in version.files})
        worst = report.max_severity
        incomplete = not report.complete
        risk = "incomplete" if incomplete else (worst.name.lower() if worst is not None else "none")
        with self._write(Action.SCAN) as conn:
            row = self._row(conn, version.ref)
            check_transition(version.ref, State(row.state), State.SCANNED)
            conn.execute(
                t.versions.update()
                .where(t.versions.c.id == row.id)
                .values(scan_report=json.dumps(data), risk=risk, formats=json.dumps(summary))
            )
            for path, fmt in formats.items():
                conn.execute(
                    t.files.update()
                    .where(t.files.c.version_id == row.id, t.files.c.path == path)
                    .values(format=fmt)
                )
            store.record_state(
                conn, row.id, State(row.state), State.SCANNED, self.actor, f"static scan: {risk}"
            )
            self._audit(conn, "scan", version.ref, {"risk": risk, "findings": len(report.findings)})
            blocking = report.at_or_above(policy.auto_reject_at) if policy.auto_reject_at else ()
            if blocking or (incomplete and policy.auto_reject_at):
                rules = sorted({f.rule_id for f in blocking})
                reason = (
                    f"auto-rejected: {len(blocking)} finding(s) at or above "
                    f"{fail_on.name} ({', '.join(rules)})"
                    if blocking
                    else "auto-rejected: the scan could not analyse every file"
                )
                self._decide(
                    conn, row.id, version.ref, State.SCANNED, State.REJECTED, POLICY_ACTOR, reason
                )
        return self.show(version.ref)

    # -- review -----------------------------------------------------------------------

    def approve(self, ref: str, reason: str) -> Version:
        """Record the actor's approval; the version is approved once policy is satisfied."""
        policy = self.policy
        with self._write(Action.APPROVE) as conn:
            row = self._row(conn, ref)
            subject = self._subject(conn, row)
            check_transition(subject, State(row.state), State.APPROVED)
            approvers = self._approvers(conn, row.id)
            if self.actor in approvers:
                raise TransitionRefused(f"{self.actor} has already approved {subject}")
            conn.execute(
                t.decisions.insert().values(
                    version_id=row.id,
                    actor=self.actor,
                    decision="approve",
                    reason=reason,
                    at=store.now(),
                )
            )
            approvers.add(self.actor)
            independent = {a for a in approvers if a != row.ingested_by}
            enough = len(approvers) >= policy.required_approvals
            separated = bool(independent) or not policy.separation_of_duties
            details = {
                "reason": reason,
                "approvals": len(approvers),
                "required": policy.required_approvals,
            }
            self._audit(conn, "approve", subject, details)
            if enough and separated:
                store.record_state(conn, row.id, State.SCANNED, State.APPROVED, self.actor, reason)
        return self.show(ref)

    def pending_reason(self, version: Version) -> str | None:
        """Why a scanned version is not approved yet (None when it is not waiting)."""
        if version.state is not State.SCANNED:
            return None
        policy = self.policy
        approvers = {d.actor for d in version.decisions if d.decision == "approve"}
        if not approvers:
            return "awaiting review"
        if len(approvers) < policy.required_approvals:
            return f"{len(approvers)} of {policy.required_approvals} approvals"
        return (
            f"separation of duties: {version.ingested_by} ingested it, so another "
            "reviewer must approve"
        )

    def reject(self, ref: str, reason: str) -> Version:
        """Reject a scanned version, with the reviewer's reason."""
        if not reason.strip():
            raise TransitionRefused("a rejection needs a reason")
        with self._write(Action.REJECT) as conn:
            row = self._row(conn, ref)
            self._decide(
                conn,
                row.id,
                self._subject(conn, row),
                State(row.state),
                State.REJECTED,
                self.actor,
                reason,
            )
        return self.show(ref)

    def _decide(
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
        self._audit(conn, "reject", subject, {"reason": reason}, actor=actor)

    def _approvers(self, conn: Connection, version_id: int) -> set[str]:
        rows = conn.execute(
            select(t.decisions.c.actor).where(
                t.decisions.c.version_id == version_id, t.decisions.c.decision == "approve"
            )
        )
        return {r.actor for r in rows}

    # -- publication --------------------------------------------------------------------

    def publish(self, ref: str, *, alias: str | None = None) -> Version:
        """Sign an approved version with the organisation key, attach its ML-BOM, publish."""
        from mlgate.bom import build_cyclonedx  # noqa: PLC0415  (heavy; loaded on use)
        from mlgate.provenance.errors import ContentMismatch  # noqa: PLC0415
        from mlgate.provenance.signing import sign_model  # noqa: PLC0415

        version = self.show(ref)
        self.require(Action.PUBLISH)
        check_transition(version.ref, version.state, State.PUBLISHED)
        key = self.org_key()
        view = self.view(version.content_digest, version.files)
        self._refuse_pickles(version, view)
        sig_path = self._scratch() / "model.sig"
        recorded = {f.path: f.digest for f in version.files}
        try:
            # Every file is signed (git paths too: they are content the registry serves), and
            # only if the bytes hashed for the signature are the recorded digests: a blob
            # altered in the store since ingest is refused here, not signed and caught at pull.
            sign_model(view, key.signer, signature_path=sig_path, ignore_git=False, expect=recorded)
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
        with self._write(Action.PUBLISH) as conn:
            row = self._row(conn, version.ref)
            check_transition(version.ref, State(row.state), State.PUBLISHED)
            conn.execute(
                t.versions.update()
                .where(t.versions.c.id == row.id)
                .values(signature=signature, signed_by=key.signer.description, bom=json.dumps(bom))
            )
            store.record_state(
                conn,
                row.id,
                State.APPROVED,
                State.PUBLISHED,
                self.actor,
                f"signed by {key.signer.description}",
            )
            self._audit(conn, "publish", version.ref, {"key_id": key.key_id})
            if alias:
                self._point_alias(conn, row.model_id, alias, row.id, version.model)
        return self.show(version.ref)

    def _refuse_pickles(self, version: Version, view: Path) -> None:
        """Under convert-on-ingest, only versions without pickle checkpoints are published."""
        if not self.policy.convert_on_ingest:
            return
        from mlgate.registry.conversion import checkpoints_in  # noqa: PLC0415

        pickles = checkpoints_in(view)
        if not pickles:
            return
        with self._read(Action.READ) as conn:
            row = self._row(conn, version.ref)
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
        with self._write(action) as conn:
            row = self._row(conn, ref)
            subject = self._subject(conn, row)
            check_transition(subject, State(row.state), target)
            store.record_state(conn, row.id, State(row.state), target, self.actor, reason)
            self._audit(conn, target.value, subject, {"reason": reason})
            if target is State.REVOKED:
                self._fall_back(conn, row.model_id, row.id)
        return self.show(ref)

    # -- aliases ------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, ref: str) -> Version:
        """Point ``alias`` (e.g. ``production``) of model ``name`` at a published version."""
        with self._write(Action.ALIAS) as conn:
            row = self._row(conn, ref if "@" in ref else f"{name}@{ref}")
            self._point_alias(conn, row.model_id, alias, row.id, name)
        return self.show(f"{name}@{alias}")

    def rollback(self, name: str, alias: str, to: str | None = None) -> Version:
        """Move ``alias`` back to the version it pointed at before (or to version ``to``)."""
        with self._write(Action.ALIAS) as conn:
            model = store.model_row(conn, name)
            current = conn.execute(
                select(t.aliases.c.version_id).where(
                    t.aliases.c.model_id == model.id, t.aliases.c.alias == alias
                )
            ).scalar()
            if current is None:
                raise NotFound(f"{name} has no alias {alias!r}")
            if to is not None:
                target = store.version_row(conn, name, to).id
            else:
                target = self._previous_target(conn, model.id, alias, current)
                if target is None:
                    raise TransitionRefused(
                        f"{name}@{alias} has no earlier published version to roll back to"
                    )
            self._point_alias(conn, model.id, alias, target, name, action="rollback")
        return self.show(f"{name}@{alias}")

    def _point_alias(
        self,
        conn: Connection,
        model_id: int,
        alias: str,
        version_id: int,
        name: str,
        action: str = "alias",
    ) -> None:
        if not alias or alias.isdigit() or "@" in alias or len(alias) > 64:
            raise RegistryError(f"invalid alias {alias!r}: a name that is not a number")
        row = conn.execute(select(t.versions).where(t.versions.c.id == version_id)).one()
        if State(row.state) is not State.PUBLISHED:
            raise TransitionRefused(
                f"{name}@{row.number} is {row.state}: only a published version can be {alias}"
            )
        self._move_alias(conn, model_id, alias, version_id)
        self._audit(conn, action, f"{name}@{alias}", {"version": row.number})

    def _move_alias(
        self, conn: Connection, model_id: int, alias: str, version_id: int | None
    ) -> None:
        """Point ``alias`` at ``version_id`` (None: remove it) and record it in its history."""
        conn.execute(
            t.aliases.delete().where(t.aliases.c.model_id == model_id, t.aliases.c.alias == alias)
        )
        if version_id is not None:
            conn.execute(
                t.aliases.insert().values(model_id=model_id, alias=alias, version_id=version_id)
            )
        conn.execute(
            t.alias_history.insert().values(
                model_id=model_id,
                alias=alias,
                version_id=version_id,
                actor=self.actor,
                at=store.now(),
            )
        )

    def _previous_target(
        self, conn: Connection, model_id: int, alias: str, current: int
    ) -> int | None:
        rows = conn.execute(
            select(t.alias_history.c.version_id, t.versions.c.state)
            .join(t.versions, t.versions.c.id == t.alias_history.c.version_id)
            .where(t.alias_history.c.model_id == model_id, t.alias_history.c.alias == alias)
            .order_by(t.alias_history.c.id.desc())
        )
        for r in rows:
            if r.version_id != current and State(r.state) is State.PUBLISHED:
                return int(r.version_id)
        return None

    def _fall_back(self, conn: Connection, model_id: int, revoked_id: int) -> None:
        name = conn.execute(select(t.models.c.name).where(t.models.c.id == model_id)).scalar()
        rows = conn.execute(
            select(t.aliases.c.alias).where(
                t.aliases.c.model_id == model_id, t.aliases.c.version_id == revoked_id
            )
        ).all()
        for (alias,) in rows:
            target = self._previous_target(conn, model_id, alias, revoked_id)
            if target is not None:
                self._point_alias(conn, model_id, alias, target, str(name), action="fallback")
                continue
            self._move_alias(conn, model_id, alias, None)
            self._audit(conn, "unalias", f"{name}@{alias}", {"reason": "version revoked"})

    # -- consumers ----------------------------------------------------------------------

    def pull(self, ref: str, dest: Path) -> Version:
        """Write a served version's files and the registry's signature (``mlgate.sig``, so a
        vendor's own ``model.sig`` is kept) into the empty folder ``dest``, checking every
        blob's digest while copying; each file's download is recorded.

        The files are written into a temporary sibling renamed to ``dest`` at the end: a pull
        that fails (a corrupt blob, a full disk) leaves no partial model behind to be used.
        """
        from mlgate.provenance.manifest import PULL_SIGNATURE_FILE  # noqa: PLC0415

        version = self.show(ref)
        self.require(Action.DOWNLOAD)
        if version.state not in SERVED:
            raise TransitionRefused(
                f"{version.ref} is {version.state.value}: only published versions are served"
            )
        if dest.exists() and any(dest.iterdir()):
            raise RegistryError(f"{dest} is not empty")
        staging = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.pull")
        try:
            staging.mkdir(parents=True)
            for f in version.files:
                self.copy_out(f.digest, staging / f.path)
            if version.signature:
                _write_new(staging / PULL_SIGNATURE_FILE, version.signature)
            os.rename(staging, dest)  # replaces an empty dest; fails on one filled meanwhile
        except OSError as e:
            raise RegistryError(f"cannot pull {version.ref} into {dest}: {e.strerror or e}") from e
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self.record_downloads(version.ref, [f.path for f in version.files])
        return version

    def copy_out(self, digest: str, target: Path) -> None:
        """Copy a blob to ``target``, refusing it if its content no longer matches."""
        from mlgate.registry.blobs import copy_verified  # noqa: PLC0415

        target.parent.mkdir(parents=True, exist_ok=True)
        copy_verified(self.blobs.path(digest), target, digest)

    def record_downloads(self, ref: str, paths: list[str]) -> None:
        """Record that the actor downloaded ``paths`` of a version."""
        with self._write(Action.DOWNLOAD) as conn:
            row = self._row(conn, ref)
            at = store.now()
            for path in paths:
                conn.execute(
                    t.downloads.insert().values(
                        version_id=row.id, path=path, actor=self.actor, at=at
                    )
                )
            self._audit(conn, "download", self._subject(conn, row), {"files": paths})

    def find_by_content(self, digests: Mapping[str, str]) -> list[Version]:
        """Versions whose files are exactly ``digests`` (path -> SHA-256), newest first."""
        if not digests:
            return []
        with self._read(Action.READ) as conn:
            path, digest = next(iter(sorted(digests.items())))
            rows = conn.execute(
                select(t.versions, t.models.c.name)
                .join(t.models, t.models.c.id == t.versions.c.model_id)
                .join(t.files, t.files.c.version_id == t.versions.c.id)
                .where(t.files.c.path == path, t.files.c.digest == digest)
                .order_by(t.versions.c.id.desc())
            ).all()
            found = []
            for row in rows:
                files = {f.path: f.digest for f in store.files_of(conn, row.id)}
                if files == dict(digests):
                    found.append(store.to_version(conn, row, row.name, detail=False))
            return found

    def closest_version(self, digests: Mapping[str, str]) -> Version | None:
        """The version sharing the most (path, SHA-256) pairs with ``digests`` (newest on a
        tie), to name what differs when nothing matches exactly; None if nothing is shared."""
        pairs = set(digests.items())
        if not pairs:
            return None
        with self._read(Action.READ) as conn:
            rows = conn.execute(
                select(t.files.c.version_id, t.files.c.path, t.files.c.digest).where(
                    t.files.c.digest.in_(sorted({d for _, d in pairs}))
                )
            ).all()
            shared: dict[int, int] = {}
            for r in rows:
                if (r.path, r.digest) in pairs:
                    shared[r.version_id] = shared.get(r.version_id, 0) + 1
            if not shared:
                return None
            candidates = conn.execute(
                select(t.versions, t.models.c.name)
                .join(t.models, t.models.c.id == t.versions.c.model_id)
                .where(t.versions.c.id.in_(sorted(shared)))
            ).all()
            best = max(candidates, key=lambda r: (shared[r.id], State(r.state) in SERVED, r.id))
            return store.to_version(conn, best, best.name, detail=True)

    # -- queries ------------------------------------------------------------------------

    def show(self, ref: str) -> Version:
        """Everything recorded about a version (``name@N``, ``name@alias`` or ``name``)."""
        with self._read(Action.READ) as conn:
            name, _ = split_ref(ref)
            return store.to_version(conn, self._row(conn, ref), name, detail=True)

    def models(self) -> list[ModelSummary]:
        """Every model with its versions."""
        with self._read(Action.READ) as conn:
            result = []
            for m in conn.execute(select(t.models).order_by(t.models.c.name)).all():
                rows = conn.execute(
                    select(t.versions)
                    .where(t.versions.c.model_id == m.id)
                    .order_by(t.versions.c.number)
                ).all()
                versions = tuple(store.to_version(conn, r, m.name, detail=False) for r in rows)
                aliases = {a: v.number for v in versions for a in v.aliases}
                result.append(ModelSummary(m.name, m.owner, m.created_at, versions, aliases))
            return result

    def history(self, name: str) -> tuple[StateChange, ...]:
        """Every state change of every version of model ``name``, oldest first."""
        with self._read(Action.READ) as conn:
            model = store.model_row(conn, name)
            ids = list(
                conn.execute(
                    select(t.versions.c.id).where(t.versions.c.model_id == model.id)
                ).scalars()
            )
            return store.history_of(conn, ids)

    # -- audit --------------------------------------------------------------------------

    def audit_verify(self, public_key: Any = None) -> audit.AuditVerification:
        """Verify the audit chain and its checkpoints (against ``public_key``, else the
        public key the registry recorded at set-up)."""
        key = public_key if public_key is not None else self.org_public_key()
        with self._read(Action.READ) as conn:
            return audit.verify_log(audit.read_entries(conn), audit.read_checkpoints(conn), key)

    def org_public_key(self) -> Any:
        """The organisation public key recorded at set-up (None if there is none)."""
        with database.read_transaction(self.engine) as conn:
            pem = store.get_setting(conn, _PUBLIC_KEY)
        return public_key_from_pem(pem, "registry key") if pem else None

    def audit_export(self) -> Iterator[str]:
        """The audit log as JSON lines."""
        with self._read(Action.READ) as conn:
            entries = list(audit.read_entries(conn))
            points = audit.read_checkpoints(conn)
        yield from audit.export_lines(entries, points)

    def audit_checkpoint(self) -> audit.Checkpoint:
        """Sign the current head of the audit log now."""
        key = self.org_key()
        with self._write(Action.ADMINISTER) as conn:
            head = self._audit(conn, "checkpoint", "registry", {}, checkpoint=False)
            return audit.checkpoint(conn, head, key, store.now())

    # -- internals ----------------------------------------------------------------------

    def org_key(self) -> OrgKey:
        """The organisation's signing key, loaded once."""
        if self._key is None:
            with database.read_transaction(self.engine) as conn:
                spec = store.get_setting(conn, _SIGNING_KEY)
            if not spec:
                raise RegistryError(
                    "no organisation signing key is configured: "
                    "`mlgate registry init --signing-key` sets one"
                )
            self._key = load_org_key(spec)
        return self._key

    def view(self, digest: str, files: Any) -> Path:
        """A read-only folder of hard links to a version's blobs (what the scanner, the
        signer and the BOM read); built once per content digest."""
        root = self.data_dir / "views" / digest
        if root.is_dir():
            return root
        tmp = self._scratch()
        for f in files:
            self.blobs.link_view(f.digest, tmp / f.path)
        root.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(tmp, root)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # built concurrently by another process
        return root

    def _scratch(self) -> Path:
        path = self.data_dir / "tmp" / uuid.uuid4().hex
        path.mkdir(parents=True)
        return path

    def _row(self, conn: Connection, ref: str) -> Any:
        name, selector = split_ref(ref)
        return store.version_row(conn, name, selector)

    def _subject(self, conn: Connection, row: Any) -> str:
        name = conn.execute(select(t.models.c.name).where(t.models.c.id == row.model_id))
        return f"{name.scalar()}@{row.number}"

    def _audit(
        self,
        conn: Connection,
        action: str,
        subject: str,
        details: Mapping[str, Any],
        *,
        actor: str | None = None,
        checkpoint: bool = True,
    ) -> audit.AuditEntry:
        entry = audit.append(conn, store.now(), actor or self.actor, action, subject, details)
        every = self._checkpoint_every(conn)
        if checkpoint and entry.seq % every == 0 and store.get_setting(conn, _SIGNING_KEY):
            audit.checkpoint(conn, entry, self.org_key(), entry.at)
        return entry

    def _checkpoint_every(self, conn: Connection) -> int:
        text = store.get_setting(conn, _POLICY)
        return RegistryPolicy.from_json(text).checkpoint_every if text else 50

    def require(self, action: Action) -> None:
        """Fail early, before slow work, when the actor may not do ``action``."""
        with self._read(action):
            pass

    @contextmanager
    def _write(self, action: Action) -> Iterator[Connection]:
        with database.write_transaction(self.engine) as conn:
            require(self.actor, self.roles_of(conn, self.actor), action)
            yield conn

    @contextmanager
    def _read(self, action: Action) -> Iterator[Connection]:
        with database.read_transaction(self.engine) as conn:
            require(self.actor, self.roles_of(conn, self.actor), action)
            yield conn


def open_registry(
    data_dir: Path | str, url: str | None = None, actor: str | None = None
) -> Registry:
    """Open an initialised registry: ``url`` (a SQLAlchemy URL, e.g.
    ``postgresql+psycopg://host/db``) or the embedded SQLite database in ``data_dir``.
    Blobs always live in ``data_dir``."""
    root = Path(data_dir)
    engine = database.make_engine(url or database.sqlite_url(root))
    if url is None and not (root / "registry.db").is_file():
        raise RegistryError(f"no registry in {root}: run `mlgate registry init` first")
    database.require_current(engine)
    return Registry(engine, root, actor or default_actor())


def init_registry(
    data_dir: Path | str,
    url: str | None = None,
    *,
    admin: str | None = None,
    signing_key: str | None = None,
    policy: RegistryPolicy | None = None,
) -> Registry:
    """Create (or migrate) a registry; ``admin`` becomes its first administrator.

    Without ``signing_key`` a new P-256 organisation key is generated, unencrypted, in
    ``data_dir/keys/org.pem`` (mode 0600); keep a copy of its public key for verification.
    A key file is recorded by its absolute path: later commands may run from anywhere.
    """
    root = Path(data_dir).absolute()
    # The database holds the audit log and who may do what; the data dir, the key: owner only.
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    if url is None:
        _private_file(root / "registry.db")
    engine = database.make_engine(url or database.sqlite_url(root))
    database.migrate(engine)
    actor = admin or default_actor()
    spec = _key_spec(signing_key) if signing_key else str(_generate_key(root / "keys" / "org.pem"))
    key = load_org_key(spec)
    with database.write_transaction(engine) as conn:
        if conn.execute(select(t.principals.c.name).limit(1)).first() is not None:
            raise PermissionDenied("the registry is already initialised: an admin adds users")
        conn.execute(
            t.principals.insert().values(
                name=actor, roles=Role.ADMIN.value, created_at=store.now(), created_by=actor
            )
        )
        store.put_setting(conn, _SIGNING_KEY, spec)
        store.put_setting(conn, _PUBLIC_KEY, pem_text(key.public_key))
        store.put_setting(conn, _POLICY, (policy or RegistryPolicy()).to_json())
        audit.append(
            conn,
            store.now(),
            actor,
            "init",
            "registry",
            {
                "admin": actor,
                "key_id": key.key_id,
                "policy": json.loads((policy or RegistryPolicy()).to_json()),
            },
        )
    BlobStore(root / "blobs").ensure()
    registry = Registry(engine, root, actor)
    registry._key = key
    return registry


def _write_new(path: Path, text: str) -> None:
    """Create ``path``; never overwrite a file of the model that bears the same name."""
    try:
        with path.open("x", encoding="utf-8") as f:
            f.write(text)
    except FileExistsError as e:
        raise RegistryError(
            f"the version holds a file named {path.name}, where the registry's signature goes"
        ) from e


def _private_file(path: Path) -> None:
    """Create ``path`` readable by its owner only (SQLite gives its journals the same mode)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    path.chmod(0o600)


def _key_spec(signing_key: str) -> str:
    """A ``pkcs11:`` URI as given; a key file as an absolute path."""
    return signing_key if signing_key.startswith("pkcs11:") else str(Path(signing_key).absolute())


def _generate_key(path: Path) -> Path:
    from mlgate.provenance.keys import generate_private_key, private_pem  # noqa: PLC0415

    if path.exists():
        return path
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem(generate_private_key(), None))
    return path
