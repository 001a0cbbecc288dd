"""Hub test fixtures: a real uvicorn server over a real registry (SQLite or PostgreSQL, via
the ``registry`` fixture), on 127.0.0.1 at a random port, in a background thread.

``hub`` gives a :class:`Hub`: its ``url``, the ``registry`` behind it (acting as alice,
admin), ``token(user)`` for a bearer token of any registry user, and helpers that build
models in every lifecycle state (published, quarantined, scanned, rejected, revoked).

Other hub tests reuse it: ``pytest_plugins = ["hub_support"]`` or import the helpers.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from registry_models import release, write_benign
from registry_support import as_user

from mlgate.hub.app import create_app
from mlgate.hub.settings import HubSettings


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Run ``app`` under uvicorn on 127.0.0.1 (random port) until the block ends; yields
    the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the hub did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def registry_url_of(registry: Any) -> str | None:
    """The database URL a second process needs to open ``registry`` (None: its SQLite)."""
    url = registry.engine.url
    return None if url.get_backend_name() == "sqlite" else url.render_as_string(hide_password=False)


@dataclass
class Hub:
    """A running hub over ``registry`` (acting as alice) at ``url``."""

    url: str
    registry: Any
    app: Any
    tmp: Path
    _tokens: dict[str, str] = field(default_factory=dict)

    def token(self, user: str) -> str:
        """A bearer token with every role of ``user`` (created once per user)."""
        if user not in self._tokens:
            new = as_user(self.registry, user).tokens.create(label=f"{user} test")
            self._tokens[user] = new.secret
        return self._tokens[user]

    def folder(self, name: str, seed: int = 0) -> Path:
        """A fresh tiny safetensors model folder."""
        return write_benign(self.tmp / "models" / f"{name.replace('/', '_')}-{seed}", seed)

    def publish(self, name: str, seed: int = 0, alias: str | None = None) -> Any:
        """pat ingests, rita approves, pat publishes a tiny model as ``name``."""
        return release(self.registry, self.folder(name, seed), name, alias)

    def quarantine(self, name: str, seed: int = 0) -> Any:
        """An ingested version left unscanned (quarantined)."""
        return as_user(self.registry, "pat").ingest(self.folder(name, seed), name=name, scan=False)

    def scanned(self, name: str, seed: int = 0) -> Any:
        """An ingested and scanned version, pending review."""
        return as_user(self.registry, "pat").ingest(self.folder(name, seed), name=name)

    def reject(self, name: str, reason: str, seed: int = 0) -> Any:
        """A version rita rejected with ``reason``."""
        version = self.scanned(name, seed)
        return as_user(self.registry, "rita").reject(version.ref, reason)

    def revoke(self, name: str, reason: str, seed: int = 0) -> Any:
        """A published version alice revoked with ``reason``."""
        version = self.publish(name, seed)
        return self.registry.revoke(version.ref, reason)


@pytest.fixture
def hub(registry: Any, tmp_path: Path) -> Iterator[Hub]:
    """A hub serving the ``registry`` fixture's registry (SQLite and PostgreSQL)."""
    app = create_app(HubSettings(registry.data_dir, registry_url_of(registry)))
    with serving(app) as url:
        yield Hub(url, registry, app, tmp_path)
    app.state.registry.engine.dispose()
