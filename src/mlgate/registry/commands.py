"""CLI of the registry stage: ``registry``, ``ingest``, review and publication commands,
``models``, ``pull`` and ``audit``. Each parses its options, calls :class:`Registry` and
renders the result; exit 0 done, 1 the model was rejected or a check failed, 2 error.

With ``--hub URL`` (``MLGATE_HUB``) and ``--token`` (``MLGATE_TOKEN`` or ``HF_TOKEN``) the
same commands run against a remote hub through :class:`~mlgate.hub.client.RemoteRegistry`,
which returns the same records, so the output is the same. The hub acts as the token's
owner: ``--as`` is refused there.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from mlgate.cli_options import emit, local_path_exists, output_option, text_or_json_option
from mlgate.errors import ExitCode
from mlgate.findings import Severity
from mlgate.registry.errors import RegistryError
from mlgate.registry.ingest import HubOptions
from mlgate.registry.lifecycle import State
from mlgate.registry.orgkey import PASSWORD_ENV, PIN_ENV
from mlgate.registry.policy import load_policy
from mlgate.registry.records import Version
from mlgate.registry.service import Registry, init_registry
from mlgate.registry.targets import (
    local_only,
    open_local,
    open_target,
    queue_option,
    registry_options,
    upstream_token,
)
from mlgate.render.escape import echo, inert_json, json_safe
from mlgate.render.text import plural

if TYPE_CHECKING:
    from mlgate.hub.client import RemoteRegistry

F = TypeVar("F", bound=Callable[..., Any])


# -- registry administration ---------------------------------------------------------------


@click.group(name="registry")
def registry_cmd() -> None:
    """Create, migrate, check and administer the registry."""


@registry_cmd.command(name="init")
@registry_options
@click.option(
    "--signing-key",
    metavar="PEM|PKCS11-URI",
    help="Organisation signing key: a PEM file (its password in the environment variable "
    f"{PASSWORD_ENV}) or a pkcs11: URI (PIN in {PIN_ENV}) "
    "[default: generate an unencrypted DATA_DIR/keys/org.pem].",
)
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(path_type=Path, exists=True),
    help="TOML file with a [registry] policy table.",
)
def init_cmd(
    data_dir: Path,
    url: str | None,
    actor: str | None,
    signing_key: str | None,
    policy_file: Path | None,
) -> None:
    """Create the registry; the acting user becomes its first admin.

    Commands that sign with an encrypted organisation key (publish, audit checkpoint) read
    its password from the environment variable MLGATE_SIGNING_KEY_PASSWORD.
    """
    local_only()
    policy = load_policy(policy_file) if policy_file else None
    registry = init_registry(data_dir, url, admin=actor, signing_key=signing_key, policy=policy)
    key = registry.org_key()
    echo(f"registry ready in {data_dir} (admin: {registry.actor})")
    echo(f"organisation key: {key.signer.description}")
    if signing_key is None:
        _warn_plain_org_key(registry.data_dir / "keys" / "org.pem")


def _warn_plain_org_key(path: Path) -> None:
    """Whoever reads the generated key signs as the organisation: say so where it is."""
    for line in (
        f"warning: the organisation signing key is NOT encrypted: {path}",
        "  Anyone who can read it can publish models and sign audit checkpoints as your",
        "  organisation. Keep it owner-only (mode 0600) and backed up offline, or initialise",
        "  the registry with --signing-key: an encrypted PEM from `mlgate keygen` (its",
        f"  password in {PASSWORD_ENV}) or the pkcs11: URI of a hardware token.",
    ):
        echo(line, err=True)


@registry_cmd.command(name="migrate")
@registry_options
def migrate_cmd(data_dir: Path, url: str | None, actor: str | None) -> None:
    """Upgrade the database schema to this mlgate's version."""
    from mlgate.registry.database import make_engine, migrate, sqlite_url  # noqa: PLC0415

    local_only()
    revision = migrate(make_engine(url or sqlite_url(data_dir)))
    echo(f"schema at revision {revision}")


@registry_cmd.command(name="check")
@registry_options
@click.option("--deep", is_flag=True, help="Re-hash every blob.")
@click.option("--repair", is_flag=True, help="Remove orphan blobs older than an hour.")
def check_cmd(data_dir: Path, url: str | None, actor: str | None, deep: bool, repair: bool) -> None:
    """Report orphan blobs and inconsistent records (exit 1 on any inconsistency)."""
    from mlgate.registry.check import check_registry  # noqa: PLC0415

    report = check_registry(open_local(data_dir, url, actor), deep=deep, repair=repair)
    for line in (*report.problems, *report.orphans, *report.repaired):
        echo(line)
    echo(
        f"{plural(report.versions, 'version')}, {plural(report.blobs, 'blob')}: "
        f"{len(report.problems)} inconsistencies, {len(report.orphans)} leftovers"
    )
    sys.exit(ExitCode.CLEAN if report.consistent else ExitCode.UNSAFE)


