"""CLI of the scan stage: ``scan``, ``explain`` and ``rules``. Each parses its options, calls
the library, renders, and maps the outcome to an exit code (0 clean, 1 findings at or above
the gate, 2 not fully analysed)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from mlgate.cli_options import ScanPath, emit, emit_report, report_options
from mlgate.config import Config, load_config
from mlgate.findings import Report, Severity
from mlgate.render.escape import echo, inert_block
from mlgate.scan.rules import ALL_RULES


class ScanInput(ScanPath):
    """A path to scan, or a hub repo (``hf://``, ``https://``) kept as text for --endpoint."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        # Never a local path: a URL that is not a repo of the hub is refused (hub_input).
        if isinstance(value, str) and value.startswith(("hf://", "http://", "https://")):
            return value
        return super().convert(value, param, ctx)


@click.command(name="scan")
@click.argument("paths", nargs=-1, required=True, type=ScanInput())
@report_options("Output format.")
@click.option(
    "--endpoint",
    envvar="HF_ENDPOINT",
    default="https://huggingface.co",
    show_default=True,
    help="Hub of hf://ORG/NAME[@REV] and <hub>/ORG/NAME[/tree/REV] inputs [env HF_ENDPOINT].",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Analyse the files in this many processes (0: one per available core); "
    "the report is the same.",
)
def scan_cmd(
    paths: tuple[Path | str, ...],
    fmt: str,
    output: Path | None,
    fail_on: str | None,
    config_path: Path | None,
    color: bool | None,
    endpoint: str,
    jobs: int,
) -> None:
    """Scan model files or folders, or Hugging Face repos, without loading them.

    PATHS are files, folders (a Hugging Face cache folder models--ORG--NAME or one of its
    snapshots included) or hub repos: hf://ORG/NAME[@REV] or <hub>/ORG/NAME[/tree/REV],
    downloaded to a temporary folder removed after the scan (token: HF_TOKEN, else the one
    `huggingface-cli login` stored).

    Exit status: 0 no finding at or above --fail-on, 1 findings at or above it,
    2 the scan could not be completed (a failed download included).
    """
    from mlgate.api import scan as scan_api  # noqa: PLC0415  (the engine: loaded on use)

    config = load_config(config_path)
    threshold = Severity.parse(fail_on) if fail_on else config.fail_on
    jobs = jobs or len(os.sched_getaffinity(0))
    if all(isinstance(p, Path) for p in paths):
        report = scan_api(*paths, config=config, jobs=jobs)
    else:
        report = _scan_with_downloads(paths, endpoint, config, jobs)
    sys.exit(emit_report(report, fmt, output, threshold, color, "the model"))


def _scan_with_downloads(
    paths: tuple[Path | str, ...], endpoint: str, config: Config, jobs: int
) -> Report:
    """Scan ``paths`` after downloading the hub repos among them (the hub client and its
    TLS stack load only then)."""
    from mlgate.api import scan as scan_api  # noqa: PLC0415
    from mlgate.scan.hub_input import local_inputs, relabel  # noqa: PLC0415

    with local_inputs(paths, endpoint) as (local, downloads):
        for d in downloads:
            echo(
                f"mlgate: {d.repo.spelled}: revision {d.repo.revision} is commit {d.commit}",
                err=True,
            )
        return relabel(scan_api(*local, config=config, jobs=jobs), downloads)


@click.command(name="explain")
@click.argument("path", type=click.Path(path_type=Path, exists=True))
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, exists=True),
    help="Configuration file (default: mlgate.toml or [tool.mlgate]).",
)
def explain_cmd(path: Path, config_path: Path | None) -> None:
    """Show what the pickles in PATH would do when loaded, as pseudo-Python."""
    from mlgate.api import explain as explain_api  # noqa: PLC0415  (the engine: loaded on use)

    # Names and strings from the pickles are attacker-controlled: escaped, line by line.
    emit(inert_block(explain_api(path, load_config(config_path))), None)


# A finding's severity is decided per finding; the rule's is only where it starts. Without
# this, `rules` saying LOW for MLG105 while `scan` reports a CRITICAL MLG105 reads as a bug.
_SEVERITY_NOTE = """
The severity shown is the rule's default. Each finding's severity is decided by what it found:
  - a call takes the policy's verdict on the callable (configuration deny entries can raise it);
  - a nested payload (MLG105) or chained load (MLG109) takes the worst severity found inside
    it: pickle.loads of a payload that calls os.system is a CRITICAL MLG105;
  - `mlgate explain` annotates each call with the findings `mlgate scan` reports for it (rule
    and severity), and the nested payload's own calls with theirs.
The gate (--fail-on) always applies to each finding's own severity.
"""


@click.command(name="rules")
def rules_cmd() -> None:
    """List every rule with its id and default severity, and how a finding's is decided."""
    lines = [f"{r.id}  {r.severity.name:<8}  {r.name}: {r.description}" for r in ALL_RULES]
    emit("\n".join(lines) + "\n" + _SEVERITY_NOTE, None)
