"""Login and logout with a hub token (the same tokens as the API and ``HF_TOKEN``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from mlgate.console.web import console_of, form_of, see_other
from mlgate.registry.errors import Unauthenticated
from mlgate.registry.service import Registry

router = APIRouter()


@router.get("/login")
def login_page(request: Request) -> HTMLResponse:
    """The form; a first visit gets an anonymous session so the form carries a CSRF token
    (login CSRF: a forged post would log the victim in as the attacker)."""
    console = console_of(request)
    session = console.session(request) or console.signer.new()
    response = console.render(request, "login.html", {"error": None}, session=session)
    console.set_cookie(request, response, session)
    return response


@router.post("/login", response_model=None)
async def login(request: Request) -> Response:
    """Authenticate the token; the session gets a NEW id (session fixation) holding the token
    id and principal, never the token."""
    console = console_of(request)
    form = await form_of(request)
    registry: Registry = request.app.state.registry
    try:
        identity = registry.tokens.authenticate(form.get("token", ""))
    except Unauthenticated as e:
        session = console.signer.new()
        response: Response = console.render(
            request, "login.html", {"error": str(e)}, session=session, status=401
        )
    else:
        session = console.signer.new(identity.token_id, identity.principal)
        response = see_other("/")
    console.set_cookie(request, response, session)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session: the cookie is replaced by a fresh anonymous one."""
    console = console_of(request)
    await form_of(request)
    response = see_other("/login")
    console.set_cookie(request, response, console.signer.new())
    return response
