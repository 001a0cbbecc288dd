"""The web console over real HTTP: a real uvicorn server over a real SQLite registry, logged in
with real hub tokens. Login and sessions (good, bad, revoked tokens; cookie flags), CSRF
refusals that change nothing, security headers, every page over a registry in every state,
decisions under the session's identity, separation of duties, and hostile text rendered inert."""

from __future__ import annotations

import base64
import http.client
import json
import marshal
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from hub_support import Hub
from payloads import glob0
from registry_support import as_user, sqlite_unless_asked
from sqlalchemy import func, select

from mlgate.console import chain
from mlgate.console.session import KEY_FILE
from mlgate.registry import schema as t

XSS = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>')
RAW_TAGS = re.compile(r"<script>alert|<img src=x", re.IGNORECASE)


@pytest.fixture
def registry_url(request: pytest.FixtureRequest) -> str | None:
    """SQLite; the test that reads every page runs on PostgreSQL too (indirect parameter)."""
    return sqlite_unless_asked(request)


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: str

    def cookie(self) -> str:
        return self.headers.get("set-cookie", "")


@dataclass
class Browser:
    """A cookie-keeping HTTP client that does not follow redirects (they are checked)."""

    url: str
    cookies: dict[str, str] = field(default_factory=dict)

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None, **extra: str
    ) -> Answer:
        parts = urlsplit(self.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        headers = {"cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()), **extra}
        body = None
        if form is not None:
            body = urlencode(form)
            headers["content-type"] = "application/x-www-form-urlencoded"
        conn.request(method, "/console" + path, body=body, headers=headers)
        response = conn.getresponse()
        answer = Answer(response.status, response.headers, response.read().decode())
        conn.close()
        for header in response.headers.get_all("set-cookie") or []:
            name, _, rest = header.partition("=")
            self.cookies[name] = rest.split(";")[0]
        return answer

    def get(self, path: str) -> Answer:
        return self.request("GET", path)

    def post(self, path: str, form: dict[str, str]) -> Answer:
        return self.request("POST", path, form)

    def csrf(self, path: str = "/") -> str:
        match = re.search(r'name="csrf" value="([^"]+)"', self.get(path).body)
        assert match, "no CSRF token in the page"
        return match.group(1)

    def login(self, token: str) -> Answer:
        return self.post("/login", {"csrf": self.csrf("/login"), "token": token})


def sid(cookie: str) -> str:
    """The session id a (signed, not encrypted) console cookie carries."""
    body = cookie.partition(".")[0]
    decoded: list[Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return str(decoded[0])


def logged_in(hub: Hub, user: str) -> Browser:
    browser = Browser(hub.url)
    answer = browser.login(hub.token(user))
    assert (answer.status, answer.headers["location"]) == (303, "/console/")
    return browser


def test_login_session_cookie_and_headers(hub: Hub) -> None:
    browser = Browser(hub.url)
    assert browser.get("/").status == 303  # not logged in: to the login page
    first = browser.get("/login")
    assert first.status == 200
    headers = first.headers
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "default-src 'self'" in csp and "form-action 'self'" in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    before = browser.cookies["mlgate_console_login"]  # the login form's own session

    bad = browser.post("/login", {"csrf": browser.csrf("/login"), "token": "mlg_nope"})
    assert bad.status == 401 and "not an mlgate token" in bad.body

    token = hub.token("rita")
    good = browser.login(token)
    assert good.status == 303
    cookie = good.cookie()
    flags = {f.strip().lower() for f in cookie.split(";")[1:]}
    assert {"httponly", "samesite=lax", "path=/console"} <= flags
    assert "secure" not in flags  # plain http here; https or a trusted proxy adds it
    value = browser.cookies["mlgate_console"]
    assert sid(value) != sid(before)  # a new session id at login (session fixation)
    assert token not in value and token.split("_")[-1] not in value
    page = browser.get("/")
    assert page.status == 200 and "rita" in page.body

    # Behind a TLS proxy uvicorn trusts (the test server trusts 127.0.0.1, as
    # `mlgate serve --forwarded-allow-ips 127.0.0.1` would), the cookie is Secure.
    proxied = browser.request("GET", "/login", **{"x-forwarded-proto": "https"})
    assert "secure" in {f.strip().lower() for f in proxied.cookie().split(";")}
    key = hub.registry.data_dir / KEY_FILE
    assert key.stat().st_mode & 0o777 == 0o600 and len(key.read_bytes()) == 32

    # The token revoked: the next request is logged out.
    hub.registry.tokens.revoke(token.split("_")[1])
    assert browser.get("/").status == 303
    assert Browser(hub.url).login(token).status == 401


def test_requests_without_the_cookie_leave_the_live_session_alone(hub: Hub) -> None:
    """A cross-site post (SameSite keeps it cookieless) and the login page must not replace
    a reviewer's session: otherwise any other site could log them out."""
    browser = logged_in(hub, "rob")
    live = browser.cookies["mlgate_console"]
    forged = Browser(hub.url).post("/review/reject", {"ref": "org/x@1", "reason": "forged"})
    assert forged.status in (303, 403) and "mlgate_console=" not in forged.cookie()
    assert "mlgate_console=" not in browser.get("/login").cookie()  # only the form's own
    assert browser.cookies["mlgate_console"] == live
    assert browser.get("/").status == 200


def test_logout_and_forged_cookie(hub: Hub) -> None:
    browser = logged_in(hub, "rob")
    stolen = dict(browser.cookies)
    body, mac = stolen["mlgate_console"].split(".")
    for forged in (body + "." + "0" * len(mac), body + ".\xe9", "\xe9.x", "a.b.c", ""):
        assert Browser(hub.url, {"mlgate_console": forged}).get("/").status == 303
    assert browser.post("/logout", {"csrf": "\xe9" * 64}).status == 403
    assert browser.post("/logout", {"csrf": browser.csrf()}).status == 303
    assert browser.get("/").status == 303
    # An admin withdraws every role of rob's: his live session ends with them.
    again = logged_in(hub, "rob")
    hub.registry.add_user("rob", "")
    assert again.get("/").status == 303


@pytest.mark.parametrize("registry_url", ["sqlite", "postgresql"], indirect=True)
def test_every_page_renders_over_every_state(hub: Hub) -> None:
    hub.quarantine("org/waiting")
    hub.scanned("org/pending")
    hub.publish("org/live", alias="production")
    hub.publish("org/live", seed=1, alias="production")
    hub.reject("org/bad", "weights from nowhere")
    hub.revoke("org/gone", "leaked")
    browser = logged_in(hub, "rob")
    inventory = browser.get("/").body
    for name in ("org/waiting", "org/pending", "org/live", "org/bad", "org/gone"):
        assert name in inventory
    assert "5 models" in inventory
    assert "org/bad" not in browser.get("/?search=LIV&format=safetensors").body  # any case
    assert "org/live" in browser.get("/?search=LIV&format=safetensors&risk=info").body
    assert "No model matches" in browser.get("/?format=pickle").body
    filtered = browser.get("/?state=published&sort=name&desc=1").body
    assert "org/live" in filtered and "org/bad" not in filtered
    assert "1 model" in filtered
    model = browser.get("/models/org/live")
    assert model.status == 200
    assert "version 2" in model.body and "production" in model.body
    assert "config.json" in model.body and "Roll back" in model.body
    assert "verified now" in model.body and "signed by" in model.body
    # A recorded digest that no longer matches what was signed: shown, not "verified".
    first = (
        select(t.versions.c.id)
        .join(t.models, t.models.c.id == t.versions.c.model_id)
        .where(t.models.c.name == "org/live", t.versions.c.number == 1)
        .scalar_subquery()
    )
    with hub.registry.engine.begin() as conn:
        conn.execute(
            t.files.update()
            .where(t.files.c.version_id == first, t.files.c.path == "config.json")
            .values(digest="0" * 64)
        )
    tampered = browser.get("/models/org/live?v=1").body
    assert "does NOT verify" in tampered and "changed: config.json" in tampered
    bom = browser.get("/bom/org/live?v=2")
    assert bom.status == 200 and '"bomFormat": "CycloneDX"' in bom.body
    assert bom.headers["content-disposition"] == 'attachment; filename="org_live-2.cdx.json"'
    spdx = browser.get("/bom/org/live?v=2&format=spdx")
    assert spdx.status == 200 and "https://spdx.org/rdf/3.0.1" in spdx.body
    assert spdx.headers["content-disposition"].endswith('filename="org_live-2.spdx.json"')
    assert "ai_AIPackage" in spdx.body and "org/live" in spdx.body
    assert browser.get("/bom/org/live?v=2&format=xml").status == 404
    assert "weights from nowhere" in browser.get("/models/org/bad").body
    missing = browser.get("/models/org/nothing")
    assert missing.status == 404 and "no model named" in missing.body
    assert "text/html" in missing.headers["content-type"]
    assert browser.get("/bom/org/bad").status == 404  # not published: no BOM
    review = browser.get("/review").body
    assert "org/pending@1" in review and "org/waiting" not in review
    assert re.search(r'<span class="sev sev-info">\d+ info</span>', review)
    audit = browser.get("/audit?actor=rita")
    assert audit.status == 200 and "Chain verified" in audit.body
    assert "reject" in audit.body and "init" not in audit.body.split("<tbody>")[1]
    by_model = browser.get("/audit?model=org/bad&action=reject&since=2000-01-01").body
    assert "weights from nowhere" in by_model and "org/live" not in by_model
    assert "No entry matches" in browser.get("/audit?until=2000-01-01").body
    export = browser.get("/audit/export")
    assert export.status == 200 and export.body.count("\n") >= 10
    assert "No request has gone upstream" in browser.get("/requests").body
    commit = "ab" * 20
    as_user(hub.registry, "rob").upstream.record("up/stream", commit, "main", "http://up")
    hub.registry.upstream.link("up/stream", commit, hub.registry.show("org/pending@1"))
    requests = browser.get("/requests").body
    assert "up/stream" in requests and "abababababab" in requests and "rob" in requests
    assert "org/pending@1" in requests
    assert browser.get("/static/console.css").headers["x-content-type-options"] == "nosniff"
    for path in ("/?page=zero", "/?sort=evil", "/audit?page=-1"):
        assert browser.get(path).status == 200


def test_reject_with_reason_is_recorded_under_the_session_identity(hub: Hub) -> None:
    hub.scanned("org/pending")
    browser = logged_in(hub, "rita")
    csrf = browser.csrf("/review")
    empty = browser.post("/review/reject", {"csrf": csrf, "ref": "org/pending@1", "reason": " "})
    assert empty.status == 400 and "a reason is required" in empty.body
    done = browser.post(
        "/review/reject", {"csrf": csrf, "ref": "org/pending@1", "reason": "unknown origin"}
    )
    assert (done.status, done.headers["location"]) == (303, "/console/models/org/pending?v=1")
    assert hub.registry.show("org/pending@1").state.value == "rejected"
    last = list(hub.registry.audit_export())[-1]
    assert '"actor": "rita"' in last and '"action": "reject"' in last
    assert "unknown origin" in last
    again = browser.post(
        "/review/reject", {"csrf": csrf, "ref": "org/pending@1", "reason": "twice"}
    )
    assert again.status == 400 and "org/pending@1" in again.body  # shown, not a 500


def test_the_ingester_cannot_approve_alone(hub: Hub) -> None:
    hub.registry.ingest(hub.folder("org/mine"), name="org/mine")  # alice ingests
    browser = logged_in(hub, "alice")
    assert "You ingested this; another reviewer must approve it." in browser.get("/review").body
    answer = browser.post(
        "/review/approve", {"csrf": browser.csrf(), "ref": "org/mine@1", "reason": "mine, fine"}
    )
    assert answer.status == 303
    page = browser.get("/models/org/mine").body
    assert "separation of duties: alice ingested it, so another reviewer must approve" in page
    assert hub.registry.show("org/mine@1").state.value == "scanned"
    rex = logged_in(hub, "rex")
    rex.post("/review/approve", {"csrf": rex.csrf(), "ref": "org/mine@1", "reason": "checked"})
    assert hub.registry.show("org/mine@1").state.value == "approved"


def test_posts_without_the_session_csrf_token_are_refused(hub: Hub) -> None:
    hub.scanned("org/pending")
    hub.publish("org/live", alias="production")
    hub.publish("org/live", seed=1, alias="production")
    rita, pat = logged_in(hub, "rita"), logged_in(hub, "pat")
    entries = len(list(hub.registry.audit_export()))
    form = {"ref": "org/pending@1", "reason": "forged"}
    assert rita.post("/review/reject", form).status == 403
    assert rita.post("/review/reject", {**form, "csrf": "0" * 64}).status == 403
    assert rita.post("/review/reject", {**form, "csrf": pat.csrf()}).status == 403  # not hers
    rollback = {"alias": "production"}
    assert pat.post("/rollback/org/live", {**rollback, "csrf": rita.csrf()}).status == 403
    assert pat.post("/logout", {}).status == 403
    assert Browser(hub.url).post("/login", {"token": hub.token("rita")}).status == 403
    assert hub.registry.show("org/pending@1").state.value == "scanned"
    assert hub.registry.show("org/live@production").number == 2
    assert len(list(hub.registry.audit_export())) == entries
    # With the token the same rollback works (the refusals above were the CSRF check).
    assert pat.post("/rollback/org/live", {**rollback, "csrf": pat.csrf()}).status == 303
    assert hub.registry.show("org/live@production").number == 1


def test_hostile_names_findings_and_reasons_render_inert(hub: Hub) -> None:
    folder = hub.folder("org/hostile")
    (folder / "<script>alert(1)<").mkdir()
    (folder / "<script>alert(1)<" / "script>").write_bytes(b"x")
    (folder / XSS[1]).write_bytes(b"y")
    hub.registry.ingest(folder, name="org/hostile")
    evil = hub.tmp / "evil"
    evil.mkdir()
    pickle = glob0("os", "system") + f"(V{XSS[0]} {XSS[1]}\ntR.".encode()
    (evil / "pytorch_model.bin").write_bytes(pickle)
    assert hub.registry.ingest(evil, name="org/evil").state.value == "rejected"  # auto
    hub.reject("org/reasons", f"bad: {XSS[0]} {XSS[1]}")
    browser = logged_in(hub, "rob")
    pages = {
        path: browser.get(path).body
        for path in (
            "/",
            "/models/org/hostile",
            "/models/org/evil",
            "/models/org/reasons",
            "/review",
            "/audit",
        )
    }
    for path, body in pages.items():
        assert not RAW_TAGS.search(body), f"raw hostile markup on {path}"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages["/models/org/hostile"]
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in pages["/models/org/hostile"]
    evil_page = pages["/models/org/evil"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in evil_page  # evidence
    assert re.search(r"offset \d+ · opcode #5", evil_page)  # the finding's place in the pickle
    assert "_v0 = os.system(&#39;&lt;script&gt;alert(1)&lt;/script&gt;" in evil_page  # explain
    assert "bad: &lt;script&gt;" in pages["/models/org/reasons"]


def _built_on(hub: Hub, name: str, base: str, seed: int, alias: str | None = None) -> Any:
    """A published tiny model whose card names ``base`` as its base model."""
    from registry_models import release

    folder = hub.folder(name, seed)
    (folder / "README.md").write_text(f"---\nbase_model: {json.dumps(base)}\n---\n")
    return release(hub.registry, folder, name, alias)


def test_lineage_search_and_bulk_revoke_with_csrf(hub: Hub) -> None:
    _built_on(hub, "org/chat", "evil/base", 0, "production")
    _built_on(hub, "org/chat", "evil/base", 1, "production")
    _built_on(hub, "org/other", "clean/base", 2, "production")
    rob, alice = logged_in(hub, "rob"), logged_in(hub, "alice")
    assert 'href="/console/lineage"' in rob.get("/").body  # in the nav
    page = rob.get("/lineage?kind=base_model&value=evil/base")
    assert page.status == 200 and "2 affected versions" in page.body
    assert "org/chat@2" in page.body and "org/other" not in page.body
    assert "production" in page.body  # where it is deployed
    version_page = rob.get("/models/org/chat?v=1").body
    assert "/console/lineage?kind=base_model&amp;value=evil%2Fbase" in version_page  # Built from
    digest = hub.registry.show("org/chat@1").files[0].digest
    assert f"/console/lineage?kind=digest&amp;value=sha256:{digest}" in version_page
    by_digest = rob.get(f"/lineage?kind=digest&value=sha256:{digest}").body
    assert "org/chat@1" in by_digest and "contains " in by_digest
    form = {"kind": "base_model", "value": "evil/base", "reason": "poisoned", "confirm": "yes"}
    entries = len(list(hub.registry.audit_export()))
    assert alice.post("/lineage/revoke", form).status == 403  # no CSRF token
    assert alice.post("/lineage/revoke", {**form, "csrf": rob.csrf()}).status == 403  # not hers
    csrf = alice.csrf("/lineage")
    unconfirmed = alice.post("/lineage/revoke", {**form, "csrf": csrf, "confirm": ""})
    assert unconfirmed.status == 400 and "confirm" in unconfirmed.body
    no_reason = alice.post("/lineage/revoke", {**form, "csrf": csrf, "reason": " "})
    assert no_reason.status == 400 and "needs a reason" in no_reason.body
    refused = rob.post("/lineage/revoke", {**form, "csrf": rob.csrf("/lineage")})
    assert refused.status == 400 and "may not revoke" in refused.body
    assert len(list(hub.registry.audit_export())) == entries
    done = alice.post("/lineage/revoke", {**form, "csrf": csrf})
    assert done.status == 303 and "revoked=2" in done.headers["location"]
    assert "Revoked 2 version(s)." in alice.get(done.headers["location"][len("/console") :]).body
    assert {hub.registry.show(f"org/chat@{n}").state.value for n in (1, 2)} == {"revoked"}
    assert hub.registry.show("org/other@1").state.value == "published"
    revokes = [json.loads(e) for e in hub.registry.audit_export()][entries:]
    assert {(e["actor"], e["subject"]) for e in revokes if e["action"] == "revoked"} == {
        ("alice", "org/chat@1"),
        ("alice", "org/chat@2"),
    }


def test_hostile_lineage_values_render_inert(hub: Hub) -> None:
    _built_on(hub, "org/x", XSS[0] + XSS[1], 0)
    browser = logged_in(hub, "rob")
    model_page = browser.get("/models/org/x").body
    found = browser.get("/lineage?" + urlencode({"kind": "base_model", "value": XSS[0] + XSS[1]}))
    for body in (model_page, found.body):
        assert not RAW_TAGS.search(body)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "1 affected version" in found.body


def _keras_with_lambda(folder: Path) -> Path:
    """A ``.keras`` archive whose Lambda layer carries marshalled code (never run here)."""
    code = marshal.dumps(compile(f"lambda x: print({XSS[0]!r}) or x", "<lambda>", "eval"))
    layer = {
        "class_name": "Lambda",
        "config": {
            "name": "evil",
            "function": {
                "class_name": "__lambda__",
                "config": {"code": base64.b64encode(code).decode(), "defaults": None},
            },
        },
    }
    config = {"class_name": "Sequential", "config": {"name": "seq", "layers": [layer]}}
    folder.mkdir()
    with zipfile.ZipFile(folder / "model.keras", "w") as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.0.0"}))
    return folder


def test_version_page_shows_lambda_disassembly_and_remote_code(hub: Hub) -> None:
    hub.registry.ingest(_keras_with_lambda(hub.tmp / "keras"), name="org/keras")
    repo = hub.folder("org/remote")
    config = json.loads((repo / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_evil.EvilModel"}
    (repo / "config.json").write_text(json.dumps(config))
    (repo / "modeling_evil.py").write_text(f"import os\nos.system('id')  # {XSS[1]}\n")
    (repo / "helper.py").write_bytes(b"x = 1\n" * 20_000)  # over the shown cap
    hub.registry.ingest(repo, name="org/remote")
    browser = logged_in(hub, "rob")
    keras_page = browser.get("/models/org/keras").body
    assert "Keras Lambda layers" in keras_page and "LOAD_GLOBAL" in keras_page
    assert "print" in keras_page and not RAW_TAGS.search(keras_page)
    page = browser.get("/models/org/remote").body
    assert not RAW_TAGS.search(page)
    code = page.split("Repository code")[1]
    assert code.index("modeling_evil.py") < code.index("helper.py")  # auto_map target first
    assert "imported by config.json: AutoModel -&gt; modeling_evil.EvilModel" in code
    assert "os.system(&#39;id&#39;)" in code and "&lt;img src=x" in code
    digest = hub.registry.show("org/remote").files
    assert all(f.digest in code for f in digest if f.path.endswith(".py"))
    helper = code.split("helper.py")[1]
    assert "truncated" in helper and helper.count("x = 1") == 64 * 1024 // 6
    assert "Repository code" not in browser.get("/models/org/keras").body


def _tamper(hub: Hub, seq: int, **values: str) -> dict[str, str]:
    """Overwrite columns of audit entry ``seq`` (its hash left alone); the old values."""
    entries = t.audit_entries
    with hub.registry.engine.begin() as conn:
        old = conn.execute(select(entries).where(entries.c.seq == seq)).one()._asdict()
        conn.execute(entries.update().where(entries.c.seq == seq).values(**values))
    return {k: old[k] for k in values}


def _head(hub: Hub) -> int:
    with hub.registry.engine.connect() as conn:
        return int(conn.execute(select(func.max(t.audit_entries.c.seq))).scalar_one())


def test_audit_page_verifies_incrementally_and_fails_loudly_on_tampering(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.publish("org/live")
    browser = logged_in(hub, "rob")
    first = browser.get("/audit").body
    prefix = _head(hub)
    assert f"Entries 1 to {prefix} re-hashed" in first and "on this view" not in first
    hub.reject("org/bad", "no provenance")  # entries past the verified prefix
    second = browser.get("/audit").body
    total = _head(hub)
    assert f"Chain verified: {total} entries" in second
    assert f"entries {prefix + 1} to {total} verified on this view, chained to entry" in second
    # An in-place edit of an old entry, its stored hash left alone: only a re-hash sees it.
    old = _tamper(hub, 3, actor="mallory")
    full = browser.get("/audit?verify=full").body
    assert "Chain verification FAILED at entry 3" in full
    assert "entry 3: content does not match its hash (edited)" in full
    _tamper(hub, 3, **old)
    assert "Chain verified" in browser.get("/audit?verify=full").body  # restored
    # Rewriting the verified head's hash: the prefix no longer matches, all is re-hashed.
    old = _tamper(hub, total, hash="f" * 64)
    assert f"FAILED at entry {total}" in browser.get("/audit").body
    _tamper(hub, total, **old)
    assert "Chain verified" in browser.get("/audit").body
    # The periodic whole re-hash catches an old in-place edit on a plain view too.
    _tamper(hub, 2, subject="forged")
    monkeypatch.setattr(chain, "FULL_EVERY_SECONDS", -1.0)
    assert "FAILED at entry 2" in browser.get("/audit").body


def test_unknown_console_addresses_get_the_console_404_page_and_the_favicon_exists(
    hub: Hub,
) -> None:
    anonymous = Browser(hub.url)
    for browser in (anonymous, logged_in(hub, "rob")):
        missing = browser.get(f"/no/such/page/{XSS[0]}")
        assert missing.status == 404 and "text/html" in missing.headers["content-type"]
        assert "There is no console page at this address." in missing.body
        assert "script-src 'self'" in missing.headers["content-security-policy"]
        assert "alert(1)" not in missing.body  # the address is not echoed
    icon = anonymous.get("/static/favicon.svg")
    assert icon.status == 200 and icon.headers["content-type"] == "image/svg+xml"
    assert '<link rel="icon" href="/console/static/favicon.svg"' in anonymous.get("/login").body
    assert anonymous.get("/static/console.css").status == 200
    assert anonymous.get("/static/nothing.css").status == 404
