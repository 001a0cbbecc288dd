"""What every console page shares: templates, the signed session, the logged-in identity,
CSRF checking of forms and the security headers.

Attacker-controlled text (model and file names, findings, reasons) reaches these pages, so
templates are autoescaped (no ``|safe`` on data) and the CSP forbids inline script: even a
missed escape could not run code (XSS, defence in depth).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlgate.console.chain import ChainState
from mlgate.console.session import COOKIE, LIFETIME_SECONDS, Session, Signer, session_key
from mlgate.registry.errors import Unauthenticated
from mlgate.registry.service import Registry

PREFIX = "/console"

SECURITY_HEADERS = (
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
        b"frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    # Pages show findings and decisions only a logged-in reviewer may see: keep them out of
    # shared caches and the back-button cache after logout.
    (b"cache-control", b"no-store"),
)


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every ``/console`` response,
    redirects and errors included (clickjacking, MIME sniffing, referrer leaks), and a
    ``Server-Timing`` header with the time to the response's start (what bench/console.py
    reports as server time)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "http" else ""
        if path != PREFIX and not path.startswith(PREFIX + "/"):
            await self.app(scope, receive, send)
            return

        start = time.perf_counter()

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                took = f"app;dur={(time.perf_counter() - start) * 1000:.1f}".encode()
                headers = [*message.get("headers", []), *SECURITY_HEADERS]
                message["headers"] = [*headers, (b"server-timing", took)]
            await send(message)

        await self.app(scope, receive, with_headers)


class LoginRequired(Exception):
    """No valid session (none, forged, expired, or its token revoked): back to login."""


class CsrfRefused(Exception):
    """A POST without the session's CSRF token (cross-site request forgery)."""


@dataclass(frozen=True)
class Viewer:
    """The logged-in reviewer: the registry acting as them."""

    registry: Registry

    @property
    def principal(self) -> str:
        return self.registry.actor


class Console:
    """The console's shared state, kept on ``app.state.console``."""

    def __init__(self, data_dir: Path) -> None:
        self.signer = Signer(session_key(data_dir))
        self.templates = Environment(
            loader=PackageLoader("mlgate.console", "templates"),
            autoescape=True,  # every {{ }} escaped, whatever the template's extension
            trim_blocks=True,
            lstrip_blocks=True,
        )
        # The audit chain as last verified (see chain.py); replaced whole, never mutated, so
        # concurrent page views at worst verify twice.
        self.audit_chain: ChainState | None = None

    def session(self, request: Request, cookie: str = COOKIE) -> Session | None:
        return self.signer.load(request.cookies.get(cookie))

    def viewer(self, request: Request) -> Viewer:
        """The logged-in identity, re-checked against the token on every request: a revoked
        or expired token, or a principal whose roles were withdrawn, logs out at once."""
        session = self.session(request)
        if session is None or session.token_id is None:
            raise LoginRequired
        registry: Registry = request.app.state.registry
        try:
            identity = registry.tokens.identity(session.token_id)
        except Unauthenticated as e:
            raise LoginRequired from e
        if identity.principal != session.principal or not identity.roles:
            raise LoginRequired
        return Viewer(registry.acting_as(identity.principal, identity.roles))

    def render(
        self,
        request: Request,
        template: str,
        context: Mapping[str, Any],
        *,
        session: Session | None = None,
        status: int = 200,
    ) -> HTMLResponse:
        """A page; ``session`` (default: the request's) gives the forms their CSRF token."""
        current = session or self.session(request)
        page = self.templates.get_template(template).render(
            prefix=PREFIX,
            principal=current.principal if current else None,
            csrf=self.signer.csrf(current) if current else "",
            **context,
        )
        return HTMLResponse(page, status_code=status)

    def set_cookie(
        self, request: Request, response: Response, session: Session, cookie: str = COOKIE
    ) -> None:
        """``Secure`` when the browser reached us over TLS: ``request.url.scheme`` is https
        directly or, behind a TLS proxy, only when uvicorn trusts its X-Forwarded-Proto
        (``mlgate serve --forwarded-allow-ips``); a spoofed header from elsewhere is ignored."""
        response.set_cookie(
            cookie,
            self.signer.dump(session),
            max_age=LIFETIME_SECONDS,
            path=PREFIX,
            httponly=True,  # XSS cannot read it
            # Lax, not Strict: with Strict a link to the console followed from another site
            # (a chat message, a ticket) arrived without the cookie, and the login page's new
            # anonymous cookie then replaced the reviewer's live session. Lax sends it on
            # top-level GET navigations only; cross-site POSTs (the CSRF vector) still go
            # without it, and every form carries the session's CSRF token besides.
            samesite="lax",
            secure=request.url.scheme == "https",
        )


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def viewer(request: Request) -> Viewer:
    """Dependency: the logged-in reviewer (else redirected to the login page)."""
    return console_of(request).viewer(request)


async def form_of(request: Request, cookie: str = COOKIE) -> dict[str, str]:
    """A url-encoded form whose CSRF token matches the session in ``cookie`` (else
    :class:`CsrfRefused`, answered 403 before anything changes)."""
    console = console_of(request)
    session = console.session(request, cookie)
    body = (await request.body()).decode("utf-8", "replace")
    form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
    if session is None or not console.signer.csrf_ok(session, form.get("csrf")):
        raise CsrfRefused
    return form


def text(params: Mapping[str, str], name: str) -> str:
    """A query parameter as a filter value (bounded: it only ever matches stored names)."""
    return params.get(name, "")[:200]


def page_number(params: Mapping[str, str]) -> int:
    """The ``page`` parameter; anything but a positive number is page 1."""
    page = params.get("page", "1")
    return min(int(page), 10**6) if page.isdigit() and int(page) > 0 else 1


def see_other(path: str) -> RedirectResponse:
    """Post/redirect/get: a reload never re-submits a decision."""
    return RedirectResponse(PREFIX + path, status_code=303)
