"""``mlgate admit``: exit 0 only when every check passed, 1 otherwise (one line per failure)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mlgate.errors import ExitCode
from mlgate.gate.admission import CHECKS, AdmitPolicy, admit, load_admit_policy
from mlgate.registry.targets import local_only, open_local, registry_options
from mlgate.render.escape import echo


@click.command(name="admit")
@click.argument("model", type=click.Path(path_type=Path, exists=True))
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(path_type=Path, exists=True),
    help="TOML file with an [admit] table.",
)
@click.option(
    "--lock",
    type=click.Path(path_type=Path, exists=True),
    help="Pinned digests, from a lock kept outside MODEL [default: the registry].",
)
@click.option(
    "--key",
    "keys",
    multiple=True,
    type=click.Path(path_type=Path, exists=True),
    help="Trusted public key (repeatable) [default: policy, else the registry's].",
)
@click.option(
    "--expect", metavar="REF", help="The registry version it must be, e.g. org/model@production."
)
@click.option(
    "--skip",
    multiple=True,
    type=click.Choice(CHECKS),
    help="Leave a check out (recorded in the output).",
)
@click.option("--no-registry", is_flag=True, help="Do not use a registry.")
@registry_options
def admit_cmd(
    model: Path,
    policy_file: Path | None,
    lock: Path | None,
    keys: tuple[Path, ...],
    expect: str | None,
    skip: tuple[str, ...],
    no_registry: bool,
    data_dir: Path,
    url: str | None,
    actor: str | None,
) -> None:
    """Admission gate: scan, pinned digests, signature and registry state of MODEL."""
    policy = load_admit_policy(policy_file) if policy_file else AdmitPolicy()
    policy = AdmitPolicy(
        fail_on=policy.fail_on,
        require=tuple(c for c in policy.require if c not in skip),
        trusted_keys=tuple(keys) or policy.trusted_keys,
        expect=expect or policy.expect,
    )
    registry = None
    local_only()  # admission reads the registry beside it; --hub is not supported here
    if not no_registry and (url or (data_dir / "registry.db").is_file()):
        registry = open_local(data_dir, url, actor)
    result = admit(model, policy, registry=registry, lock=lock)
    for check in result.checks:
        status = "PASS" if check.passed else "FAIL"
        echo(f"{status} {check.name}: {check.summary}")
        for line in check.failures:
            echo(f"  {line}")
    for name in CHECKS:
        if name not in policy.require:
            echo(f"SKIP {name}: not required by the policy")
    verdict = "ADMITTED" if result.admitted else "REFUSED"
    echo(f"{verdict}: {model}")
    sys.exit(ExitCode.CLEAN if result.admitted else ExitCode.UNSAFE)
