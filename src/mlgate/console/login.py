"""Login and logout with a hub token (the same tokens as the API and ``HF_TOKEN``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from mlgate.console.session import COOKIE, LOGIN_COOKIE
from mlgate.console.web import PREFIX, console_of, form_of, see_other
from mlgate.registry.errors import Unauthenticated
from mlgate.registry.service import Registry

router = APIRouter()


@router.get("/login")
def login_page(request: Request) -> HTMLResponse:
    """The form; a first visit gets an anonymous session so the form carries a CSRF token
    (login CSRF: a forged post would log the victim in as the attacker)."""
    console = console_of(request)
    session = console.session(request, LOGIN_COOKIE) or console.signer.new()
    response = console.render(request, "login.html", {"error": None}, session=session)
    console.set_cookie(request, response, session, LOGIN_COOKIE)
    return response


@router.post("/login", response_model=None)
async def login(request: Request) -> Response:
    """Authenticate the token; the session gets a NEW id (session fixation) holding the token
    id and principal, never the token."""
    console = console_of(request)
    form = await form_of(request, LOGIN_COOKIE)
    registry: Registry = request.app.state.registry
    try:
        identity = registry.tokens.authenticate(form.get("token", ""))
    except Unauthenticated as e:
        retry = console.signer.new()
        response: Response = console.render(
            request, "login.html", {"error": str(e)}, session=retry, status=401
        )
        console.set_cookie(request, response, retry, LOGIN_COOKIE)
        return response
    response = see_other("/")
    console.set_cookie(request, response, console.signer.new(identity.token_id, identity.principal))
    response.delete_cookie(LOGIN_COOKIE, path=PREFIX)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session: its cookie is deleted (the login page starts a new anonymous one)."""
    await form_of(request)
    response = see_other("/login")
    response.delete_cookie(COOKIE, path=PREFIX)
    return response
