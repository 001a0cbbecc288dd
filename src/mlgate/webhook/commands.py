"""``mlgate webhook``: the validating admission webhook over a registry, on HTTPS.

The registry and the webhook's identity are checked before uvicorn starts, so that a
missing registry or a webhook user without the reader role stops the command with its
remedy (exit 2) instead of denying every admission.
"""

from __future__ import annotations

from pathlib import Path

import click

from mlgate.registry.errors import RegistryError
from mlgate.registry.roles import Action
from mlgate.registry.targets import location_options
from mlgate.render.escape import echo, inert
from mlgate.webhook.policy import Policy, load_policy
from mlgate.webhook.server import WEBHOOK_ACTOR, WebhookSettings, open_webhook_registry, run

PEM = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command(name="webhook")
@click.option("--tls-cert", required=True, type=PEM, help="Server certificate chain (PEM).")
@click.option("--tls-key", required=True, type=PEM, help="Server private key (PEM).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8443, show_default=True, type=click.IntRange(0, 65535), help="TCP port."
)
@click.option("--policy", "policy_file", type=PEM, help="Webhook policy (YAML).")
@location_options
def webhook_cmd(
    tls_cert: Path,
    tls_key: Path,
    host: str,
    port: int,
    policy_file: Path | None,
    data_dir: Path,
    url: str | None,
) -> None:
    """Serve the Kubernetes validating admission webhook at https://HOST:PORT/validate."""
    policy = load_policy(policy_file) if policy_file else Policy()
    settings = WebhookSettings(data_dir.absolute(), url, policy)
    registry = open_webhook_registry(settings)
    try:
        registry.require(Action.READ)
    except RegistryError as e:
        remedy = f"an admin runs `mlgate registry user {WEBHOOK_ACTOR} --role reader`"
        raise RegistryError(f"the webhook cannot read the registry: {e}; {remedy}") from e
    finally:
        registry.engine.dispose()
    echo(f"mlgate webhook: {inert(str(settings.data_dir))} on https://{host}:{port}/validate")
    run(settings, host, port, tls_cert, tls_key)
