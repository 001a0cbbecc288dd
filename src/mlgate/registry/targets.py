"""Where a registry command runs: the local registry (``--data-dir``, ``--registry``,
``--as``) or a remote hub (``--hub URL`` / ``MLGATE_HUB`` with ``--token`` / ``MLGATE_TOKEN``
or ``HF_TOKEN``), chosen per command by :func:`open_target`.

Remotely the hub acts as the token's owner, so a claimed ``--as`` is refused; the commands
that only make sense beside the database (init, migrate, check) refuse ``--hub``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from mlgate.registry.service import Registry, open_registry

if TYPE_CHECKING:
    from mlgate.hub.client import RemoteRegistry

F = TypeVar("F", bound=Callable[..., Any])
_HUB = "mlgate.hub"
_TOKEN = "mlgate.token"  # noqa: S105 (a ctx.meta key, not a secret)


def _remember(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    ctx.meta[f"mlgate.{param.name}"] = value


def registry_options(func: F) -> F:
    """``--data-dir``, ``--registry``, ``--as``, ``--hub`` and ``--token``, shared by every
    registry command (``--hub`` and ``--token`` are read by :func:`open_target`)."""
    func = click.option(
        "--token",
        envvar=["MLGATE_TOKEN", "HF_TOKEN"],
        metavar="TOKEN",
        expose_value=False,
        callback=_remember,
        help="Bearer token for --hub, an mlg_ token [env MLGATE_TOKEN, HF_TOKEN].",
    )(func)
    func = click.option(
        "--hub",
        envvar="MLGATE_HUB",
        metavar="URL",
        expose_value=False,
        callback=_remember,
        help="Run against the mlgate hub at URL instead of a local registry [env MLGATE_HUB].",
    )(func)
    func = click.option(
        "--as",
        "actor",
        envvar="MLGATE_ACTOR",
        metavar="USER",
        help="Act as USER [env MLGATE_ACTOR; default: the OS user].",
    )(func)
    return location_options(func)


def location_options(func: F) -> F:
    """``--data-dir`` and ``--registry``: where a registry is (also ``mlgate serve``'s)."""
    func = click.option(
        "--registry",
        "url",
        envvar="MLGATE_REGISTRY",
        metavar="URL",
        help="Database URL, e.g. postgresql+psycopg://host/db "
        "[env MLGATE_REGISTRY; default: SQLite in the data dir].",
    )(func)
    return click.option(
        "--data-dir",
        envvar="MLGATE_HOME",
        default=".mlgate",
        show_default=True,
        type=click.Path(path_type=Path),
        help="Blob store (and SQLite database) folder [env MLGATE_HOME].",
    )(func)


def queue_option(func: F) -> F:
    """``--queue``: where background jobs go (``serve``, ``worker``, ``rescan --all``)."""
    return click.option(
        "--queue",
        "queue_url",
        envvar="MLGATE_QUEUE",
        metavar="URL",
        help="Job queue: redis://host:port/db[?name=QUEUE] for workers on several machines "
        "[env MLGATE_QUEUE; default: the embedded queue in the data dir].",
    )(func)


def open_target(data_dir: Path, url: str | None, actor: str | None) -> Registry | RemoteRegistry:
    """The local registry, or with ``--hub`` the remote one acting as the token's owner."""
    ctx = click.get_current_context()
    hub = ctx.meta.get(_HUB)
    if not hub:
        return open_registry(data_dir, url, actor)
    if ctx.get_parameter_source("actor") is click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("--as does not apply with --hub: the hub acts as the token's owner")
    from mlgate.hub.client import RemoteRegistry  # noqa: PLC0415 - remote mode only

    return RemoteRegistry(hub, ctx.meta.get(_TOKEN))


def open_local(data_dir: Path, url: str | None, actor: str | None) -> Registry:
    """The local registry, for the commands that run only where the registry is."""
    local_only()
    return open_registry(data_dir, url, actor)


def local_only() -> None:
    ctx = click.get_current_context()
    if ctx.meta.get(_HUB):
        raise click.UsageError(
            f"`{ctx.command_path}` runs where the registry is, not through --hub"
        )


def upstream_token() -> str | None:
    """The token for hf:// sources of a local ingest: ``--token`` as given, else
    ``HF_TOKEN`` (never ``MLGATE_TOKEN``, a hub credential, sent to another hub)."""
    ctx = click.get_current_context()
    if ctx.get_parameter_source("token") is click.core.ParameterSource.COMMANDLINE:
        token: str | None = ctx.meta.get(_TOKEN)
        return token
    return os.environ.get("HF_TOKEN") or None
