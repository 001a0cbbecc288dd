"""``mlgate token create|list|revoke``: bearer tokens for the hub, on the local registry or
through ``--hub``. A new token's secret is printed once, alone on standard output (so
``T=$(mlgate token create ...)`` captures it), and is never stored or shown again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from mlgate.registry.targets import open_target, registry_options
from mlgate.registry.tokens import TokenInfo
from mlgate.render.escape import echo


@click.group(name="token")
def token_cmd() -> None:
    """Create, list and revoke hub API tokens (HF_TOKEN / Authorization: Bearer)."""


@token_cmd.command(name="create")
@registry_options
@click.option("--label", required=True, help="What the token is for (shown in listings).")
@click.option("--user", "principal", metavar="USER", help="Owner [default: you; others: admin].")
@click.option(
    "--roles",
    metavar="ROLE[,ROLE]",
    help="Limit the token to these of the owner's roles [default: all of them].",
)
@click.option(
    "--expires-in",
    "days",
    type=click.FloatRange(min=0, min_open=True, max=3650),
    metavar="DAYS",
    help="Expire after DAYS days [default: never].",
)
def create_cmd(
    data_dir: Path,
    url: str | None,
    actor: str | None,
    label: str,
    principal: str | None,
    roles: str | None,
    days: float | None,
) -> None:
    """Create a token and print its secret (only this once)."""
    lifetime = timedelta(days=days) if days is not None else None
    new = open_target(data_dir, url, actor).tokens.create(
        principal, label=label, roles=roles, expires_in=lifetime
    )
    echo(f"created {_describe(new.info)}", err=True)
    click.echo(new.secret)


@token_cmd.command(name="list")
@registry_options
@click.option("--user", "principal", metavar="USER", help="Another user's tokens (admin).")
@click.option("--all", "everyone", is_flag=True, help="Everyone's tokens (admin).")
def list_cmd(
    data_dir: Path, url: str | None, actor: str | None, principal: str | None, everyone: bool
) -> None:
    """List tokens (never their secrets): id, owner, roles, status, label."""
    now = datetime.now(UTC).isoformat(timespec="microseconds")
    for info in open_target(data_dir, url, actor).tokens.list("*" if everyone else principal):
        echo(
            f"{info.id}  {info.principal:<16} {','.join(info.roles):<24} "
            f"{info.status(now):<8} {info.label}"
        )


@token_cmd.command(name="revoke")
@registry_options
@click.argument("token_id", metavar="ID")
def revoke_cmd(data_dir: Path, url: str | None, actor: str | None, token_id: str) -> None:
    """Revoke token ID for good (its owner or an admin)."""
    info = open_target(data_dir, url, actor).tokens.revoke(token_id)
    echo(f"revoked {_describe(info)}")


def _describe(info: TokenInfo) -> str:
    expiry = f"expires {info.expires_at[:19]}" if info.expires_at else "does not expire"
    return f"token {info.id} of {info.principal} ({','.join(info.roles)}; {expiry}): {info.label}"
