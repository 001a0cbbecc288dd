"""Tamper-evident audit log: an append-only hash chain with signed checkpoints.

Entry ``n`` stores ``hash = SHA-256(canonical JSON of (seq, at, actor, action, subject,
details, prev))`` with ``prev`` the hash of entry ``n-1`` (64 zeros for the first). Editing,
deleting or reordering any entry breaks the chain from that point on. Every
``checkpoint_every`` entries the head ``(seq, hash)`` is signed with the organisation key, so
that rewriting the whole chain from the start needs that key, and cutting entries off the end
below the last checkpoint is detected. Entries appended after the newest checkpoint are
protected by the chain only; export the log (or the checkpoints) elsewhere to anchor them.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Connection, select

from mlgate.provenance.keys import hash_for, key_hint
from mlgate.registry import schema
from mlgate.registry.errors import RegistryError
from mlgate.registry.orgkey import OrgKey

GENESIS = "0" * 64
_CHECKPOINT_DOMAIN = b"mlgate-audit-checkpoint/1\n"


@dataclass(frozen=True)
class AuditEntry:
    """One event of the registry's history."""

    seq: int
    at: str
    actor: str
    action: str
    subject: str
    details: Mapping[str, Any]
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        """Export form (one JSON line per entry)."""
        return {
            "type": "entry",
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "details": dict(self.details),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement that the log's entry ``seq`` has hash ``head_hash``."""

    seq: int
    head_hash: str
    at: str
    key_id: str
    signature: str

    def to_json(self) -> dict[str, Any]:
        """Export form."""
        return {
            "type": "checkpoint",
            "seq": self.seq,
            "head_hash": self.head_hash,
            "at": self.at,
            "key_id": self.key_id,
            "signature": self.signature,
        }


@dataclass(frozen=True)
class AuditVerification:
    """Outcome of :func:`verify_log`: ``first_bad`` is the first entry that fails."""

    entries: int
    checkpoints: int
    first_bad: int | None = None
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """True when the chain and every checkpoint verified."""
        return not self.problems


def entry_hash(
    seq: int,
    at: str,
    actor: str,
    action: str,
    subject: str,
    details: Mapping[str, Any],
    prev_hash: str,
) -> str:
    """The chain hash of one entry (canonical JSON: sorted keys, no spaces, UTF-8)."""
    body = {
        "seq": seq,
        "at": at,
        "actor": actor,
        "action": action,
        "subject": subject,
        "details": details,
        "prev": prev_hash,
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def append(
    conn: Connection, at: str, actor: str, action: str, subject: str, details: Mapping[str, Any]
) -> AuditEntry:
    """Append an entry; the caller holds the registry write lock (see ``database``)."""
    last = conn.execute(
        select(schema.audit_entries.c.seq, schema.audit_entries.c.hash)
        .order_by(schema.audit_entries.c.seq.desc())
        .limit(1)
    ).first()
    seq, prev = (last.seq + 1, last.hash) if last else (1, GENESIS)
    digest = entry_hash(seq, at, actor, action, subject, details, prev)
    conn.execute(
        schema.audit_entries.insert().values(
            seq=seq,
            at=at,
            actor=actor,
            action=action,
            subject=subject,
            details=json.dumps(details, sort_keys=True),
            prev_hash=prev,
            hash=digest,
        )
    )
    return AuditEntry(seq, at, actor, action, subject, details, prev, digest)


def changed_since(conn: Connection, seq: int, ignored: str) -> tuple[int, bool]:
    """The head's seq, and whether an entry of an action other than ``ignored`` follows
    ``seq``: two primary-key reads, the second over the entries after ``seq`` only."""
    entries = schema.audit_entries.c
    head = conn.execute(select(entries.seq).order_by(entries.seq.desc()).limit(1)).scalar()
    other = conn.execute(
        select(entries.seq).where(entries.seq > seq, entries.action != ignored).limit(1)
    ).first()
    return head or 0, other is not None or (head or 0) < seq


def checkpoint(conn: Connection, head: AuditEntry, key: OrgKey, at: str) -> Checkpoint:
    """Sign the head of the log and store the checkpoint."""
    signature = key.signer.sign(_checkpoint_bytes(head.seq, head.hash, at))
    point = Checkpoint(
        head.seq, head.hash, at, key.key_id, base64.b64encode(signature).decode("ascii")
    )
    conn.execute(
        schema.audit_checkpoints.insert().values(
            seq=point.seq,
            head_hash=point.head_hash,
            at=point.at,
            key_id=point.key_id,
            signature=point.signature,
        )
    )
    return point


def _checkpoint_bytes(seq: int, head_hash: str, at: str) -> bytes:
    return _CHECKPOINT_DOMAIN + f"{seq}\n{head_hash}\n{at}\n".encode()


def read_entries(conn: Connection, after: int = 0) -> Iterator[AuditEntry]:
    """Every entry (past entry ``after``) in ``seq`` order, streamed."""
    # Per statement: Connection.execution_options() would switch the caller's whole
    # connection to server-side cursors, and a later UPDATE on it fails on PostgreSQL.
    entries = schema.audit_entries
    rows = conn.execute(
        select(entries).where(entries.c.seq > after).order_by(entries.c.seq),
        execution_options={"yield_per": 1000},
    )
    for row in rows:
        yield AuditEntry(
            row.seq,
            row.at,
            row.actor,
            row.action,
            row.subject,
            _details(row.details, row.seq),
            row.prev_hash,
            row.hash,
        )


def read_checkpoints(conn: Connection) -> list[Checkpoint]:
    """Every checkpoint in ``seq`` order."""
    rows = conn.execute(select(schema.audit_checkpoints).order_by(schema.audit_checkpoints.c.seq))
    return [Checkpoint(r.seq, r.head_hash, r.at, r.key_id, r.signature) for r in rows]


def _details(text: str, seq: int) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {"__unparseable__": text, "__seq__": seq}
    return value if isinstance(value, dict) else {"__not_an_object__": value}


def verify_log(
    entries: Iterable[AuditEntry],
    checkpoints: Iterable[Checkpoint],
    public_key: ec.EllipticCurvePublicKey | None,
    *,
    after: int = 0,
    prev: str = GENESIS,
) -> AuditVerification:
    """Check the chain from the first entry and every checkpoint against ``public_key``.

    Reports the first entry where the chain breaks (an edit, deletion, insertion or
    reordering there or just before) and any checkpoint that is unsigned by the key, does not
    match the entry it names, or names an entry past the end (truncation).

    ``after`` and ``prev`` continue a chain already verified up to entry ``after`` (whose hash
    is ``prev``): ``entries`` and ``checkpoints`` are then those past ``after``.
    """
    problems: list[str] = []
    first_bad: int | None = None
    hashes: dict[int, str] = {}
    expected_seq = after + 1
    count = 0
    for entry in entries:
        count += 1
        problem = _entry_problem(entry, expected_seq, prev)
        if problem and first_bad is None:
            first_bad = entry.seq
            problems.append(problem)
        hashes[entry.seq] = entry.hash
        expected_seq, prev = entry.seq + 1, entry.hash
    points = list(checkpoints)
    for point in points:
        problem = _checkpoint_problem(point, hashes, expected_seq - 1, public_key)
        if problem:
            problems.append(problem)
            if first_bad is None:
                first_bad = min(point.seq, expected_seq)
    return AuditVerification(count, len(points), first_bad, tuple(problems))


def _entry_problem(entry: AuditEntry, expected_seq: int, prev: str) -> str | None:
    if entry.seq != expected_seq:
        return (
            f"entry {entry.seq}: expected entry {expected_seq} here (entries deleted or reordered)"
        )
    if entry.prev_hash != prev:
        return f"entry {entry.seq}: does not follow entry {entry.seq - 1} (chain broken)"
    recomputed = entry_hash(
        entry.seq,
        entry.at,
        entry.actor,
        entry.action,
        entry.subject,
        entry.details,
        entry.prev_hash,
    )
    if recomputed != entry.hash:
        return f"entry {entry.seq}: content does not match its hash (edited)"
    return None


def _checkpoint_problem(
    point: Checkpoint,
    hashes: Mapping[int, str],
    last_seq: int,
    public_key: ec.EllipticCurvePublicKey | None,
) -> str | None:
    if point.seq not in hashes:
        return (
            f"checkpoint at entry {point.seq}: the log ends at entry {last_seq} (truncated)"
            if point.seq > last_seq
            else f"checkpoint at entry {point.seq}: that entry is missing"
        )
    if hashes[point.seq] != point.head_hash:
        return f"checkpoint at entry {point.seq}: entry hash differs from the signed one"
    if public_key is None:
        return f"checkpoint at entry {point.seq}: no trusted key to verify its signature"
    if key_hint(public_key) != point.key_id:
        return f"checkpoint at entry {point.seq}: signed by another key ({point.key_id[:16]})"
    try:
        public_key.verify(
            base64.b64decode(point.signature, validate=True),
            _checkpoint_bytes(point.seq, point.head_hash, point.at),
            ec.ECDSA(hash_for(public_key)),
        )
    except (InvalidSignature, ValueError):
        return f"checkpoint at entry {point.seq}: signature does not verify"
    return None


def export_lines(entries: Iterable[AuditEntry], checkpoints: Iterable[Checkpoint]) -> Iterator[str]:
    """JSON lines: every entry, then every checkpoint."""
    for entry in entries:
        yield json.dumps(entry.to_json(), sort_keys=True, ensure_ascii=False)
    for point in checkpoints:
        yield json.dumps(point.to_json(), sort_keys=True)


def read_export(path: Path) -> tuple[list[AuditEntry], list[Checkpoint]]:
    """Parse a file written by :func:`export_lines`."""
    entries: list[AuditEntry] = []
    points: list[Checkpoint] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise RegistryError(f"cannot read audit export {path}: {e}") from e
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            if item["type"] == "entry":
                entries.append(
                    AuditEntry(
                        int(item["seq"]),
                        item["at"],
                        item["actor"],
                        item["action"],
                        item["subject"],
                        item["details"],
                        item["prev_hash"],
                        item["hash"],
                    )
                )
            else:
                points.append(
                    Checkpoint(
                        int(item["seq"]),
                        item["head_hash"],
                        item["at"],
                        item["key_id"],
                        item["signature"],
                    )
                )
        except (ValueError, KeyError, TypeError) as e:
            raise RegistryError(f"{path}:{number}: not an audit export line: {e}") from e
    return entries, points
