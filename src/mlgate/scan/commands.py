"""CLI of the scan stage: ``scan``, ``explain`` and ``rules``. Each parses its options, calls
the library, renders, and maps the outcome to an exit code (0 clean, 1 findings at or above
the gate, 2 not fully analysed)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mlgate.cli_options import ScanPath, emit, emit_report, report_options
from mlgate.config import load_config
from mlgate.findings import Severity
from mlgate.render.escape import inert_block
from mlgate.scan.rules import ALL_RULES


@click.command(name="scan")
@click.argument("paths", nargs=-1, required=True, type=ScanPath())
@report_options("Output format.")
def scan_cmd(
    paths: tuple[Path, ...],
    fmt: str,
    output: Path | None,
    fail_on: str | None,
    config_path: Path | None,
    color: bool | None,
) -> None:
    """Scan model files or folders without loading them.

    Exit status: 0 no finding at or above --fail-on, 1 findings at or above it,
    2 the scan could not be completed.
    """
    from mlgate.api import scan as scan_api  # noqa: PLC0415  (the engine: loaded on use)

    config = load_config(config_path)
    threshold = Severity.parse(fail_on) if fail_on else config.fail_on
    report = scan_api(*paths, config=config)
    sys.exit(emit_report(report, fmt, output, threshold, color, "the model"))


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
