"""``mlgate registry check``: find orphan blobs and inconsistent records, optionally repair.

A crash between storing blobs and recording the version leaves unreferenced blobs (and
possibly a temporary file); these are harmless and ``--repair`` removes them once they are
older than a grace period, so that an ingest still in flight never loses its blobs.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select

from mlgate.registry import database, store
from mlgate.registry import schema as t
from mlgate.registry.lifecycle import SERVED, State
from mlgate.registry.service import Registry

_GRACE_SECONDS = 3600


@dataclass
class CheckReport:
    """Everything found wrong; ``problems`` are inconsistencies, ``orphans`` are leftovers."""

    versions: int = 0
    blobs: int = 0
    problems: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        """True when no record is inconsistent (orphans alone are harmless)."""
        return not self.problems


def check_registry(
    registry: Registry,
    *,
    deep: bool = False,
    repair: bool = False,
    grace_seconds: float = _GRACE_SECONDS,
) -> CheckReport:
    """Check every version's records and blobs, and the audit chain.

    ``deep`` re-hashes every blob; ``repair`` deletes orphan blobs and temporary files
    older than ``grace_seconds`` (records are never changed: they are evidence).
    """
    report = CheckReport()
    with database.read_transaction(registry.engine) as conn:
        referenced = _check_versions(conn, registry, report, deep)
        contents = set(conn.execute(select(t.versions.c.content_digest)).scalars())
        _check_aliases(conn, report)
    report.problems.extend(f"audit log: {p}" for p in registry.audit_verify().problems)
    present = set(registry.blobs.digests())
    report.blobs = len(present)
    stale = time.time() - grace_seconds
    for digest in sorted(present - referenced):
        report.orphans.append(f"orphan blob {digest} (no version references it)")
        if repair and registry.blobs.path(digest).stat().st_mtime < stale:
            registry.blobs.remove(digest)
            report.repaired.append(f"removed orphan blob {digest}")
    for tmp in registry.blobs.temporaries():
        report.orphans.append(f"interrupted write {tmp.name}")
        if repair and tmp.stat().st_mtime < stale:
            tmp.unlink(missing_ok=True)
            report.repaired.append(f"removed {tmp.name}")
    _check_scratch(registry, contents, report, repair, stale)
    return report


def _check_scratch(
    registry: Registry, contents: set[str], report: CheckReport, repair: bool, stale: float
) -> None:
    """Scratch folders and views a killed ingest, scan or publish left behind: their hard
    links would keep removed orphan blobs' bytes on disk for good."""
    root = registry.data_dir
    leftovers = [p for name in ("tmp", "staging") for p in _children(root / name)]
    leftovers += [p for p in _children(root / "views") if p.name not in contents]
    for path in leftovers:
        rel = path.relative_to(root).as_posix()
        report.orphans.append(f"leftover {rel} (interrupted ingest, scan or publish)")
        if repair and path.lstat().st_mtime < stale:
            shutil.rmtree(path, ignore_errors=True)
            report.repaired.append(f"removed {rel}")


def _children(folder: Path) -> list[Path]:
    return sorted(folder.iterdir()) if folder.is_dir() else []


def _check_versions(
    conn: Connection, registry: Registry, report: CheckReport, deep: bool
) -> set[str]:
    referenced: set[str] = set()
    rows = conn.execute(
        select(t.versions, t.models.c.name).join(t.models, t.models.c.id == t.versions.c.model_id)
    ).all()
    for row in rows:
        report.versions += 1
        ref = f"{row.name}@{row.number}"
        files = store.files_of(conn, row.id)
        if len(files) != row.file_count:
            report.problems.append(f"{ref}: {len(files)} file records, expected {row.file_count}")
        for f in files:
            referenced.add(f.digest)
            if not registry.blobs.exists(f.digest):
                report.problems.append(f"{ref}: blob of {f.path} is missing ({f.digest[:16]})")
            elif deep and not registry.blobs.verify(f.digest):
                report.problems.append(f"{ref}: blob of {f.path} is corrupt ({f.digest[:16]})")
        report.problems.extend(f"{ref}: {p}" for p in _state_problems(row))
    return referenced


def _state_problems(row: Any) -> list[str]:
    state = State(row.state)
    problems = []
    if state is not State.QUARANTINED and row.scan_report is None:
        problems.append(f"{state.value} but no scan report is attached")
    if state in SERVED and not (row.signature and row.bom):
        problems.append(f"{state.value} but its signature or BOM is missing")
    return problems


def _check_aliases(conn: Connection, report: CheckReport) -> None:
    rows = conn.execute(
        select(t.aliases.c.alias, t.versions.c.state, t.versions.c.number, t.models.c.name)
        .join(t.versions, t.versions.c.id == t.aliases.c.version_id)
        .join(t.models, t.models.c.id == t.aliases.c.model_id)
    )
    for r in rows:
        if State(r.state) not in SERVED:
            report.problems.append(
                f"{r.name}@{r.alias} points at {r.name}@{r.number}, which is {r.state}"
            )
