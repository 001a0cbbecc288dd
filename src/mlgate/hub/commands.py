"""``mlgate serve``: the hub over a registry, for unmodified Hugging Face clients.

The registry is opened once before uvicorn starts, so that a missing or outdated registry
stops the command with its remedy (exit 2) instead of failing in every worker.
"""

from __future__ import annotations

from pathlib import Path

import click

from mlgate.hub.server import ENV_UPSTREAM, ENV_UPSTREAM_TOKEN, embedded_worker, run
from mlgate.hub.settings import HubSettings
from mlgate.registry.errors import RegistryError
from mlgate.registry.roles import Action
from mlgate.registry.service import Registry, open_registry
from mlgate.registry.targets import location_options, queue_option
from mlgate.render.escape import echo, inert


@click.command(name="serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="TCP port."
)
@location_options
@click.option(
    "--upstream",
    envvar=ENV_UPSTREAM,
    metavar="URL",
    help=f"Hugging Face-compatible hub to pull through from [env {ENV_UPSTREAM}].",
)
@click.option(
    "--upstream-token",
    envvar=ENV_UPSTREAM_TOKEN,
    metavar="TOKEN",
    help=f"Token for the upstream hub [env {ENV_UPSTREAM_TOKEN}].",
)
@queue_option
@click.option(
    "--worker-as",
    default="mlgate-worker",
    show_default=True,
    metavar="USER",
    help="On the embedded queue, run one `mlgate worker` beside the server as USER (a user "
    "with the publisher role) for pull-through fetches, ingests and scans.",
)
@click.option(
    "--no-worker",
    is_flag=True,
    help="Run no worker beside the server (workers run elsewhere: `mlgate worker`).",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="uvicorn worker processes, each with its own registry connection.",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 256),
    default=HubSettings.threads,
    show_default=True,
    help="Requests handled at once by each uvicorn worker (more only helps with a remote "
    "database).",
)
@click.option(
    "--rate-limit",
    type=click.IntRange(1),
    default=HubSettings.rate_limit_per_minute,
    show_default=True,
    metavar="N",
    help="Requests per minute per token (per client address without one), in each uvicorn "
    "worker; over it, 429 with Retry-After.",
)
@click.option(
    "--forwarded-allow-ips",
    metavar="IPS",
    help="Trust X-Forwarded-* from these proxy addresses (behind a TLS proxy).",
)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
    help="uvicorn's log level.",
)
def serve_cmd(
    host: str,
    port: int,
    data_dir: Path,
    url: str | None,
    upstream: str | None,
    upstream_token: str | None,
    queue_url: str | None,
    worker_as: str,
    no_worker: bool,
    workers: int,
    threads: int,
    rate_limit: int,
    forwarded_allow_ips: str | None,
    log_level: str,
) -> None:
    """Serve the registry to Hugging Face clients (HF_ENDPOINT=http://HOST:PORT)."""
    settings = HubSettings(
        data_dir.absolute(),
        url,
        upstream,
        upstream_token,
        queue_url,
        rate_limit_per_minute=rate_limit,
        threads=threads,
    )
    # One node on the embedded queue gets its worker here; a Redis queue has its own workers.
    worker = None if no_worker or queue_url else worker_as
    registry = open_registry(settings.data_dir, settings.registry_url, worker)
    if worker is not None:
        worker = _worker_identity(registry.acting_as(worker))
    registry.engine.dispose()
    echo(f"mlgate hub: serving {inert(str(settings.data_dir))} on http://{host}:{port}")
    with embedded_worker(settings, worker):
        run(settings, host, port, workers, forwarded_allow_ips, log_level)


def _worker_identity(registry: Registry) -> str | None:
    """The identity the embedded worker runs as, or None (with a warning) when it may not
    ingest: given explicitly, that is an error; by default, the hub runs without a worker."""
    try:
        registry.require(Action.INGEST)
    except RegistryError as e:
        source = click.get_current_context().get_parameter_source("worker_as")
        remedy = (
            f"an admin runs `mlgate registry user {registry.actor} --role publisher`, or "
            "start the hub with --no-worker and run `mlgate worker` elsewhere"
        )
        if source is click.core.ParameterSource.COMMANDLINE:
            raise RegistryError(f"the hub's worker cannot run: {e}; {remedy}") from e
        echo(
            f"mlgate hub: no worker ({inert(str(e))}): background jobs wait for one; {remedy}",
            err=True,
        )
        return None
    return registry.actor