@registry_cmd.command(name="user")
@registry_options
@click.argument("name")
@click.option(
    "--role",
    "roles",
    required=True,
    metavar="ROLE[,ROLE]",
    help="reader, publisher, reviewer, admin.",
)
def user_cmd(data_dir: Path, url: str | None, actor: str | None, name: str, roles: str) -> None:
    """Create or update a user (admin only)."""
    open_target(data_dir, url, actor).add_user(name, roles)
    echo(f"{name}: {roles}")


@registry_cmd.command(name="users")
@registry_options
def users_cmd(data_dir: Path, url: str | None, actor: str | None) -> None:
    """List users and roles."""
    for name, roles in open_target(data_dir, url, actor).users().items():
        echo(f"{name}: {','.join(roles)}")


@registry_cmd.command(name="policy")
@registry_options
@click.option(
    "--set",
    "policy_file",
    type=click.Path(path_type=Path, exists=True),
    help="Replace the policy with the [registry] table of this TOML file.",
)
def policy_cmd(
    data_dir: Path, url: str | None, actor: str | None, policy_file: Path | None
) -> None:
    """Show (or, as admin, replace) the registry policy."""
    registry = open_target(data_dir, url, actor)
    if policy_file:
        registry.set_policy(load_policy(policy_file))
    click.echo(json.dumps(json.loads(registry.policy.to_json()), indent=2))


# -- lifecycle ------------------------------------------------------------------------------


@click.command(name="ingest")
@registry_options
@click.argument("source", callback=local_path_exists)
@click.option("--name", help="Model name [default: repo id, or file/folder name].")
@click.option("--owner", help="Owning team or person [default: the acting user].")
@click.option(
    "--endpoint",
    envvar="HF_ENDPOINT",
    default="https://huggingface.co",
    show_default=True,
    help="Hub URL for hf://ORG/NAME[@REV] sources [env HF_ENDPOINT].",
)
@click.option("--no-scan", is_flag=True, help="Only quarantine; scan later with `mlgate rescan`.")
def ingest_cmd(
    data_dir: Path,
    url: str | None,
    actor: str | None,
    source: str,
    name: str | None,
    owner: str | None,
    endpoint: str,
    no_scan: bool,
) -> None:
    """Quarantine SOURCE (a file, a folder or hf://ORG/NAME@REV), scan it, apply policy.

    --token (else HF_TOKEN) authenticates to --endpoint. Through --hub, the hub fetches
    hf:// sources from its own upstream; a file or folder is uploaded to it.

    Exit 1 when the policy rejects it, 2 when the scan was incomplete and not rejected.
    """
    registry = open_target(data_dir, url, actor)
    hub = HubOptions(endpoint, upstream_token())
    version = registry.ingest(source, name=name, owner=owner, scan=not no_scan, hub=hub)
    _echo_outcome(registry, version)
    sys.exit(_scan_exit(version))


@click.command(name="rescan")
@registry_options
@click.argument("ref", required=False)
@click.option(
    "--all", "everything", is_flag=True, help="Rescan every stored version, as background jobs."
)
@queue_option
@click.option("--wait", is_flag=True, help="With --all: wait for the jobs and report changes.")
@click.option(
    "--timeout",
    type=click.FloatRange(1),
    default=3600.0,
    show_default=True,
    help="Seconds --wait waits for the workers.",
)
@text_or_json_option
def rescan_cmd(
    data_dir: Path,
    url: str | None,
    actor: str | None,
    ref: str | None,
    everything: bool,
    queue_url: str | None,
    wait: bool,
    timeout: float,
    fmt: str,
) -> None:
    """Scan a quarantined (or re-scan a scanned) version REF. Exit 1 when policy rejects
    it, 2 when the scan was incomplete and not rejected.

    With --all (a retro-hunt after a rule update): enqueue a rescan of every stored version
    for `mlgate worker`; with --wait, report whose verdict changed (exit 1 if any did, 2 if
    a rescan failed).
    """
    if everything == (ref is not None):
        raise click.UsageError("give either a version REF or --all")
    if ref is None:
        from mlgate.hub.worker_commands import rescan_all  # noqa: PLC0415  (hub extra)

        local = open_local(data_dir, url, actor)  # the queue is beside the registry
        sys.exit(rescan_all(local, data_dir, queue_url, timeout if wait else None, fmt))
    registry = open_target(data_dir, url, actor)
    version = registry.scan(ref)
    _echo_outcome(registry, version)
    sys.exit(_scan_exit(version))


