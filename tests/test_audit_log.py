"""The audit log on both backends: what is recorded, signed checkpoints, and tampering with
the database (or an export) behind the registry's back, detected at the first bad entry."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from registry_models import release, write_benign, write_malicious
from registry_support import as_user
from sqlalchemy import Connection, select

from mlgate.provenance.keys import generate_private_key
from mlgate.registry import audit
from mlgate.registry import schema as t
from mlgate.registry.policy import RegistryPolicy

ENTRIES = t.audit_entries
POINTS = t.audit_checkpoints


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("audit-models")
    return write_benign(root / "tiny"), write_malicious(root / "evil", "audit-evil")


@pytest.fixture
def logged(registry):  # type: ignore[no-untyped-def]
    """A registry whose log has 11 entries and checkpoints at entries 6 and 9.

    1 init, 2-5 the fixture's users, 6 the policy (checkpoint_every=3), 7-11 more users.
    """
    registry.set_policy(RegistryPolicy(checkpoint_every=3))
    for n in range(7, 12):
        registry.add_user(f"user{n}", "reader")
    return registry


def entries_of(registry: Any) -> list[audit.AuditEntry]:
    with registry.engine.connect() as conn:
        return list(audit.read_entries(conn))


def tamper(registry: Any, change: Callable[[Connection], object]) -> None:
    """Change the database directly, as someone with database access could."""
    with registry.engine.begin() as conn:
        change(conn)


def test_every_change_is_recorded_and_checkpoints_are_signed(
    registry, models, tmp_path: Path
) -> None:
    registry.set_policy(RegistryPolicy(checkpoint_every=3))
    registry.add_user("pam", "publisher")
    release(registry, models[0], "m", alias="production")
    as_user(registry, "rob").pull("m@1", tmp_path / "out")
    registry.deprecate("m@1", "old")
    registry.revoke("m@1", "withdrawn")
    as_user(registry, "pat").ingest(models[1], name="evil")
    point = registry.audit_checkpoint()
    log = entries_of(registry)
    assert [(e.action, e.subject, e.actor) for e in log] == [
        ("init", "registry", "alice"),
        ("user", "pat", "alice"),
        ("user", "rita", "alice"),
        ("user", "rex", "alice"),
        ("user", "rob", "alice"),
        ("policy", "registry", "alice"),
        ("user", "pam", "alice"),
        ("ingest", "m@1", "pat"),
        ("scan", "m@1", "pat"),
        ("approve", "m@1", "rita"),
        ("publish", "m@1", "pat"),
        ("alias", "m@production", "pat"),
        ("download", "m@1", "rob"),
        ("deprecated", "m@1", "alice"),
        ("revoked", "m@1", "alice"),
        ("unalias", "m@production", "alice"),
        ("ingest", "evil@1", "pat"),
        ("scan", "evil@1", "pat"),
        ("reject", "evil@1", "mlgate-policy"),
        ("checkpoint", "registry", "alice"),
    ]
    assert log[7].details["files"].keys() == {"README.md", "config.json", "model.safetensors"}
    assert log[12].details == {"files": ["README.md", "config.json", "model.safetensors"]}
    assert log[5].details["checkpoint_every"] == 3
    assert [e.seq for e in log] == list(range(1, 21))
    with registry.engine.connect() as conn:
        points = audit.read_checkpoints(conn)
    assert [p.seq for p in points] == [6, 9, 12, 15, 18, 20]
    assert point.seq == 20 and point.head_hash == log[-1].hash
    result = registry.audit_verify()
    assert (result.ok, result.entries, result.checkpoints, result.first_bad) == (
        True,
        20,
        6,
        None,
    )


# -- tampering with the database --------------------------------------------------------------


def edit_details(conn: Connection) -> None:
    conn.execute(ENTRIES.update().where(ENTRIES.c.seq == 4).values(details='{"roles": ["admin"]}'))


def edit_actor(conn: Connection) -> None:
    conn.execute(ENTRIES.update().where(ENTRIES.c.seq == 7).values(actor="mallory"))


def delete_middle(conn: Connection) -> None:
    conn.execute(ENTRIES.delete().where(ENTRIES.c.seq == 7))


def swap_seq(conn: Connection) -> None:
    for old, new in ((7, 1000), (8, 7), (1000, 8)):
        conn.execute(ENTRIES.update().where(ENTRIES.c.seq == old).values(seq=new))


def truncate(conn: Connection) -> None:
    conn.execute(ENTRIES.delete().where(ENTRIES.c.seq >= 8))


def copy_signature(conn: Connection) -> None:
    other = conn.execute(select(POINTS.c.signature).where(POINTS.c.seq == 9)).scalar()
    conn.execute(POINTS.update().where(POINTS.c.seq == 6).values(signature=other))


def garble_signature(conn: Connection) -> None:
    conn.execute(POINTS.update().where(POINTS.c.seq == 9).values(signature="not base64!"))


def rehash_from(conn: Connection, seq: int) -> dict[int, str]:
    """Edit entry ``seq`` and re-hash the chain from there, as a forger without the key would;
    returns the new hash of every rewritten entry."""
    new: dict[int, str] = {}
    prev = audit.GENESIS
    for e in list(audit.read_entries(conn)):
        details = {"roles": ["admin"]} if e.seq == seq else dict(e.details)
        if e.seq >= seq:
            digest = audit.entry_hash(e.seq, e.at, e.actor, e.action, e.subject, details, prev)
            conn.execute(
                ENTRIES.update()
                .where(ENTRIES.c.seq == e.seq)
                .values(details=json.dumps(details, sort_keys=True), prev_hash=prev, hash=digest)
            )
            new[e.seq] = digest
        prev = new.get(e.seq, e.hash)
    return new


def forge_chain(conn: Connection) -> None:
    rehash_from(conn, 4)


def forge_chain_and_checkpoints(conn: Connection) -> None:
    new = rehash_from(conn, 4)
    for seq in (6, 9):
        conn.execute(POINTS.update().where(POINTS.c.seq == seq).values(head_hash=new[seq]))


TAMPERING = [
    (edit_details, 4, "entry 4: content does not match its hash (edited)"),
    (edit_actor, 7, "entry 7: content does not match its hash (edited)"),
    (delete_middle, 8, "entry 8: expected entry 7 here (entries deleted or reordered)"),
    (swap_seq, 7, "entry 7: does not follow entry 6 (chain broken)"),
    (truncate, 8, "checkpoint at entry 9: the log ends at entry 7 (truncated)"),
    (copy_signature, 6, "checkpoint at entry 6: signature does not verify"),
    (garble_signature, 9, "checkpoint at entry 9: signature does not verify"),
    (forge_chain, 6, "checkpoint at entry 6: entry hash differs from the signed one"),
    (forge_chain_and_checkpoints, 6, "checkpoint at entry 6: signature does not verify"),
]


def test_tampering_is_reported_at_the_first_bad_entry(logged) -> None:
    key = logged.org_public_key()
    for change, first_bad, message in TAMPERING:
        # Each change is verified inside its own transaction, then rolled back: one
        # database serves every case.
        with logged.engine.connect() as conn, conn.begin() as txn:
            change(conn)
            result = audit.verify_log(audit.read_entries(conn), audit.read_checkpoints(conn), key)
            txn.rollback()
        got = (change.__name__, result.ok, result.first_bad, result.problems[:1])
        assert got == (change.__name__, False, first_bad, (message,))
    assert logged.audit_verify().ok  # every change was rolled back
    tamper(logged, edit_details)  # committed: what Registry.audit_verify reads
    result = logged.audit_verify()
    assert (result.ok, result.first_bad) == (False, 4)


def test_entries_after_the_last_checkpoint_rely_on_the_chain_alone(logged) -> None:
    """Documented limit: cutting entries newer than the newest checkpoint goes unnoticed
    unless the log (or its checkpoints) was exported elsewhere; a checkpoint closes it."""
    tamper(logged, lambda conn: conn.execute(ENTRIES.delete().where(ENTRIES.c.seq > 9)))
    assert logged.audit_verify().ok
    logged.audit_checkpoint()  # entry 10, signed at once
    tamper(logged, lambda conn: conn.execute(ENTRIES.delete().where(ENTRIES.c.seq == 10)))
    result = logged.audit_verify()
    assert (result.ok, result.first_bad) == (False, 10)
    assert "checkpoint at entry 10: the log ends at entry 9 (truncated)" in result.problems


def test_another_key_does_not_verify_the_checkpoints(logged) -> None:
    result = logged.audit_verify(generate_private_key().public_key())
    assert not result.ok and result.first_bad == 6
    assert len(result.problems) == 2
    assert all("signed by another key" in p for p in result.problems)


# -- export ---------------------------------------------------------------------------------


def test_exported_log_verifies_with_the_public_key_and_tampering_shows(
    logged, tmp_path: Path
) -> None:
    lines = list(logged.audit_export())
    assert [json.loads(line)["type"] for line in lines] == ["entry"] * 11 + ["checkpoint"] * 2
    export = tmp_path / "audit.jsonl"
    export.write_text("\n".join(lines) + "\n", encoding="utf-8")
    entries, points = audit.read_export(export)
    result = audit.verify_log(entries, points, logged.org_public_key())
    assert (result.ok, result.entries, result.checkpoints) == (True, 11, 2)
    assert not audit.verify_log(entries, points, None).ok  # no trusted key: fail closed
    item = json.loads(lines[4])
    item["actor"] = "mallory"
    lines[4] = json.dumps(item, sort_keys=True)
    export.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = audit.verify_log(*audit.read_export(export), logged.org_public_key())
    assert (result.ok, result.first_bad) == (False, 5)
    assert result.problems[0] == "entry 5: content does not match its hash (edited)"
