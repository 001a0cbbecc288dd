"""The web console over real HTTP: a real uvicorn server over a real SQLite registry, logged in
with real hub tokens. Login and sessions (good, bad, revoked tokens; cookie flags), CSRF
refusals that change nothing, security headers, every page over a registry in every state,
decisions under the session's identity, separation of duties, and hostile text rendered inert."""

from __future__ import annotations

import http.client
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from hub_support import Hub, serving

from mlgate.hub.app import create_app
from mlgate.hub.settings import HubSettings

XSS = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>')
RAW_TAGS = re.compile(r"<script>alert|<img src=x", re.IGNORECASE)


@pytest.fixture
def registry_url() -> None:
    """SQLite only: the console reads through the registry's own (dual-backend) queries."""
    return None


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

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> Answer:
        parts = urlsplit(self.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        headers = {"cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
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


@pytest.fixture
def hub(registry: Any, tmp_path: Path) -> Iterator[Hub]:
    app = create_app(HubSettings(registry.data_dir))
    with serving(app) as url:
        yield Hub(url, registry, app, tmp_path)
    app.state.registry.engine.dispose()


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
    before = browser.cookies["mlgate_console"]

    bad = browser.post("/login", {"csrf": browser.csrf("/login"), "token": "mlg_nope"})
    assert bad.status == 401 and "not an mlgate token" in bad.body

    token = hub.token("rita")
    good = browser.login(token)
    assert good.status == 303
    cookie = good.cookie()
    flags = {f.strip().lower() for f in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/console"} <= flags
    assert "secure" not in flags  # plain http here; https or a trusted proxy adds it
    value = browser.cookies["mlgate_console"]
    assert value != before  # a new session id at login (session fixation)
    assert token not in value and token.split("_")[-1] not in value
    page = browser.get("/")
    assert page.status == 200 and "rita" in page.body

    # The token revoked: the next request is logged out.
    hub.registry.tokens.revoke(token.split("_")[1])
    assert browser.get("/").status == 303
    assert Browser(hub.url).login(token).status == 401


def test_logout_and_forged_cookie(hub: Hub) -> None:
    browser = logged_in(hub, "rob")
    stolen = dict(browser.cookies)
    body, mac = stolen["mlgate_console"].split(".")
    assert Browser(hub.url, {"mlgate_console": body + "." + "0" * len(mac)}).get("/").status == 303
    assert browser.post("/logout", {"csrf": browser.csrf()}).status == 303
    assert browser.get("/").status == 303
