"""The webhook's HTTPS application: ``POST /validate`` answers AdmissionReviews.

``GET /healthz`` answers 200 while the process serves (the Deployment's liveness and
readiness probes); it reads nothing, so a registry outage shows as denials, not as restarts.
The registry is opened once, acting as ``mlgate-webhook`` (a user with the reader role):
the webhook reads the registry and appends its decisions to the audit log, nothing else;
its lookups are cached briefly, dropped on any change (:mod:`mlgate.webhook.cache`).
Bodies are bounded (Kubernetes objects are at most ~1.5 MiB in etcd) by the hub's request
limits middleware; the API server is one client, so its rate limit is set out of reach.
A request that is not a valid AdmissionReview gets a 400; a decision that fails for a
registry error is a denial saying so; anything else is a 500: with ``failurePolicy: Fail``
every one of them keeps the object out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from mlgate.errors import MlgateError
from mlgate.hub.limits import RequestLimits
from mlgate.registry.service import Registry, open_registry
from mlgate.webhook.admission import AdmissionRequest, AdmissionReview, response
from mlgate.webhook.cache import LookupCache
from mlgate.webhook.policy import Policy
from mlgate.webhook.review import Verdict, decide

WEBHOOK_ACTOR = "mlgate-webhook"
MAX_BODY_BYTES = 3 * 1024 * 1024
# Far above what one API server sends; the limit is per client address.
RATE_PER_MINUTE = 1_000_000


@dataclass(frozen=True)
class WebhookSettings:
    """The registry the webhook reads and the policy it applies."""

    data_dir: Path
    registry_url: str | None
    policy: Policy


def open_webhook_registry(settings: WebhookSettings) -> Registry:
    """The registry acting as the webhook's identity."""
    return open_registry(settings.data_dir, settings.registry_url, WEBHOOK_ACTOR)


def create_app(settings: WebhookSettings) -> FastAPI:
    """The application answering AdmissionReviews at ``POST /validate``."""
    app = FastAPI(title="mlgate webhook", openapi_url=None, docs_url=None, redoc_url=None)
    registry = open_webhook_registry(settings)
    cache = LookupCache()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/validate")
    async def validate(request: Request) -> JSONResponse:
        try:
            review = AdmissionReview.model_validate_json(await request.body())
        except ValidationError as e:
            detail = f"not an admission.k8s.io/v1 AdmissionReview ({e.error_count()} errors)"
            return JSONResponse({"error": detail}, status_code=400)
        verdict = await run_in_threadpool(_decide, registry, cache, settings.policy, review.request)
        uid = review.request.uid
        return JSONResponse(response(uid, verdict.allowed, verdict.message, verdict.warnings))

    app.add_middleware(
        RequestLimits, max_body_bytes=MAX_BODY_BYTES, rate_per_minute=RATE_PER_MINUTE
    )
    return app


def _decide(
    registry: Registry, cache: LookupCache, policy: Policy, request: AdmissionRequest
) -> Verdict:
    try:
        return decide(registry, cache.lookups(registry), policy, request)
    except MlgateError as e:  # e.g. the audit log could not be written: fail closed
        return Verdict(False, f"mlgate could not decide: {e}")


def https_config(app: Any, cert: Path, key: Path, log_level: str = "info") -> uvicorn.Config:
    """uvicorn's configuration serving ``app`` over TLS with ``cert`` and ``key`` (PEM)."""
    return uvicorn.Config(
        app,
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        lifespan="off",
        log_level=log_level,
    )


def run(settings: WebhookSettings, host: str, port: int, cert: Path, key: Path) -> None:
    """Serve the webhook until interrupted."""
    config = https_config(create_app(settings), cert, key)
    config.host, config.port = host, port
    uvicorn.Server(config).run()