def _scan_exit(version: Version) -> ExitCode:
    """1 when policy rejected the version; 2 when its scan was incomplete and policy left it
    for review (auto-reject off): never 0 for a model not fully analysed."""
    if version.state is State.REJECTED:
        return ExitCode.UNSAFE
    return ExitCode.ERROR if version.risk == "incomplete" else ExitCode.CLEAN


def _echo_outcome(registry: Registry | RemoteRegistry, version: Version) -> None:
    files = plural(len(version.files), "file")
    echo(
        f"{version.ref}: {version.state.value} (risk: {version.risk}; {files}, "
        f"{version.size} bytes, from {version.source.uri}"
        + (f" at {version.source.revision}" if version.source.revision else "")
        + ")"
    )
    dynamic = version.dynamic_report
    if dynamic is not None:
        done = "complete" if dynamic["complete"] else "INCOMPLETE"
        echo(f"  dynamic test: {done}, {plural(len(dynamic['findings']), 'finding')}")
    for decision in version.decisions:
        echo(f"  {decision.decision} by {decision.actor}: {decision.reason}")
    pending = registry.pending_reason(version)
    if pending:
        echo(f"  {pending}")


def _reason_option(func: F) -> F:
    return click.option("--reason", required=True, help="Why (recorded in the audit log).")(func)


@click.command(name="approve")
@registry_options
@click.argument("ref")
@_reason_option
def approve_cmd(data_dir: Path, url: str | None, actor: str | None, ref: str, reason: str) -> None:
    """Approve a scanned version (reviewer)."""
    registry = open_target(data_dir, url, actor)
    _echo_outcome(registry, registry.approve(ref, reason))


@click.command(name="reject")
@registry_options
@click.argument("ref")
@_reason_option
def reject_cmd(data_dir: Path, url: str | None, actor: str | None, ref: str, reason: str) -> None:
    """Reject a scanned version (reviewer)."""
    registry = open_target(data_dir, url, actor)
    _echo_outcome(registry, registry.reject(ref, reason))


@click.command(name="publish")
@registry_options
@click.argument("ref")
@click.option("--alias", help="Point this alias (e.g. production) at the version.")
def publish_cmd(
    data_dir: Path, url: str | None, actor: str | None, ref: str, alias: str | None
) -> None:
    """Sign an approved version with the organisation key, attach its ML-BOM, publish it.

    An encrypted organisation key's password is read from MLGATE_SIGNING_KEY_PASSWORD.
    """
    registry = open_target(data_dir, url, actor)
    version = registry.publish(ref, alias=alias)
    _echo_outcome(registry, version)
    echo(
        f"  signed by {version.signed_by}; BOM attached"
        + (f"; {alias} -> {version.ref}" if alias else "")
    )


@click.command(name="deprecate")
@registry_options
@click.argument("ref")
@_reason_option
def deprecate_cmd(
    data_dir: Path, url: str | None, actor: str | None, ref: str, reason: str
) -> None:
    """Deprecate a published version (still served)."""
    registry = open_target(data_dir, url, actor)
    _echo_outcome(registry, registry.deprecate(ref, reason))


@click.command(name="revoke")
@registry_options
@click.argument("ref")
@_reason_option
def revoke_cmd(data_dir: Path, url: str | None, actor: str | None, ref: str, reason: str) -> None:
    """Revoke a version; aliases on it fall back to the previous published version."""
    registry = open_target(data_dir, url, actor)
    version = registry.revoke(ref, reason)
    _echo_outcome(registry, version)
    for summary in registry.models():
        if summary.name == version.model:
            for alias, number in sorted(summary.aliases.items()):
                echo(f"  {alias} -> {version.model}@{number}")


@click.command(name="alias")
@registry_options
@click.argument("name")
@click.argument("alias")
@click.argument("version")
def alias_cmd(
    data_dir: Path, url: str | None, actor: str | None, name: str, alias: str, version: str
) -> None:
    """Point ALIAS of model NAME at published VERSION."""
    target = open_target(data_dir, url, actor).set_alias(name, alias, version)
    echo(f"{name}@{alias} -> {target.ref}")


