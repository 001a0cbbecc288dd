"""The web console at ``/console``: server-rendered pages for reviewers and auditors over
the hub's registry (inventory, model pages, review queue, audit, pull-through requests,
lineage and incident response),
logged in with a hub token. See docs/console.md."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from mlgate.console import audit, inventory, lineage, login, model, requests, review
from mlgate.console.session import COOKIE
from mlgate.console.web import (
    PREFIX,
    Console,
    CsrfRefused,
    LoginRequired,
    SecurityHeaders,
    console_of,
)
from mlgate.errors import MlgateError
from mlgate.hub.api.errors import status_of
from mlgate.hub.settings import HubSettings


def install_console(app: FastAPI) -> None:
    """Mount the console on ``app`` (after the API, before the generic Hugging Face routes)."""
    settings: HubSettings = app.state.settings
    app.state.console = Console(settings.data_dir)
    # Static files first: the catch-all below would otherwise answer them with a 404 page.
    static = StaticFiles(packages=[("mlgate.console", "static")])
    app.mount(f"{PREFIX}/static", static, name="console-static")
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    for module in (login, inventory, model, review, audit, requests, lineage):
        router.include_router(module.router)
    router.add_api_route("/{path:path}", _not_found, methods=["GET"])  # last: any other page
    app.include_router(router)
    app.add_exception_handler(LoginRequired, _to_login)
    app.add_exception_handler(CsrfRefused, _csrf_refused)
    app.add_exception_handler(MlgateError, _html_errors(app.exception_handlers[MlgateError]))
    app.add_middleware(SecurityHeaders)


def _to_login(request: Request, exc: Exception) -> Response:
    """To the login page. A cookie that was presented and failed (forged, expired, token
    revoked) is deleted; a request that came without one (a cross-site post, which SameSite
    keeps cookieless) leaves the browser's live session alone: overwriting it would let any
    other site log the reviewer out."""
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    if request.cookies.get(COOKIE):
        response.delete_cookie(COOKIE, path=PREFIX)
    return response


def _html_errors(api_handler: Callable[..., Any]) -> Callable[..., Any]:
    """Registry errors (no such model or version, a refused role) on console pages as a page
    with the API's status; elsewhere the API's JSON, as before."""

    async def handle(request: Request, exc: Exception) -> Response:
        if not request.url.path.startswith(PREFIX + "/"):
            response: Response = await api_handler(request, exc)
            return response
        assert isinstance(exc, MlgateError)
        page = {"message": str(exc)}
        return console_of(request).render(request, "error.html", page, status=status_of(exc))

    return handle


def _not_found(request: Request, path: str) -> HTMLResponse:
    """An unknown console address: the console's page (not the API's JSON), without echoing
    the address (it may come from a crafted link)."""
    message = "There is no console page at this address."
    page = {"message": message, "title": "Not found"}
    return console_of(request).render(request, "error.html", page, status=404)


def _csrf_refused(request: Request, exc: Exception) -> HTMLResponse:
    message = "This form was not sent from the console (missing or wrong CSRF token)."
    return console_of(request).render(request, "error.html", {"message": message}, status=403)
