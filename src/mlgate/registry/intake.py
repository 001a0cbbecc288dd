"""Intake: quarantine a model as a new version, scan it, apply the auto-reject policy and,
under convert-on-ingest, ingest its safetensors conversion."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select

from mlgate.findings import Severity, relative_finding
from mlgate.registry import lineage, store
from mlgate.registry import schema as t
from mlgate.registry.context import RegistryContext
from mlgate.registry.decisions import Decisions
from mlgate.registry.dynamic import DynamicTester, record_dynamic
from mlgate.registry.ingest import (
    HubOptions,
    Origin,
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
from mlgate.registry.lifecycle import State, check_transition
from mlgate.registry.records import Version
from mlgate.registry.roles import Action
from mlgate.registry.sources import SourceLimits

POLICY_ACTOR = "mlgate-policy"


@dataclass(frozen=True)
class StaticScan:
    """A static scan of a version: the JSON ``report``, the ``risk`` summary, each file's
    detected format, the number of findings and, when policy auto-rejects it, why."""

    report: dict[str, Any]
    risk: str
    formats: dict[str, str]
    findings: int
    reject: str | None


class Intake:
    """Ingest and scan; a policy rejection is recorded through :class:`Decisions`."""

    def __init__(self, ctx: RegistryContext, decisions: Decisions) -> None:
        self.ctx = ctx
        self.decisions = decisions

    def ingest(
        self,
        source: str | Path,
        *,
        name: str | None = None,
        owner: str | None = None,
        hub: HubOptions | None = None,
        limits: SourceLimits | None = None,
        scan: bool = True,
        origin: Origin | None = None,
    ) -> Version:
        """Quarantine the model at ``source`` (a path or ``hf://org/name@rev``) as a new
        version, then scan it (unless ``scan=False``) and apply the auto-reject policy.
        ``origin``: where the files really come from, when ``source`` is a stand-in."""
        self.ctx.require(Action.INGEST)
        staging_root = self.ctx.data_dir / "staging"
        staged = stage(str(source), hub or HubOptions(), staging_root, limits or SourceLimits())
        try:
            model = check_name(name or default_name(staged))
            stored = store_files(staged, self.ctx.blobs)
        finally:
            discard_staging(staged, staging_root)
        if origin is not None:
            staged = replace(
                staged, kind=origin.kind, uri=origin.uri, requested_revision=origin.tag
            )
        digest = content_digest(stored)
        view = self.ctx.view(digest, stored)
        licence = read_license(view)
        sources = lineage.card_sources(view)  # read before the write lock is taken
        with self.ctx.write(Action.INGEST) as conn:
            number = self._record_ingest(
                conn, model, owner or self.ctx.actor, staged, stored, digest, licence, sources
            )
        version = self.ctx.show(f"{model}@{number}")
        if not scan:
            return version
        version = self.scan(version.ref)
        if self.ctx.policy.convert_on_ingest and version.state is State.SCANNED:
            return self._convert(version)
        return version

    def _convert(self, original: Version) -> Version:
        """Ingest the safetensors conversion of ``original`` as the next version."""
        from mlgate.registry.conversion import checkpoints_in, convert_view  # noqa: PLC0415

        view = self.ctx.view(original.content_digest, original.files)
        if not checkpoints_in(view):
            return original
        scratch = self.ctx.scratch()
        try:
            outcome = convert_view(view, scratch)
            if outcome.folder is None:
                with self.ctx.write(Action.INGEST) as conn:
                    self.ctx.append_audit(
                        conn, "convert", original.ref, {"refused": outcome.reason}
                    )
                return original
            staged = stage(str(outcome.folder), HubOptions(), scratch, SourceLimits())
            stored = store_files(staged, self.ctx.blobs)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        digest = content_digest(stored)
        view = self.ctx.view(digest, stored)
        licence = read_license(view)
        sources = lineage.card_sources(view)
        with self.ctx.write(Action.INGEST) as conn:
            row = self.ctx.row(conn, original.ref)
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
                sources,
                converted_from=row.id,
            )
            self.ctx.append_audit(
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
        sources: tuple[lineage.Derivation, ...],
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
                ingested_by=self.ctx.actor,
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
        lineage.record(conn, version_id, sources, None)
        origin = f"converted from version {converted_from}" if converted_from else staged.uri
        store.record_state(
            conn, version_id, None, State.QUARANTINED, self.ctx.actor, f"ingested from {origin}"
        )
        details: dict[str, Any] = {
            "source": staged.uri,
            "revision": staged.revision,
            "content_digest": digest,
            "files": {f.path: f.digest for f in stored},
        }
        evidence = vendor_evidence(stored, self.ctx.blobs)
        if evidence:
            details["vendor_evidence"] = evidence
        self.ctx.append_audit(conn, "ingest", f"{model}@{number}", details)
        return number

    def evaluate(self, version: Version) -> StaticScan:
        """Scan a version's content statically, as recorded (no state change): what
        :meth:`scan` records, and what a rescan compares with the stored report."""
        from mlgate.api import scan as scan_paths  # noqa: PLC0415  (heavy; loaded on use)
        from mlgate.render.json import report_to_dict  # noqa: PLC0415

        view = self.ctx.view(version.content_digest, version.files)
        report = scan_paths(view)
        policy = self.ctx.policy
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
        worst = report.max_severity
        incomplete = not report.complete
        risk = "incomplete" if incomplete else (worst.name.lower() if worst is not None else "none")
        blocking = report.at_or_above(policy.auto_reject_at) if policy.auto_reject_at else ()
        reject = None
        if blocking or (incomplete and policy.auto_reject_at):
            rules = sorted({f.rule_id for f in blocking})
            reject = (
                f"auto-rejected: {len(blocking)} finding(s) at or above "
                f"{fail_on.name} ({', '.join(rules)})"
                if blocking
                else "auto-rejected: the scan could not analyse every file"
            )
        return StaticScan(data, risk, formats, len(report.findings), reject)

    def record_report(self, conn: Connection, row: Any, outcome: StaticScan) -> None:
        """Store ``outcome`` as the version's report, risk and per-file formats."""
        # The version's summary: what the scan found each file to be, not the ingest-time guess.
        paths = conn.execute(
            select(t.files.c.path, t.files.c.format).where(t.files.c.version_id == row.id)
        )
        summary = sorted({outcome.formats.get(r.path, r.format) for r in paths})
        conn.execute(
            t.versions.update()
            .where(t.versions.c.id == row.id)
            .values(
                scan_report=json.dumps(outcome.report),
                risk=outcome.risk,
                formats=json.dumps(summary),
            )
        )
        lineage.record(conn, row.id, lineage.report_sources(outcome.report), lineage.RULE)
        for path, fmt in outcome.formats.items():
            conn.execute(
                t.files.update()
                .where(t.files.c.version_id == row.id, t.files.c.path == path)
                .values(format=fmt)
            )

    def scan(self, ref: str) -> Version:
        """Scan a version statically, attach the report and apply the auto-reject policy."""
        version = self.ctx.show(ref)
        outcome = self.evaluate(version)
        # Before anything is recorded: a sandbox that cannot run leaves the version quarantined.
        dynamic = DynamicTester(self.ctx).evaluate(version, outcome)
        if dynamic is not None:
            outcome = dynamic.combine(outcome)
        with self.ctx.write(Action.SCAN) as conn:
            row = self.ctx.row(conn, version.ref)
            check_transition(version.ref, State(row.state), State.SCANNED)
            self.record_report(conn, row, outcome)
            if dynamic is not None:
                record_dynamic(conn, row.id, dynamic)
                self.ctx.append_audit(conn, "dynamic-test", version.ref, dynamic.summary())
            store.record_state(
                conn,
                row.id,
                State(row.state),
                State.SCANNED,
                self.ctx.actor,
                f"static scan: {outcome.risk}",
            )
            self.ctx.append_audit(
                conn, "scan", version.ref, {"risk": outcome.risk, "findings": outcome.findings}
            )
            if outcome.reject is not None:
                self.decisions.record_rejection(
                    conn,
                    row.id,
                    version.ref,
                    State.SCANNED,
                    State.REJECTED,
                    POLICY_ACTOR,
                    outcome.reject,
                )
        return self.ctx.show(version.ref)
