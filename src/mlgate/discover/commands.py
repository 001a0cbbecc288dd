"""CLI of the discovery stage: ``mlgate discover PATH...`` (thin: parse, call, render, exit).

Exit status as ``scan``: 0 no finding at or above --fail-on, 1 findings at or above it, 2 the
analysis is incomplete (a file too large, unreadable or not parsable) or could not be done.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mlgate.cli_options import ScanPath, emit_report, report_options
from mlgate.config import load_config
from mlgate.discover.crosscheck import Catalogue, HubCatalogue, RegistryCatalogue
from mlgate.discover.engine import DiscoverOptions, discover_paths
from mlgate.findings import Severity


@click.command(name="discover")
@click.argument("paths", nargs=-1, required=True, type=ScanPath())
@report_options("Output format (SARIF carries line and column regions for code scanning).")
@click.option(
    "--hub",
    metavar="URL",
    envvar="MLGATE_HUB",
    help="The organisation's hub [env MLGATE_HUB]: other endpoints are foreign; without "
    "--data-dir/--registry, model references are cross-checked against it.",
)
@click.option("--token", envvar="HF_TOKEN", help="Token for --hub [env HF_TOKEN].")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    help="Cross-check model references against the registry in this folder.",
)
@click.option(
    "--registry",
    "url",
    metavar="URL",
    help="Cross-check against the registry at this database URL (blobs in --data-dir).",
)
@click.option("--as", "actor", metavar="USER", help="Read the registry as USER.")
def discover_cmd(
    paths: tuple[Path, ...],
    fmt: str,
    output: Path | None,
    fail_on: str | None,
    config_path: Path | None,
    hub: str | None,
    token: str | None,
    data_dir: Path | None,
    url: str | None,
    actor: str | None,
    color: bool | None,
) -> None:
    """Find unsafe model loading and unvetted model sources in code (never run).

    PATHS are folders or files: Python, notebooks, requirement, pyproject and lock files.
    """
    threshold = Severity.parse(fail_on) if fail_on else load_config(config_path).fail_on
    catalogue = _catalogue(hub, token, data_dir, url, actor)
    report = discover_paths(list(paths), DiscoverOptions(hub=hub, catalogue=catalogue))
    sys.exit(emit_report(report, fmt, output, threshold, color, "the code"))


def _catalogue(
    hub: str | None, token: str | None, data_dir: Path | None, url: str | None, actor: str | None
) -> Catalogue | None:
    if data_dir is not None or url is not None:
        from mlgate.registry.service import open_registry  # noqa: PLC0415 - registry users only

        return RegistryCatalogue(open_registry(data_dir or Path(".mlgate"), url, actor))
    return HubCatalogue(hub, token) if hub else None
