"""The hub's ASGI application: one registry, the Hugging Face-compatible routes and the
management API, built by :func:`create_app` for uvicorn (``mlgate serve``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI

from mlgate.console import install_console
from mlgate.hub.api import OPENAPI_URL, install_api
from mlgate.hub.hf.routes import install as install_hf_routes
from mlgate.hub.jobs import open_queue
from mlgate.hub.limits import RequestLimits
from mlgate.hub.settings import API_PREFIX, HubSettings
from mlgate.hub.uploads import UPLOADS_DIR, UploadStore
from mlgate.registry.service import open_registry

HUB_ACTOR = "mlgate-hub"


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Sync routes run in a thread pool, anyio's default 40 threads. Requests are short and
    # mostly CPU (Python, SQLite): past a few threads they only contend for the GIL. Measured
    # on 2 cores, SQLite, 200 connections: 2 threads 265 requests/s, 4: 225, 40: 124.
    settings: HubSettings = app.state.settings
    anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threads
    yield


def create_app(settings: HubSettings) -> FastAPI:
    """An application serving the registry at ``settings.data_dir`` / ``registry_url``."""
    app = FastAPI(
        lifespan=_lifespan,
        title="mlgate hub",
        version="1",
        openapi_url=OPENAPI_URL,
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.registry = open_registry(settings.data_dir, settings.registry_url, HUB_ACTOR)
    # Loaded once here, shared by every request's registry (acting_as): otherwise each audit
    # checkpoint (every N downloads) would load it under the write lock on a second pooled
    # connection, and concurrent downloads holding the pool would wait on that lock.
    app.state.registry.org_key()
    # Fetches, ingests and scans go to workers through the queue, never run in a request.
    app.state.queue = open_queue(settings.data_dir, settings.queue_url)
    app.state.uploads = UploadStore(
        settings.data_dir / UPLOADS_DIR, settings.upload_limits, settings.max_open_uploads
    )
    install_api(app)
    install_console(app)
    install_hf_routes(app)  # last: its /{repo_id}/... and /api/models/{repo_id} are generic
    app.add_middleware(
        RequestLimits,
        max_body_bytes=settings.max_body_bytes,
        rate_per_minute=settings.rate_limit_per_minute,
    )
    return app
