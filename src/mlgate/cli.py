"""Command-line interface: parses arguments, calls the library, renders, maps exit codes."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import click

from mlgate.cli_options import ScanPath, emit, emit_report, report_options
from mlgate.config import load_config
from mlgate.errors import ExitCode, MlgateError
from mlgate.findings import Severity
from mlgate.render.escape import echo, inert, inert_block
from mlgate.scan.rules import ALL_RULES

_SEVERITIES = click.Choice([s.name for s in Severity], case_sensitive=False)

# Commands of the other pipeline stages, imported only when invoked: each stage's libraries
# (cryptography, cyclonedx, the scan engine...) stay out of the others' start-up time.
_STAGE_COMMANDS = {
    "bom": "mlgate.bom.commands:bom",
    "convert": "mlgate.convert.commands:convert_cmd",
    "hash": "mlgate.provenance.commands:hash_cmd",
    "verify": "mlgate.provenance.commands:verify_cmd",
    "sign": "mlgate.provenance.sign_commands:sign_cmd",
    "keygen": "mlgate.provenance.sign_commands:keygen_cmd",
    "pubkey": "mlgate.provenance.sign_commands:pubkey_cmd",
    "registry": "mlgate.registry.commands:registry_cmd",
    "ingest": "mlgate.registry.commands:ingest_cmd",
    "rescan": "mlgate.registry.commands:rescan_cmd",
    "approve": "mlgate.registry.commands:approve_cmd",
    "reject": "mlgate.registry.commands:reject_cmd",
    "publish": "mlgate.registry.commands:publish_cmd",
    "deprecate": "mlgate.registry.commands:deprecate_cmd",
    "revoke": "mlgate.registry.commands:revoke_cmd",
    "alias": "mlgate.registry.commands:alias_cmd",
    "rollback": "mlgate.registry.commands:rollback_cmd",
    "pull": "mlgate.registry.commands:pull_cmd",
    "models": "mlgate.registry.commands:models_cmd",
    "audit": "mlgate.registry.commands:audit_cmd",
    "token": "mlgate.registry.token_commands:token_cmd",
    "admit": "mlgate.gate.commands:admit_cmd",
    "serve": "mlgate.hub.commands:serve_cmd",
    "worker": "mlgate.hub.worker_commands:worker_cmd",
    "discover": "mlgate.discover.commands:discover_cmd",
    "webhook": "mlgate.webhook.commands:webhook_cmd",
}


class _StageGroup(click.Group):
    """A group whose stage commands are loaded on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_STAGE_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _STAGE_COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, attr = target.split(":")
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command


@click.group(cls=_StageGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mlgate")
def cli() -> None:
    """mlgate: the gate between untrusted model artifacts and production."""


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=ScanPath())
@report_options("Output format.")
def scan(
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
    from mlgate.api import scan as scan_api  # noqa: PLC0415 - see _STAGE_COMMANDS

    config = load_config(config_path)
    threshold = Severity.parse(fail_on) if fail_on else config.fail_on
    report = scan_api(*paths, config=config)
    sys.exit(emit_report(report, fmt, output, threshold, color, "the model"))


@cli.command()
@click.argument("path", type=click.Path(path_type=Path, exists=True))
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, exists=True),
    help="Configuration file (default: mlgate.toml or [tool.mlgate]).",
)
def explain(path: Path, config_path: Path | None) -> None:
    """Show what the pickles in PATH would do when loaded, as pseudo-Python."""
    from mlgate.api import explain as explain_api  # noqa: PLC0415 - see _STAGE_COMMANDS

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


@cli.command(name="rules")
def list_rules() -> None:
    """List every rule with its id and default severity, and how a finding's is decided."""
    lines = [f"{r.id}  {r.severity.name:<8}  {r.name}: {r.description}" for r in ALL_RULES]
    emit("\n".join(lines) + "\n" + _SEVERITY_NOTE, None)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code instead of raising SystemExit (for tests)."""
    try:
        cli.main(args=argv, prog_name="mlgate", standalone_mode=False)
    except SystemExit as e:
        return int(e.code or 0)
    except click.exceptions.ClickException as e:
        # Usage errors quote paths and names as given; show() prints this attribute, which
        # click's stubs declare Final only because click itself never reassigns it.
        e.message = inert(e.message)  # type: ignore[misc]
        e.show()
        return ExitCode.ERROR
    except click.exceptions.Abort:
        echo("mlgate: aborted", err=True)
        return ExitCode.ERROR
    except MlgateError as e:
        echo(f"mlgate: error: {e}", err=True)
        return ExitCode.ERROR
    return ExitCode.CLEAN


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