@click.command(name="rollback")
@registry_options
@click.argument("name")
@click.option("--alias", default="production", show_default=True, help="The alias to move.")
@click.option("--to", "to", metavar="VERSION", help="Target version [default: the previous].")
def rollback_cmd(
    data_dir: Path, url: str | None, actor: str | None, name: str, alias: str, to: str | None
) -> None:
    """Move an alias back to the version it pointed at before."""
    target = open_target(data_dir, url, actor).rollback(name, alias, to)
    echo(f"{name}@{alias} -> {target.ref}")


@click.command(name="pull")
@registry_options
@click.argument("ref")
@click.argument("dest", type=click.Path(path_type=Path))
def pull_cmd(data_dir: Path, url: str | None, actor: str | None, ref: str, dest: Path) -> None:
    """Download a published version (files + the registry signature mlgate.sig) into DEST;
    recorded per file."""
    version = open_target(data_dir, url, actor).pull(ref, dest)
    echo(f"{version.ref}: {plural(len(version.files), 'file')} written to {dest}")


# -- inventory ------------------------------------------------------------------------------


@click.group(name="models")
def models_cmd() -> None:
    """Inventory: list models, show a version, show a model's history."""


@models_cmd.command(name="list")
@registry_options
@text_or_json_option
def list_cmd(data_dir: Path, url: str | None, actor: str | None, fmt: str) -> None:
    """Every model and version with its state and risk."""
    summaries = open_target(data_dir, url, actor).models()
    if fmt == "json":
        summaries_json = [v.summary() for m in summaries for v in m.versions]
        click.echo(json.dumps(json_safe(summaries_json), indent=2))
        return
    for m in summaries:
        for v in m.versions:
            aliases = f" [{', '.join(v.aliases)}]" if v.aliases else ""
            echo(
                f"{v.ref:<40} {v.state.value:<12} risk={v.risk:<10} "
                f"{v.ingested_by} {v.ingested_at[:19]}{aliases}"
            )


@models_cmd.command(name="show")
@registry_options
@text_or_json_option
@click.argument("ref")
def show_cmd(data_dir: Path, url: str | None, actor: str | None, fmt: str, ref: str) -> None:
    """Everything recorded about one version."""
    version = open_target(data_dir, url, actor).show(ref)
    if fmt == "json":
        click.echo(json.dumps(json_safe(version.to_json()), indent=2))
        return
    s = version.source
    lines = [
        f"{version.ref}  {version.state.value}  risk={version.risk}",
        f"  source:   {s.uri}" + (f" @ {s.revision}" if s.revision else ""),
        f"  owner:    {version.owner}; ingested by {version.ingested_by} at {version.ingested_at}",
        f"  content:  {version.content_digest} ({version.size} bytes; "
        f"{', '.join(version.formats)})",
        f"  licence:  {version.license or 'not declared'}",
        f"  signed:   {version.signed_by or 'no'}; BOM: {'yes' if version.bom else 'no'}",
    ]
    lines += [
        f"  file      {f.path}  sha256:{f.digest}  {f.size}  {f.format}" for f in version.files
    ]
    lines += [f"  {d.decision:<9} {d.actor}: {d.reason} ({d.at[:19]})" for d in version.decisions]
    lines += [f"  download  {d.path} by {d.actor} ({d.at[:19]})" for d in version.downloads]
    for line in lines:
        echo(line)
    _echo_findings(version.scan_report)
    _echo_dynamic(version.dynamic_report)


def _echo_dynamic(report: dict[str, Any] | None) -> None:
    """The dynamic test (policy dynamic-test): each file's load, then its findings."""
    if report is None:
        echo("  dynamic test: not run")
        return
    done = "complete" if report["complete"] else "INCOMPLETE: not every load was fully observed"
    echo(f"  dynamic test ({report['trigger']}): {done}")
    for f in report["files"]:
        if f["loader"] is None:
            echo(f"    {f['path']}: {f['skipped']}")
            continue
        events = ", ".join(f"{n} {c}" for c, n in f["events"].items()) or "none"
        echo(f"    {f['path']}: loaded with {f['loader']} in {f['seconds']} s; events: {events}")
    _echo_findings(report, "dynamic findings")


def _echo_findings(report: dict[str, Any] | None, title: str = "findings") -> None:
    """The scan findings a reviewer is asked to judge, most severe first, each line inert."""
    from mlgate.render.text import MAX_EVIDENCE_LINES  # noqa: PLC0415

    if report is None:
        echo("  findings: not scanned yet")
        return
    findings = report["findings"]
    groups = {s: [f for f in findings if f["severity"] == s.name] for s in reversed(Severity)}
    counts = ", ".join(f"{len(g)} {s.name.lower()}" for s, g in groups.items() if g)
    echo(f"  {title}: {len(findings)}" + (f" ({counts})" if counts else ""))
    for severity, group in groups.items():
        if group:
            echo(f"  {severity.name}")
        for f in group:
            loc = f["location"]
            where = loc["artifact"] + (f"@{loc['offset']}" if loc["offset"] is not None else "")
            echo(f"    {f['rule_id']} {where}: {f['message']}")
            for line in (f["evidence"].split("\n") if f["evidence"] else [])[:MAX_EVIDENCE_LINES]:
                echo(f"      {line}")
    for artifact in report["artifacts"]:
        if not artifact["complete"]:
            echo(f"  not fully analysed: {artifact['artifact']}")


