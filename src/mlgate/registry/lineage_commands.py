"""``mlgate lineage VERSION`` and ``mlgate affected``: what a version was built from, and
which versions a poisoned base model, dataset, rule or file touches (optionally revoking
them all with one reason). Thin commands over :class:`~mlgate.registry.lineage.Lineage`,
locally or with ``--hub`` through the management API (same records, same output)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from mlgate.cli_options import text_or_json_option
from mlgate.registry import lineage
from mlgate.registry.targets import open_target, registry_options
from mlgate.render.escape import echo, json_safe


@click.command(name="lineage")
@registry_options
@text_or_json_option
@click.argument("ref")
def lineage_cmd(data_dir: Path, url: str | None, actor: str | None, fmt: str, ref: str) -> None:
    """The base models and datasets version REF was built from (model card, config, ML-BOM)."""
    sources = open_target(data_dir, url, actor).lineage.built_from(ref)
    if fmt == "json":
        click.echo(
            json.dumps(json_safe({"version": ref, "built_from": [vars(s) for s in sources]}))
        )
        return
    if not sources:
        echo(f"{ref}: no base model or dataset recorded")
    for s in sources:
        echo(f"{s.kind.replace('_', ' ')}: {s.value} (from the {s.origin})")


@click.command(name="affected")
@registry_options
@text_or_json_option
@click.option("--base-model", metavar="ID", help="A base model (hub id or registered name).")
@click.option("--dataset", metavar="ID", help="A training dataset (hub id).")
@click.option("--rule", metavar="RULE", help="A scanner rule id, e.g. MLG101.")
@click.option("--digest", metavar="sha256:HEX", help="A file's (or a version's content) digest.")
@click.option("--revoke", is_flag=True, help="Revoke every affected version that can be.")
@click.option("--reason", help="Why (required with --revoke; recorded per version).")
def affected_cmd(
    data_dir: Path,
    url: str | None,
    actor: str | None,
    fmt: str,
    base_model: str | None,
    dataset: str | None,
    rule: str | None,
    digest: str | None,
    revoke: bool,
    reason: str | None,
) -> None:
    """Every version deriving from or containing one base model, dataset, rule or digest,
    with where each is deployed; with --revoke, revoke them (aliases fall back)."""
    given = {
        k: v
        for k, v in zip(lineage.KINDS, (base_model, dataset, rule, digest), strict=True)
        if v is not None
    }
    if len(given) != 1:
        raise click.UsageError("give exactly one of --base-model, --dataset, --rule, --digest")
    if revoke and not (reason and reason.strip()):
        raise click.UsageError("--revoke needs --reason")
    ((kind, value),) = given.items()
    service = open_target(data_dir, url, actor).lineage
    found = service.affected(kind, value)
    done = service.revoke_affected(kind, value, reason or "") if revoke else None
    if fmt == "json":
        data: dict[str, Any] = {
            "kind": kind,
            "value": value,
            "affected": [a.to_json() for a in found],
        }
        if done is not None:
            data["revocation"] = done.to_json()
        click.echo(json.dumps(json_safe(data)))
        return
    echo(f"{len(found)} version(s) affected by {kind.replace('_', ' ')} {value}")
    for a in found:
        deployed = ", ".join(a.aliases) or "no alias"
        echo(f"  {a.ref}  {a.state}  {deployed}  {a.downloads} download(s)  via {a.via}")
    if done is not None:
        echo(f"revoked {len(done.revoked)}: {', '.join(done.revoked) or 'none'}")
        for ref, why in done.skipped:
            echo(f"  not revoked {ref}: {why}")
