"""The hub's ASGI application: one registry, the Hugging Face-compatible routes and the
management API, built by :func:`create_app` for uvicorn (``mlgate serve``)."""

from __future__ import annotations

from fastapi import FastAPI

from mlgate.hub.api import OPENAPI_URL, install_api
from mlgate.hub.limits import RequestLimits
from mlgate.hub.settings import API_PREFIX, HubSettings
from mlgate.registry.service import open_registry

HUB_ACTOR = "mlgate-hub"


def create_app(settings: HubSettings) -> FastAPI:
    """An application serving the registry at ``settings.data_dir`` / ``registry_url``."""
    app = FastAPI(
        title="mlgate hub",
        version="1",
        openapi_url=OPENAPI_URL,
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.registry = open_registry(settings.data_dir, settings.registry_url, HUB_ACTOR)
    install_api(app)
    app.add_middleware(
        RequestLimits,
        max_body_bytes=settings.max_body_bytes,
        rate_per_minute=settings.rate_limit_per_minute,
    )
    return app
