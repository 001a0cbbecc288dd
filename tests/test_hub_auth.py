"""Who may write through the hub, on SQLite and PostgreSQL: every write without a valid
token (none, unknown, expired, revoked, another scheme) is 401, with the wrong role 403, and
leaves every table (the audit log included) exactly as it was; identities come from tokens
only, so separation of duties holds through the API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hub_api_support import call, dump, running_hub
from registry_models import release, write_benign
from registry_support import as_user

from mlgate.hub.settings import HubSettings
from mlgate.registry.lifecycle import State
from mlgate.registry.policy import RegistryPolicy

WRITES: list[tuple[str, str, Any]] = [
    ("POST", "/approve/org/tiny@1", {"reason": "ok"}),
    ("POST", "/reject/org/tiny@1", {"reason": "no"}),
    ("POST", "/publish/org/tiny@1", {"alias": "production"}),
    ("POST", "/deprecate/org/tiny@2", {"reason": "old"}),
    ("POST", "/revoke/org/tiny@2", {"reason": "bad"}),
    ("POST", "/rescan/org/tiny@1", None),
    ("POST", "/ingest", {"source": "hf://org/other"}),
    ("POST", "/alias/org/tiny", {"alias": "staging", "version": "2"}),
    ("POST", "/rollback/org/tiny", {"alias": "production"}),
    ("POST", "/audit/checkpoint", None),
    ("POST", "/tokens", {"label": "mine", "principal": "alice"}),
    ("DELETE", "/tokens/{alice_token}", None),
    ("PUT", "/users/rob", {"roles": "admin"}),
    ("PUT", "/policy", {"auto_reject_at": None}),
]


@pytest.fixture
def setup(registry: Any, registry_url: str | None, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """org/tiny@1 scanned, org/tiny@2 published as production; tokens of every kind."""
    as_user(registry, "pat").ingest(write_benign(tmp_path / "v1"), name="org/tiny")
    release(registry, write_benign(tmp_path / "v2", seed=1), "org/tiny", alias="production")
    alice = registry.tokens.create(label="admin")
    rob = as_user(registry, "rob")
    revoked = rob.tokens.create(label="revoked")
    rob.tokens.revoke(revoked.info.id)
    expired = rob.tokens.create(label="expired", expires_in=timedelta(milliseconds=1))
    time.sleep(0.01)
    state = {
        "reader": rob.tokens.create(label="reader").secret,
        "admin-as-reader": registry.tokens.create(label="ro", roles="reader").secret,
        "revoked": revoked.secret,
        "expired": expired.secret,
        "unknown": "mlg_0123456789abcdef_" + "A" * 43,
        "alice": alice.secret,
        "alice_token": alice.info.id,
    }
    with running_hub(HubSettings(registry.data_dir, registry_url)) as url:
        yield {**state, "url": url}


def test_every_write_without_a_valid_token_or_role_is_refused_and_changes_nothing(
    registry: Any, setup: dict[str, Any]
) -> None:
    before = dump(registry)
    bad_credentials: list[dict[str, str]] = [
        {},
        {"Authorization": f"Bearer {setup['unknown']}"},
        {"Authorization": f"Bearer {setup['expired']}"},
        {"Authorization": f"Bearer {setup['revoked']}"},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": f"Basic {setup['alice']}"},
        {"Authorization": "Bearer"},
    ]
    for method, template, body in WRITES:
        path = template.format(alice_token=setup["alice_token"])
        for headers in bad_credentials:
            answer = call(setup["url"], method, path, body, headers=headers)
            assert (answer.status, answer.body["error"]) == (401, "Unauthenticated"), (
                path,
                headers,
            )
            assert answer.headers["www-authenticate"] == "Bearer"
        # alice's reader-only token still manages alice's own tokens (no role needed).
        own = path.startswith("/tokens")
        for holder in ("reader",) if own else ("reader", "admin-as-reader"):
            answer = call(setup["url"], method, path, body, token=setup[holder])
            assert (answer.status, answer.body["error"]) == (403, "PermissionDenied"), (
                path,
                holder,
            )
    assert dump(registry) == before
    # The same token holder may read, and alice's full token may write.
    assert call(setup["url"], "GET", "/models", token=setup["admin-as-reader"]).status == 200
    assert call(setup["url"], "POST", "/audit/checkpoint", token=setup["alice"]).status == 200
    assert dump(registry) != before


def test_reads_need_a_token_unless_policy_allows_anonymous(
    registry: Any, setup: dict[str, Any]
) -> None:
    url = setup["url"]
    assert call(url, "GET", "/models").status == 401
    assert call(url, "GET", "/models", token=setup["expired"]).status == 401
    registry.add_user("anonymous", "reader")
    registry.set_policy(RegistryPolicy(anonymous_reads=True))
    assert call(url, "GET", "/models").status == 200
    before = dump(registry)
    assert call(url, "POST", "/approve/org/tiny@1", {"reason": "ok"}).status == 401
    assert call(url, "GET", "/tokens?principal=*").status == 403
    assert dump(registry) == before


def test_separation_of_duties_uses_the_tokens_identity(
    registry: Any, setup: dict[str, Any], tmp_path: Path
) -> None:
    registry.add_user("sam", "publisher,reviewer")
    sam = as_user(registry, "sam")
    sam.ingest(write_benign(tmp_path / "v3", seed=3), name="org/sam")
    token = sam.tokens.create(label="sam").secret
    claim = {"X-Mlgate-Actor": "rita", "X-Forwarded-User": "rita"}
    own = call(
        setup["url"], "POST", "/approve/org/sam@1", {"reason": "mine"}, token=token, headers=claim
    )
    assert own.status == 200 and own.body["state"] == "scanned"
    assert [d["actor"] for d in own.body["decisions"]] == ["sam"]
    assert registry.pending_reason(registry.show("org/sam@1")).startswith("separation of duties")
    claimed = call(
        setup["url"], "POST", "/approve/org/sam@1", {"reason": "x", "actor": "rita"}, token=token
    )
    assert claimed.status == 422
    rita = as_user(registry, "rita").tokens.create(label="rita").secret
    other = call(setup["url"], "POST", "/approve/org/sam@1", {"reason": "checked"}, token=rita)
    assert other.body["state"] == "approved"
    approvals = [e for e in registry.audit_export() if '"action": "approve"' in e]
    assert ['"actor": "sam"' in approvals[-2], '"actor": "rita"' in approvals[-1]] == [True, True]


def test_a_users_roles_are_read_on_every_request(registry: Any, setup: dict[str, Any]) -> None:
    token = as_user(registry, "pat").tokens.create(label="pat").secret
    registry.add_user("pat", "reader")  # alice takes publishing away from pat
    body = {"alias": "staging", "version": "2"}
    assert call(setup["url"], "POST", "/alias/org/tiny", body, token=token).status == 403
    registry.add_user("pat", "publisher")
    assert call(setup["url"], "POST", "/alias/org/tiny", body, token=token).status == 200
    assert registry.show("org/tiny@staging").state is State.PUBLISHED
