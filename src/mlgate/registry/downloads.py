"""What consumers see: pulls of served versions, download records, content look-ups and
the inventory queries."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select

from mlgate.registry import database, store
from mlgate.registry import schema as t
from mlgate.registry.context import RegistryContext, split_ref
from mlgate.registry.errors import RegistryError, TransitionRefused
from mlgate.registry.lifecycle import SERVED, State
from mlgate.registry.records import FileRecord, ModelSummary, StateChange, Version
from mlgate.registry.roles import Action, Role, narrow, require
from mlgate.registry.sources.base import DEFAULT_LIMITS, SourceError, check_rel_path

# Chooses one of a model's versions (newest first), or none.
Picker = Callable[[tuple[Version, ...]], Version | None]


@dataclass(frozen=True)
class DownloadRecord:
    """One download to record: who (``actor``, with their token's ``scope``), what."""

    actor: str
    scope: frozenset[Role] | None
    ref: str
    path: str


class Downloads:
    """Pulls, download records and read-only views of the inventory."""

    def __init__(self, ctx: RegistryContext) -> None:
        self.ctx = ctx

    def pull(self, ref: str, dest: Path) -> Version:
        """Write a served version's files and the registry's signature into the empty folder
        ``dest`` (:func:`materialise`), checking every blob's digest while copying; each
        file's download is recorded."""
        version = self.ctx.show(ref)
        self.ctx.require(Action.DOWNLOAD)
        require_served(version)
        materialise(dest, version, lambda f, target: self.copy_out(f.digest, target))
        self.record_downloads(version.ref, [f.path for f in version.files])
        return version

    def copy_out(self, digest: str, target: Path) -> None:
        """Copy a blob to ``target``, refusing it if its content no longer matches."""
        from mlgate.registry.blobs import copy_verified  # noqa: PLC0415

        target.parent.mkdir(parents=True, exist_ok=True)
        copy_verified(self.ctx.blobs.path(digest), target, digest)

    def record_downloads(self, ref: str, paths: list[str]) -> None:
        """Record that the actor downloaded ``paths`` of a version."""
        with self.ctx.write(Action.DOWNLOAD) as conn:
            row = self.ctx.row(conn, ref)
            at = store.now()
            for path in paths:
                conn.execute(
                    t.downloads.insert().values(
                        version_id=row.id, path=path, actor=self.ctx.actor, at=at
                    )
                )
            self.ctx.append_audit(conn, "download", self.ctx.subject(conn, row), {"files": paths})

    def record_many(self, records: Sequence[DownloadRecord]) -> list[RegistryError | None]:
        """Record downloads by several identities in one transaction (the hub's group
        commit: one write and one sync for a burst of downloads instead of one each). Each
        record's identity must be allowed to download, checked in the transaction; the
        answer says, per record, None (recorded) or why not (nothing of it recorded)."""
        outcome: list[RegistryError | None] = []
        with database.write_transaction(self.ctx.engine) as conn:
            at = store.now()
            for record in records:
                try:
                    self._record_one(conn, record, at)
                except RegistryError as e:
                    outcome.append(e)
                else:
                    outcome.append(None)
        return outcome

    def _record_one(self, conn: Connection, record: DownloadRecord, at: str) -> None:
        held = self.ctx.roles_of(conn, record.actor)
        roles = held if record.scope is None else narrow(held, record.scope)
        require(record.actor, roles, Action.DOWNLOAD)
        row = self.ctx.row(conn, record.ref)
        conn.execute(
            t.downloads.insert().values(
                version_id=row.id, path=record.path, actor=record.actor, at=at
            )
        )
        subject = self.ctx.subject(conn, row)
        self.ctx.append_audit(
            conn, "download", subject, {"files": [record.path]}, actor=record.actor
        )

    def versions_of(self, name: str) -> tuple[Version, ...]:
        """Every version of model ``name``, newest first, in summary form (no files or
        documents): what the hub resolves ``main``, aliases and commit ids against."""
        with self.ctx.read(Action.READ) as conn:
            return _newest_first(conn, name)[1]

    def serving_view(self, ref: str) -> Version:
        """A version with its files, state history, signature and BOM but without its
        download records, which grow with every download: what each hub request reads."""
        with self.ctx.read(Action.READ) as conn:
            row = self.ctx.row(conn, ref)
            return _with_detail(conn, row, store.to_version(conn, row, split_ref(ref)[0], False))

    def resolve(
        self, name: str, pick: Callable[[tuple[Version, ...]], Version | None]
    ) -> Version | None:
        """In one read: the version of model ``name`` that ``pick`` chooses among its
        versions (summaries, newest first), as :meth:`serving_view` gives it; None when it
        chooses none. The hub resolves every request with this (one transaction, not two)."""
        with self.ctx.read(Action.READ) as conn:
            rows, versions = _newest_first(conn, name)
            chosen = pick(versions)
            if chosen is None:
                return None
            row = next(r for r in rows if r.number == chosen.number)
            return _with_detail(conn, row, chosen)

    def find_by_content(self, digests: Mapping[str, str]) -> list[Version]:
        """Versions whose files are exactly ``digests`` (path -> SHA-256), newest first."""
        if not digests:
            return []
        with self.ctx.read(Action.READ) as conn:
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
        with self.ctx.read(Action.READ) as conn:
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

    def models(self) -> list[ModelSummary]:
        """Every model with its versions."""
        with self.ctx.read(Action.READ) as conn:
            return store.model_summaries(conn)

    def history(self, name: str) -> tuple[StateChange, ...]:
        """Every state change of every version of model ``name``, oldest first."""
        with self.ctx.read(Action.READ) as conn:
            model = store.model_row(conn, name)
            ids = list(
                conn.execute(
                    select(t.versions.c.id).where(t.versions.c.model_id == model.id)
                ).scalars()
            )
            return store.history_of(conn, ids)


def require_served(version: Version) -> None:
    """Refuse a version that is not served (published or deprecated)."""
    if version.state not in SERVED:
        raise TransitionRefused(
            f"{version.ref} is {version.state.value}: only published versions are served"
        )


def materialise(dest: Path, version: Version, fetch: Callable[[FileRecord, Path], None]) -> None:
    """Write ``version``'s files (each by ``fetch``, which checks its digest) and the
    registry's signature (``mlgate.sig``, so a vendor's own ``model.sig`` is kept) into the
    empty folder ``dest``: what ``pull`` does, locally or from a hub.

    The files are written into a temporary sibling renamed to ``dest`` at the end: a pull
    that fails (a corrupt blob, a full disk, a dropped connection) leaves no partial model
    behind to be used. File names are checked again (a hub is a remote party: no ``..``).
    """
    from mlgate.provenance.manifest import PULL_SIGNATURE_FILE  # noqa: PLC0415

    if dest.exists() and any(dest.iterdir()):
        raise RegistryError(f"{dest} is not empty")
    staging = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.pull")
    try:
        for f in version.files:
            check_rel_path(f.path, DEFAULT_LIMITS)
        staging.mkdir(parents=True)
        for f in version.files:
            target = staging / f.path
            target.parent.mkdir(parents=True, exist_ok=True)
            fetch(f, target)
        if version.signature:
            _write_new(staging / PULL_SIGNATURE_FILE, version.signature)
        os.rename(staging, dest)  # replaces an empty dest; fails on one filled meanwhile
    except SourceError as e:
        raise RegistryError(f"cannot pull {version.ref}: {e}") from e
    except OSError as e:
        raise RegistryError(f"cannot pull {version.ref} into {dest}: {e.strerror or e}") from e
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _newest_first(conn: Connection, name: str) -> tuple[list[Any], tuple[Version, ...]]:
    """The rows of model ``name``'s versions, newest first, and their summaries."""
    model = store.model_row(conn, name)
    rows = list(
        conn.execute(
            select(t.versions)
            .where(t.versions.c.model_id == model.id)
            .order_by(t.versions.c.number.desc())
        )
    )
    return rows, store.version_records(conn, rows, name, model.id)


def _with_detail(conn: Connection, row: Any, base: Version) -> Version:
    """``base`` with what serving it needs: files, state history, BOM (no download records)."""
    return replace(
        base,
        files=store.files_of(conn, row.id),
        history=store.history_of(conn, [row.id]),
        bom=json.loads(row.bom) if row.bom else None,
    )


def _write_new(path: Path, text: str) -> None:
    """Create ``path``; never overwrite a file of the model that bears the same name."""
    try:
        with path.open("x", encoding="utf-8") as f:
            f.write(text)
    except FileExistsError as e:
        raise RegistryError(
            f"the version holds a file named {path.name}, where the registry's signature goes"
        ) from e
