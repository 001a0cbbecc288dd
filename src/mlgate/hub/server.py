"""Running the hub under uvicorn.

uvicorn's factory mode builds the application in each worker process: with ``--workers N``
every worker opens its own registry (its own database pool) and serves the same data dir.
The settings reach the workers in environment variables (the only channel uvicorn passes
to the processes it spawns); :func:`app_from_env` reads them back.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from mlgate.errors import ConfigError
from mlgate.hub.app import create_app
from mlgate.hub.settings import HubSettings

ENV_DATA_DIR = "MLGATE_HOME"
ENV_REGISTRY = "MLGATE_REGISTRY"
# The same variables `mlgate worker` and `--queue` read: one configuration for both.
ENV_UPSTREAM = "MLGATE_UPSTREAM"
ENV_UPSTREAM_TOKEN = "MLGATE_UPSTREAM_TOKEN"  # noqa: S105  (a variable's name)
ENV_QUEUE = "MLGATE_QUEUE"
ENV_RATE_LIMIT = "MLGATE_HUB_RATE_LIMIT"
ENV_THREADS = "MLGATE_HUB_THREADS"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_OPTIONAL = {
    ENV_REGISTRY: "registry_url",
    ENV_UPSTREAM: "upstream",
    ENV_UPSTREAM_TOKEN: "upstream_token",
    ENV_QUEUE: "queue_url",
}


def settings_env(settings: HubSettings) -> dict[str, str]:
    """The environment that carries ``settings`` to uvicorn's workers."""
    env = {ENV_DATA_DIR: str(Path(settings.data_dir).absolute())}
    for name, attr in _OPTIONAL.items():
        value = getattr(settings, attr)
        if value:
            env[name] = value
    env[ENV_RATE_LIMIT] = str(settings.rate_limit_per_minute)
    env[ENV_THREADS] = str(settings.threads)
    return env


def settings_from_env() -> HubSettings:
    """The settings :func:`settings_env` wrote."""
    data_dir = os.environ.get(ENV_DATA_DIR)
    if not data_dir:
        raise ConfigError(f"{ENV_DATA_DIR} is not set: start the hub with `mlgate serve`")
    return HubSettings(
        Path(data_dir),
        registry_url=os.environ.get(ENV_REGISTRY) or None,
        upstream=os.environ.get(ENV_UPSTREAM) or None,
        upstream_token=os.environ.get(ENV_UPSTREAM_TOKEN) or None,
        queue_url=os.environ.get(ENV_QUEUE) or None,
        rate_limit_per_minute=_positive(ENV_RATE_LIMIT, HubSettings.rate_limit_per_minute),
        threads=_positive(ENV_THREADS, HubSettings.threads),
    )


def _positive(name: str, default: int) -> int:
    text = os.environ.get(name)
    if not text:
        return default
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{name} must be a positive integer, not {text!r}")
    return int(text)


def app_from_env() -> FastAPI:
    """The application factory each uvicorn worker calls."""
    return create_app(settings_from_env())


@contextmanager
def embedded_worker(settings: HubSettings, actor: str | None) -> Iterator[None]:
    """One ``mlgate worker`` beside the server, acting as ``actor``, for a single node on
    the embedded queue (nothing when ``actor`` is None); stopped with the server."""
    if actor is None:
        yield
        return
    command = [sys.executable, "-m", "mlgate", "worker", "--as", actor]
    env = {**os.environ, **settings_env(settings)}  # the token travels in the environment
    # uvicorn re-raises the SIGTERM it caught once it has shut down, so this process may die
    # before the clean-up below runs: the kernel then stops the worker (parent-death signal).
    worker = subprocess.Popen(command, env=env, preexec_fn=_die_with_parent)  # noqa: S603, PLW1509
    try:
        yield
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies (Linux ``PR_SET_PDEATHSIG``)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def run(
    settings: HubSettings,
    host: str,
    port: int,
    workers: int,
    forwarded_allow_ips: str | None,
    log_level: str,
) -> None:
    """Serve until interrupted (uvicorn handles SIGINT/SIGTERM and its workers)."""
    os.environ.update(settings_env(settings))
    uvicorn.run(
        "mlgate.hub.server:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=forwarded_allow_ips is not None,
        forwarded_allow_ips=forwarded_allow_ips,
        log_level=log_level,
        server_header=False,
    )
