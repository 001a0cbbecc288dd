"""API tokens of the registry (the hub's identities), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from registry_support import as_user

from mlgate.registry.errors import NotFound, PermissionDenied, RegistryError, Unauthenticated
from mlgate.registry.roles import Role


def test_a_token_authenticates_as_its_owner_with_the_roles_it_was_given(registry) -> None:
    new = registry.tokens.create("pat", label="ci upload")
    identity = registry.tokens.authenticate(new.secret)
    assert identity.principal == "pat"
    assert identity.roles == frozenset({Role.PUBLISHER})
    assert identity.token_id == new.info.id
    assert new.secret.startswith("mlg_") and new.info.id in new.secret


def test_only_a_hash_of_the_secret_is_stored(registry) -> None:
    new = registry.tokens.create("pat", label="ci")
    with registry.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT * FROM tokens").all()
        audit = conn.exec_driver_sql("SELECT details FROM audit_entries").scalars().all()
    secret = new.secret.rsplit("_", 1)[1]
    assert stored and all(secret not in str(tuple(row)) for row in stored)
    assert all(secret not in details for details in audit)


def test_a_token_is_scoped_to_no_more_than_its_owners_rights(registry) -> None:
    registry.add_user("dana", "publisher,reviewer")
    narrow = registry.tokens.create("dana", label="read-only", roles="reader")
    assert registry.tokens.authenticate(narrow.secret).roles == frozenset({Role.READER})
    with pytest.raises(PermissionDenied, match="a token cannot add roles"):
        registry.tokens.create("dana", label="escalate", roles="admin")
    reviewer = registry.tokens.create("dana", label="review", roles="reviewer")
    assert registry.tokens.authenticate(reviewer.secret).roles == frozenset({Role.REVIEWER})


def test_taking_a_role_from_the_owner_takes_it_from_their_tokens(registry, tmp_path) -> None:
    new = registry.tokens.create("pat", label="ci")
    identity = registry.tokens.authenticate(new.secret)
    registry.add_user("pat", "reader")
    with pytest.raises(PermissionDenied, match="may not ingest"):
        registry.acting_as(identity.principal, identity.roles).ingest(tmp_path, name="x/y")


def test_the_scope_limits_what_a_registry_acting_for_a_token_may_do(registry) -> None:
    registry.add_user("dana", "admin")
    identity = registry.tokens.authenticate(
        registry.tokens.create("dana", label="r", roles="reader").secret
    )
    scoped = registry.acting_as(identity.principal, identity.roles)
    with pytest.raises(PermissionDenied, match="dana \\(reader\\) may not administer"):
        scoped.add_user("mallory", "admin")
    assert "alice" in scoped.users()  # reading is in scope
    assert "mallory" not in registry.users()


@pytest.mark.parametrize(
    "bearer",
    ["", "hf_abcdef", "mlg_0123456789abcdef_short", "mlg_zzzz_" + "a" * 43, "x" * 10_000],
)
def test_malformed_tokens_are_refused(registry, bearer: str) -> None:
    with pytest.raises(Unauthenticated):
        registry.tokens.authenticate(bearer)


def test_a_wrong_secret_for_a_real_id_is_refused(registry) -> None:
    new = registry.tokens.create("pat", label="ci")
    forged = new.secret[:-4] + ("AAAA" if not new.secret.endswith("AAAA") else "BBBB")
    with pytest.raises(Unauthenticated, match="unknown token"):
        registry.tokens.authenticate(forged)


def test_revoked_and_expired_tokens_are_refused(registry) -> None:
    revoked = registry.tokens.create("pat", label="old")
    info = registry.tokens.revoke(revoked.info.id)
    assert info.revoked_by == "alice" and info.status(info.revoked_at or "") == "revoked"
    with pytest.raises(Unauthenticated, match="revoked"):
        registry.tokens.authenticate(revoked.secret)
    with pytest.raises(RegistryError, match="already revoked"):
        registry.tokens.revoke(revoked.info.id)
    short = registry.tokens.create("pat", label="short", expires_in=timedelta(microseconds=1))
    with pytest.raises(Unauthenticated, match="expired"):
        registry.tokens.authenticate(short.secret)
    with pytest.raises(RegistryError, match="positive"):
        registry.tokens.create("pat", label="never", expires_in=timedelta(0))


def test_users_manage_their_own_tokens_and_only_an_admin_everyones(registry) -> None:
    pat, rob = as_user(registry, "pat"), as_user(registry, "rob")
    mine = pat.tokens.create(label="mine")
    assert [t.id for t in pat.tokens.list()] == [mine.info.id]
    with pytest.raises(PermissionDenied):
        rob.tokens.revoke(mine.info.id)
    with pytest.raises(PermissionDenied):
        rob.tokens.create("pat", label="for pat")
    with pytest.raises(PermissionDenied):
        rob.tokens.list("*")
    assert [t.id for t in registry.tokens.list("*")] == [mine.info.id]
    pat.tokens.revoke(mine.info.id)
    with pytest.raises(NotFound):
        registry.tokens.create("nobody", label="x")


def test_token_changes_are_audited_and_the_chain_still_verifies(registry) -> None:
    new = registry.tokens.create("pat", label="ci", expires_in=timedelta(days=30))
    registry.tokens.revoke(new.info.id)
    entries = [json.loads(line) for line in registry.audit_export()]
    actions = [(e["action"], e["subject"]) for e in entries]
    assert ("token-create", "pat") in actions and ("token-revoke", "pat") in actions
    assert registry.audit_verify().ok


def test_a_user_with_tokens_can_still_have_their_roles_changed(registry) -> None:
    registry.tokens.create("pat", label="ci")
    registry.add_user("pat", "publisher,reviewer")
    assert registry.users()["pat"] == ("publisher", "reviewer")
