"""Command-line interface: parses arguments, calls the library, renders, maps exit codes."""

from __future__ import annotations

import importlib
import sys

import click

from mlgate import __version__
from mlgate.errors import ExitCode, MlgateError
from mlgate.render.escape import echo, inert

# Every command is imported only when invoked: each stage's libraries (cryptography,
# cyclonedx, the scan engine, SQLAlchemy...) stay out of the others' start-up time.
_STAGE_COMMANDS = {
    "scan": "mlgate.scan.commands:scan_cmd",
    "explain": "mlgate.scan.commands:explain_cmd",
    "rules": "mlgate.scan.commands:rules_cmd",
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
    "lineage": "mlgate.registry.lineage_commands:lineage_cmd",
    "affected": "mlgate.registry.lineage_commands:affected_cmd",
    "admit": "mlgate.gate.commands:admit_cmd",
    "sandbox": "mlgate.sandbox.commands:sandbox_cmd",
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
@click.version_option(__version__, prog_name="mlgate")  # not read from package metadata: slow
def cli() -> None:
    """mlgate: the gate between untrusted model artifacts and production."""


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