@models_cmd.command(name="bom")
@registry_options
@click.argument("ref")
@output_option("Write the BOM here [default: standard output].", "--out")
def bom_cmd(
    data_dir: Path, url: str | None, actor: str | None, ref: str, output: Path | None
) -> None:
    """The CycloneDX ML-BOM attached to a published version."""
    version = open_target(data_dir, url, actor).show(ref)
    if version.bom is None:
        raise RegistryError(f"{version.ref} has no BOM: it is generated when it is published")
    text = json.dumps(json_safe(version.bom), indent=2) + "\n"
    emit(text, output)
    if output is None:
        return
    components = len(version.bom.get("components", []))
    echo(
        f"{version.ref}: CycloneDX {version.bom.get('specVersion')} ML-BOM "
        f"({plural(components, 'component')}) written to {output}"
    )


@models_cmd.command(name="history")
@registry_options
@click.argument("name")
def history_cmd(data_dir: Path, url: str | None, actor: str | None, name: str) -> None:
    """Every state change of every version of model NAME."""
    for change in open_target(data_dir, url, actor).history(name):
        echo(
            f"{change.at[:19]}  {name}@{change.version}  {change.from_state or '-'} -> "
            f"{change.to_state}  by {change.actor}: {change.reason}"
        )


# -- audit ----------------------------------------------------------------------------------


@click.group(name="audit")
def audit_cmd() -> None:
    """The tamper-evident audit log."""


@audit_cmd.command(name="verify")
@registry_options
@click.option(
    "--key",
    "key_path",
    type=click.Path(path_type=Path, exists=True),
    help="Trusted organisation public key [default: the one the registry recorded].",
)
@click.option(
    "--file",
    "export",
    type=click.Path(path_type=Path, exists=True),
    help="Verify an exported log (JSON lines) instead of the registry's.",
)
def audit_verify_cmd(
    data_dir: Path, url: str | None, actor: str | None, key_path: Path | None, export: Path | None
) -> None:
    """Check the hash chain and the signed checkpoints; report the first bad entry."""
    from mlgate.registry import audit  # noqa: PLC0415
    from mlgate.registry.orgkey import read_public_key  # noqa: PLC0415

    key = read_public_key(key_path) if key_path else None
    if export is not None:
        if key is None:
            raise click.UsageError("--file needs --key (the organisation public key)")
        entries, points = audit.read_export(export)
        result = audit.verify_log(entries, points, key)
    else:
        result = open_target(data_dir, url, actor).audit_verify(key)
    for problem in result.problems:
        echo(f"FAIL {problem}")
    if result.ok:
        echo(
            f"audit log intact: {result.entries} entries, {result.checkpoints} signed "
            "checkpoints verified"
        )
    else:
        echo(f"audit log TAMPERED: first bad entry {result.first_bad}")
    sys.exit(ExitCode.CLEAN if result.ok else ExitCode.UNSAFE)


@audit_cmd.command(name="export")
@registry_options
@output_option("Write the log here [default: standard output].", "--out")
def audit_export_cmd(
    data_dir: Path, url: str | None, actor: str | None, output: Path | None
) -> None:
    """Export the log as JSON lines (entries, then checkpoints)."""
    lines = open_target(data_dir, url, actor).audit_export()
    if output is None:
        for line in lines:
            click.echo(inert_json(line))
        return
    tmp = output.with_name(output.name + ".part")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            for line in lines:
                f.write(line + "\n")
        os.replace(tmp, output)
    except OSError as e:
        raise RegistryError(f"cannot write {output}: {e.strerror or e}") from e


@audit_cmd.command(name="checkpoint")
@registry_options
def audit_checkpoint_cmd(data_dir: Path, url: str | None, actor: str | None) -> None:
    """Sign the current head of the log now (admin).

    An encrypted organisation key's password is read from MLGATE_SIGNING_KEY_PASSWORD.
    """
    point = open_target(data_dir, url, actor).audit_checkpoint()
    echo(f"checkpoint at entry {point.seq}: {point.head_hash}")
