"""The management API over a real uvicorn server, on SQLite and on PostgreSQL: the whole
review-publish-alias-revoke cycle as token holders, errors as JSON with the right status,
ingest from the hub's upstream, and the request limits (413, 429, malformed -> 4xx) leaving
the database unchanged."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hub_api_support import call, dump, running_hub
from hubjobs_support import WORKER, wait_until, workers  # noqa: F401
from hubserver import HubServer
from registry_models import write_benign
from registry_support import as_user

from mlgate.hub.settings import HubSettings
from mlgate.registry.errors import PermissionDenied
from mlgate.registry.roles import Role

USERS = ("alice", "pat", "rita", "rob")


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("api-models")
    return {"v1": write_benign(root / "v1", seed=0), "v2": write_benign(root / "v2", seed=1)}


@pytest.fixture
def tokens(registry: Any) -> dict[str, str]:
    return {u: as_user(registry, u).tokens.create(label="test").secret for u in USERS}


@pytest.fixture
def hub(registry: Any, registry_url: str | None) -> Iterator[str]:
    with running_hub(HubSettings(registry.data_dir, registry_url)) as url:
        yield url


def test_review_publish_alias_revoke_as_token_holders(
    registry: Any, hub: str, tokens: dict[str, str], folders: dict[str, Path]
) -> None:
    pat = as_user(registry, "pat")
    pat.ingest(folders["v1"], name="org/tiny")

    def api(user: str, method: str, path: str, body: Any = None) -> Any:
        answer = call(hub, method, path, body, token=tokens[user])
        assert answer.status == 200, answer.body
        return answer.body

    approved = api("rita", "POST", "/approve/org/tiny@1", {"reason": "looked at it"})
    assert approved["state"] == "approved"
    assert [(d["actor"], d["reason"]) for d in approved["decisions"]] == [("rita", "looked at it")]
    published = api("pat", "POST", "/publish/org/tiny@1", {"alias": "production"})
    assert (published["state"], published["aliases"]) == ("published", ["production"])
    assert published["signature"] is not None and published["bom"] is not None

    [model] = api("rob", "GET", "/models")
    assert (model["name"], model["aliases"]) == ("org/tiny", {"production": 1})
    shown = api("rob", "GET", "/versions/org/tiny@production")
    assert shown["version"] == 1 and len(shown["files"]) == 3
    assert "findings" in api("rob", "GET", "/findings/org/tiny@1")
    assert api("rob", "GET", "/boms/org/tiny@1")["bomFormat"] == "CycloneDX"

    pat.ingest(folders["v2"], name="org/tiny")
    api("rita", "POST", "/approve/org/tiny@2", {"reason": "fine"})
    assert api("pat", "POST", "/publish/org/tiny@2", {"alias": "production"})["version"] == 2
    back = api("pat", "POST", "/rollback/org/tiny", {"alias": "production"})
    assert back["version"] == 1
    assert (
        api("pat", "POST", "/alias/org/tiny", {"alias": "staging", "version": "2"})["version"] == 2
    )
    assert api("alice", "POST", "/revoke/org/tiny@1", {"reason": "leaked"})["state"] == "revoked"
    assert registry.show("org/tiny@production").number == 2  # fell back

    history = api("rob", "GET", "/history/org/tiny")
    assert {(h["to_state"], h["actor"]) for h in history} >= {
        ("approved", "rita"),
        ("published", "pat"),
        ("revoked", "alice"),
    }
    verification = api("rob", "GET", "/audit/verify")
    assert verification["problems"] == [] and verification["first_bad"] is None
    point = api("alice", "POST", "/audit/checkpoint")
    export = call(hub, "GET", "/audit/export", token=tokens["rob"])
    assert export.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in export.body.decode().splitlines()]
    entries = [e for e in lines if e["type"] == "entry"]
    assert entries[-1]["seq"] == point["seq"] == verification["entries"] + 1
    assert any(e["action"] == "approve" and e["actor"] == "rita" for e in entries)


def test_users_policy_and_tokens(registry: Any, hub: str, tokens: dict[str, str]) -> None:
    alice, rob = tokens["alice"], tokens["rob"]
    assert call(hub, "PUT", "/users/sam", {"roles": "reviewer"}, token=alice).status == 200
    users = call(hub, "GET", "/users", token=rob).body
    assert {"name": "sam", "roles": ["reviewer"]} in users
    policy = call(hub, "GET", "/policy", token=rob).body
    changed = call(hub, "PUT", "/policy", {**policy, "required_approvals": 2}, token=alice)
    assert changed.status == 200 and registry.policy.required_approvals == 2
    before = dump(registry)
    for bad in ({"auto_reject_at": "BOGUS"}, {"required_approvals": 0}, {"anonymous": True}):
        refused = call(hub, "PUT", "/policy", {**policy, **bad}, token=alice)
        assert (refused.status, refused.body["error"]) == (422, "InvalidRequest"), bad
    assert call(hub, "PUT", "/users/x", {"roles": "overlord"}, token=alice).status == 403
    assert dump(registry) == before

    made = call(hub, "POST", "/tokens", {"label": "ci", "expires_in_days": 1}, token=rob)
    assert made.status == 201 and made.body["info"]["roles"] == ["reader"]
    new = made.body["token"]
    assert call(hub, "GET", "/models", token=new).status == 200
    listed = call(hub, "GET", "/tokens", token=new).body
    assert [t["label"] for t in listed] == ["test", "ci"] and "secret_hash" not in listed[0]
    gone = call(hub, "DELETE", f"/tokens/{made.body['info']['id']}", token=rob)
    assert (gone.status, gone.body["status"]) == (200, "revoked")
    assert call(hub, "GET", "/models", token=new).status == 401
    assert call(hub, "GET", "/tokens?principal=*", token=rob).status == 403
    assert len(call(hub, "GET", "/tokens?principal=*", token=alice).body) == len(USERS) + 1


@pytest.mark.parametrize("registry_url", [None])
def test_registry_errors_are_json_4xx(
    registry: Any, hub: str, tokens: dict[str, str], folders: dict[str, Path]
) -> None:
    as_user(registry, "pat").ingest(folders["v1"], name="org/tiny")
    before = dump(registry)
    cases = [
        ("rob", "GET", "/versions/org/nothing@1", None, 404, "NotFound"),
        ("rob", "GET", "/versions/org/tiny@7", None, 404, "NotFound"),
        ("rob", "GET", "/boms/org/tiny@1", None, 404, "NotFound"),
        ("pat", "POST", "/publish/org/tiny@1", {}, 409, "TransitionRefused"),
        ("rob", "POST", "/approve/org/tiny@1", {"reason": "me"}, 403, "PermissionDenied"),
        ("pat", "POST", "/ingest", {"source": "hf://org/x"}, 422, "IngestRefused"),
        ("pat", "POST", "/ingest", {"source": "/etc"}, 422, "InvalidRequest"),
        ("pat", "POST", "/ingest", {"source": "hf:///etc/passwd"}, 422, "IngestRefused"),
        ("rita", "POST", "/approve/org/tiny@1", {"reason": ""}, 422, "InvalidRequest"),
        (
            "rita",
            "POST",
            "/approve/org/tiny@1",
            {"reason": "x", "as": "alice"},
            422,
            "InvalidRequest",
        ),
        ("rita", "DELETE", "/approve/org/tiny@1", None, 405, "MethodNotAllowed"),
    ]
    for user, method, path, body, status, kind in cases:
        answer = call(hub, method, path, body, token=tokens[user])
        assert (answer.status, answer.body["error"]) == (status, kind), (path, answer.body)
        assert answer.body["message"]
    assert dump(registry) == before


@pytest.mark.parametrize("registry_url", [None])
def test_ingest_and_rescan_are_background_jobs_run_as_the_requester(
    registry: Any,
    tokens: dict[str, str],
    folders: dict[str, Path],
    workers,  # noqa: F811
) -> None:
    registry.add_user(WORKER, "publisher")
    with HubServer() as upstream:
        files = {p.name: p.read_bytes() for p in folders["v1"].iterdir()}
        commit = upstream.add_repo("org/up", files)
        settings = HubSettings(registry.data_dir, upstream=upstream.url)
        with running_hub(settings) as hub:
            body = {"source": "hf://org/up@main", "name": "org/up"}
            queued = call(hub, "POST", "/ingest", body, token=tokens["pat"])
            assert queued.status == 202, queued.body
            assert (queued.body["kind"], queued.body["state"]) == ("ingest", "queued")
            assert queued.body["args"]["actor"] == "pat"
            assert registry.models() == []  # nothing fetched in the request
            workers(registry, "--upstream", upstream.url)
            key = queued.body["key"]
            done = wait_until(
                lambda: (j := call(hub, "GET", f"/jobs/{key}", token=tokens["rob"]).body)["state"]
                == "done" and j,
                what="the ingest job",
            )
            assert (done["result"]["version"], done["result"]["state"]) == ("org/up@1", "scanned")
            version = registry.show("org/up@1")
            assert (version.ingested_by, version.source.revision) == ("pat", commit)
            again = call(hub, "POST", "/ingest", body, token=tokens["pat"])
            assert again.status == 202 and again.body["key"] == key  # one version per commit
            scan = call(hub, "POST", "/rescan/org/up@1", token=tokens["rita"])
            assert scan.status == 202 and scan.body["args"]["actor"] == "rita"
            wait_until(
                lambda: call(hub, "GET", f"/jobs/{scan.body['key']}", token=tokens["rob"]).body[
                    "state"
                ]
                == "done",
                what="the scan job",
            )
            refused = call(hub, "POST", "/ingest", body, token=tokens["rob"])
            assert refused.status == 403
    assert [v.number for m in registry.models() for v in m.versions] == [1]
    rescans = [h for h in registry.show("org/up@1").history if h.actor == "rita"]
    assert rescans and rescans[-1].to_state == "scanned"


@pytest.mark.parametrize("registry_url", [None])
def test_oversized_and_malformed_requests_change_nothing(
    registry: Any, tokens: dict[str, str], folders: dict[str, Path]
) -> None:
    as_user(registry, "pat").ingest(folders["v1"], name="org/tiny")
    rita = tokens["rita"]
    before = dump(registry)
    with running_hub(HubSettings(registry.data_dir, max_body_bytes=1024)) as hub:
        big = {"reason": "x" * 2000}
        assert call(hub, "POST", "/approve/org/tiny@1", big, token=rita).status == 413
        assert _chunked(hub, "/approve/org/tiny@1", rita, 4096).status == 413
        refused = {
            "/approve/org/tiny@1/../../revoke/org/tiny@1": 400,
            "/approve/org/tiny%2f..%2f..%2frevoke/org/tiny@1": 400,
            "/approve/org/tiny@1%0d%0aX-Injected:%201": 400,
            "/approve/" + "a" * 5000: 414,
        }
        for path, status in refused.items():
            answer = call(hub, "POST", path, {"reason": "ok"}, token=rita)
            assert answer.status == status, (path, answer.body)
            assert "x-injected" not in answer.headers
        huge = {f"X-Filler-{i}": "y" * 1000 for i in range(10)}
        answer = call(
            hub, "POST", "/approve/org/tiny@1", {"reason": "ok"}, token=rita, headers=huge
        )
        assert answer.status == 431
        for raw in (
            b"{",
            b"[]",
            b'{"reason": 1}',
            b"\xff\xfe",
            b'{"reason": ' + b"[" * 500 + b"]" * 500 + b"}",
        ):
            answer = call(hub, "POST", "/approve/org/tiny@1", raw=raw, token=rita)
            assert 400 <= answer.status < 500, (raw, answer.status)
        assert call(hub, "GET", "/models", headers={"Authorization": "Basic eDp5"}).status == 401
    assert dump(registry) == before


def _chunked(hub: str, path: str, token: str, size: int) -> http.client.HTTPResponse:
    """A JSON body of ``size`` bytes sent chunked (no Content-Length to refuse it by)."""
    host, port = hub.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    body = json.dumps({"reason": "x" * size}).encode()
    chunks = (body[i : i + 512] for i in range(0, len(body), 512))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    conn.request("POST", f"/api/mlgate/v1{path}", chunks, headers, encode_chunked=True)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


@pytest.mark.parametrize("registry_url", [None])
def test_rate_limit_per_token(registry: Any, tokens: dict[str, str]) -> None:
    with running_hub(HubSettings(registry.data_dir, rate_limit_per_minute=3)) as hub:
        answers = [call(hub, "GET", "/models", token=tokens["rob"]) for _ in range(4)]
        assert [a.status for a in answers] == [200, 200, 200, 429]
        assert answers[-1].body["error"] == "RateLimited"
        assert 1 <= int(answers[-1].headers["retry-after"]) <= 20
        assert call(hub, "GET", "/models", token=tokens["rita"]).status == 200  # its own bucket
        anonymous = [call(hub, "GET", "/models").status for _ in range(4)]
        assert anonymous == [401, 401, 401, 429]


def test_a_scoped_token_cannot_mint_a_wider_one(registry: Any) -> None:
    scoped = registry.tokens.create(label="read-only", roles="reader")
    identity = registry.tokens.authenticate(scoped.secret)
    assert identity.roles == {Role.READER}  # alice is an admin: her reader token reads
    narrowed = registry.acting_as(identity.principal, identity.roles)
    assert narrowed.tokens.create(label="again").info.roles == ("reader",)
    with pytest.raises(PermissionDenied):
        narrowed.tokens.create(label="admin", roles="admin")
