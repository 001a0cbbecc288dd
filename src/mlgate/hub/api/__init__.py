"""The management JSON API under ``/api/mlgate/v1``: everything the CLI does, as the
bearer token's identity, described by the OpenAPI document at
``/api/mlgate/v1/openapi.json``. One router per resource; errors in
:mod:`mlgate.hub.api.errors`."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Security
from fastapi.security import HTTPBearer

from mlgate.hub.api import (
    admin,
    aliases,
    audit,
    decisions,
    jobs,
    lineage,
    models,
    tokens,
    uploads,
)
from mlgate.hub.api.errors import install_error_handlers
from mlgate.hub.settings import API_PREFIX

OPENAPI_URL = f"{API_PREFIX}/openapi.json"


def install_api(app: FastAPI) -> None:
    """Mount the management routes and their error handling on ``app``."""
    # Declares the bearer scheme in the OpenAPI document; hub.auth does the authentication.
    bearer = Security(HTTPBearer(auto_error=False, description="An mlgate token (mlg_...)"))
    api = APIRouter(prefix=API_PREFIX, dependencies=[bearer])
    for module in (models, decisions, jobs, aliases, audit, tokens, admin, uploads, lineage):
        api.include_router(module.router)
    app.include_router(api)
    install_error_handlers(app)
