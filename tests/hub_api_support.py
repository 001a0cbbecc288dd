"""A hub served by a real uvicorn on 127.0.0.1 (random port) in a thread, plain HTTP calls
to its management API, and a dump of every registry table to show a refused request
changed nothing."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from hub_support import serving
from sqlalchemy import MetaData, select

from mlgate.hub.app import create_app
from mlgate.hub.settings import API_PREFIX, HubSettings


@contextmanager
def running_hub(settings: HubSettings) -> Iterator[str]:
    """Serve ``create_app(settings)`` until the block ends; yields the base URL."""
    app = create_app(settings)
    try:
        with serving(app) as url:
            yield url
    finally:
        app.state.registry.engine.dispose()


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


def call(
    base: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    prefix: str = API_PREFIX,
) -> Answer:
    """``method prefix+path`` with a JSON ``body`` (or ``raw`` bytes), as ``token``'s holder."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    payload = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    if payload is not None:
        sent.setdefault("Content-Type", "application/json")
    try:
        conn.request(method, prefix + path, payload, sent)
        response = conn.getresponse()
        data = response.read()
        kind = response.getheader("content-type") or ""
        parsed = json.loads(data) if kind.startswith("application/json") else data
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, parsed)
    finally:
        conn.close()


def dump(registry: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the registry's database (and so its audit head)."""
    meta = MetaData()
    meta.reflect(registry.engine)
    with registry.engine.connect() as conn:
        return {
            name: sorted(map(tuple, conn.execute(select(table))), key=repr)
            for name, table in meta.tables.items()
        }
