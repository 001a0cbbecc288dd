"""Lineage and incident response: built-from facts indexed at ingest, scan and publication;
reverse queries by base model, dataset, rule and digest (transitive, with deployment); the
bulk revoke; the same through the CLI and the management API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from registry_models import init_cli, release, write_benign, write_malicious
from registry_support import as_user, sqlite_unless_asked

from mlgate.cli import main
from mlgate.registry.errors import PermissionDenied, TransitionRefused
from mlgate.registry.lifecycle import State

POISONED = "evil-org/base-7b"
# SQLite everywhere; the queries that differ by backend (IN lists, GROUP BY, the bulk
# write) run on PostgreSQL too.
BOTH_BACKENDS = pytest.mark.parametrize("registry_url", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def registry_url(request: pytest.FixtureRequest) -> str | None:
    """None (SQLite) unless the test asks for ``postgresql`` (indirect parameter)."""
    return sqlite_unless_asked(request)


def derived(folder: Path, base: str, seed: int, datasets: tuple[str, ...] = ()) -> Path:
    """A benign model whose card names ``base`` (and ``datasets``) and whose config names
    the checkpoint it was loaded from."""
    write_benign(folder, seed)
    front = [f"base_model: {base}", "license: mit"]
    if datasets:
        front.append("datasets:\n" + "".join(f"  - {d}\n" for d in datasets).rstrip())
    (folder / "README.md").write_text("---\n" + "\n".join(front) + "\n---\n# derived\n")
    (folder / "config.json").write_text(json.dumps({"_name_or_path": f"/ckpt/{seed}"}))
    return folder


@pytest.fixture
def incident(registry, tmp_path: Path) -> Any:  # type: ignore[no-untyped-def]
    """org/chat@1 (production) and org/chat@2 (staging) built on the poisoned base;
    org/tuned built on org/chat (so affected in turn); org/other on a clean base."""
    release(
        registry, derived(tmp_path / "c1", POISONED, 1, ("evil/data",)), "org/chat", "production"
    )
    release(registry, derived(tmp_path / "c2", POISONED, 2), "org/chat", "staging")
    release(registry, derived(tmp_path / "t1", "org/chat", 3), "org/tuned", "production")
    release(registry, derived(tmp_path / "o1", "clean/base", 4), "org/other", "production")
    registry.record_downloads("org/chat@1", ["model.safetensors"])
    return registry


@BOTH_BACKENDS
def test_built_from_and_the_versions_a_poisoned_base_affects(incident) -> None:  # type: ignore[no-untyped-def]
    built = {(s.kind, s.value, s.origin) for s in incident.lineage.built_from("org/chat@1")}
    assert {
        ("base_model", POISONED, "card"),
        ("base_model", POISONED, "bom"),
        ("dataset", "evil/data", "card"),
        ("dataset", "evil/data", "bom"),
        ("base_model", "/ckpt/1", "config"),
    } <= built
    # Descendants, transitively (org/tuned is built on org/chat), with their deployment.
    found = {a.ref: a for a in incident.lineage.affected("base_model", POISONED)}
    assert set(found) == {"org/chat@1", "org/chat@2", "org/tuned@1"}
    assert found["org/chat@1"].aliases == ("production",)
    assert found["org/chat@1"].downloads == 1 and found["org/chat@1"].last_download
    assert found["org/chat@2"].downloads == 0 and found["org/chat@2"].last_download is None
    assert found["org/tuned@1"].via in ("built on org/chat@1", "built on org/chat@2")
    by_dataset = incident.lineage.affected("dataset", "evil/data")
    assert {a.ref for a in by_dataset} == {"org/chat@1", "org/tuned@1"}


def test_rule_and_digest_queries(registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = as_user(registry, "pat").ingest(write_malicious(tmp_path / "bad", "x"), name="org/bad")
    rules = {f["rule_id"] for f in bad.scan_report["findings"]}
    assert rules
    rule = sorted(rules)[0]
    assert [a.ref for a in registry.lineage.affected("rule", rule)] == ["org/bad@1"]
    digest = bad.files[0].digest
    hit = registry.lineage.affected("digest", f"sha256:{digest}")
    assert [(a.ref, a.via) for a in hit] == [("org/bad@1", f"contains {bad.files[0].path}")]
    assert registry.lineage.affected("digest", "sha256:" + "0" * 64) == ()


@BOTH_BACKENDS
def test_bulk_revoke_is_audited_per_version_and_aliases_fall_back(incident) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PermissionDenied):
        as_user(incident, "pat").lineage.revoke_affected("base_model", POISONED, "poisoned")
    with pytest.raises(TransitionRefused):
        incident.lineage.revoke_affected("base_model", POISONED, "  ")
    done = incident.lineage.revoke_affected("base_model", POISONED, "base poisoned")
    assert set(done.revoked) == {"org/chat@1", "org/chat@2", "org/tuned@1"}
    assert incident.show("org/chat@2").state is State.REVOKED
    assert incident.show("org/other@1").state is State.PUBLISHED
    summaries = {m.name: m for m in incident.models()}
    assert summaries["org/chat"].aliases == {} and summaries["org/tuned"].aliases == {}
    assert summaries["org/other"].aliases == {"production": 1}
    entries = [json.loads(line) for line in incident.audit_export()]
    revokes = [e for e in entries if e["action"] == "revoked"]
    assert {e["subject"] for e in revokes} == set(done.revoked)
    assert all(e["actor"] == "alice" and e["details"]["reason"] == "base poisoned" for e in revokes)
    again = incident.lineage.revoke_affected("base_model", POISONED, "again")
    assert again.revoked == () and len(again.skipped) == 3


def test_hostile_card_values_are_bounded(registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = write_benign(tmp_path / "h")
    many = "".join(f"  - d{i}\n" for i in range(500))
    (folder / "README.md").write_text(f"---\nbase_model: {'x' * 5000}\ndatasets:\n{many}---\n")
    version = as_user(registry, "pat").ingest(folder, name="org/hostile")
    built = registry.lineage.built_from(version.ref)
    assert len([s for s in built if s.kind == "dataset"]) == 64
    assert not [s for s in built if s.kind == "base_model" and s.origin == "card"]


def test_cli_lineage_and_affected_with_revoke(tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    cli = init_cli(tmp_path, capsys, monkeypatch)
    assert cli("ingest", derived(tmp_path / "m", POISONED, 1), "--name", "org/m", actor="pat") == 0
    assert cli("approve", "org/m@1", "--reason", "ok", actor="rita") == 0
    assert cli("publish", "org/m@1", "--alias", "production", actor="pat") == 0
    assert cli("lineage", "org/m@1") == 0
    assert f"base model: {POISONED} (from the card)" in cli.out
    assert cli("lineage", "org/m@1", "--format", "json") == 0
    assert {"kind": "base_model", "value": POISONED, "origin": "bom"} in json.loads(cli.out)[
        "built_from"
    ]
    assert cli("affected", "--base-model", POISONED, "--format", "json") == 0
    assert [a["aliases"] for a in json.loads(cli.out)["affected"]] == [["production"]]
    assert cli("affected", "--base-model", POISONED, "--revoke") == 2
    assert "--reason" in cli.err
    assert cli("affected", "--base-model", POISONED, "--dataset", "x") == 2
    assert cli("affected", "--base-model", POISONED, "--revoke", "--reason", "poisoned") == 0
    assert "revoked 1: org/m@1" in cli.out
    assert cli("models", "show", "org/m@1", "--format", "json") == 0
    assert json.loads(cli.out)["state"] == "revoked"


def test_migration_backfills_from_stored_reports_and_boms(incident) -> None:  # type: ignore[no-untyped-def]
    from alembic import command

    from mlgate.registry import database

    config = database._alembic_config()
    with incident.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0002")
    database.migrate(incident.engine)
    # The card's and config's facts are not re-read; the BOM's pedigree is backfilled.
    assert {a.ref for a in incident.lineage.affected("base_model", POISONED)} == {
        "org/chat@1",
        "org/chat@2",
        "org/tuned@1",
    }
    assert {s.origin for s in incident.lineage.built_from("org/chat@1")} == {"bom"}


def test_api_lineage_affected_and_bulk_revoke(incident, capsys) -> None:  # type: ignore[no-untyped-def]
    from urllib.parse import quote

    from hub_api_support import call, running_hub

    from mlgate.hub.settings import HubSettings

    url = (
        None
        if incident.engine.url.get_backend_name() == "sqlite"
        else (incident.engine.url.render_as_string(hide_password=False))
    )
    tokens = {u: as_user(incident, u).tokens.create(label="t").secret for u in ("alice", "rob")}
    with running_hub(HubSettings(incident.data_dir, url)) as hub:
        built = call(hub, "GET", "/lineage/org/chat@1", token=tokens["rob"])
        assert built.status == 200
        assert {"kind": "dataset", "value": "evil/data", "origin": "card"} in built.body[
            "built_from"
        ]
        query = f"/affected?kind=base_model&value={quote(POISONED)}"
        found = call(hub, "GET", query, token=tokens["rob"])
        assert found.status == 200
        assert {a["ref"] for a in found.body["affected"]} == {
            "org/chat@1",
            "org/chat@2",
            "org/tuned@1",
        }
        body = {"kind": "base_model", "value": POISONED, "reason": "poisoned base"}
        assert call(hub, "POST", "/affected/revoke", body, token=tokens["rob"]).status == 403
        assert (
            call(hub, "POST", "/affected/revoke", {**body, "x": 1}, token=tokens["alice"]).status
            == 422
        )
        # The CLI through the hub: the dataset's versions first (org/chat@1, org/tuned@1).
        remote = ["--hub", hub, "--token", tokens["alice"], "--format", "json"]
        args = ["affected", "--dataset", "evil/data", "--revoke", "--reason", "poisoned data"]
        assert main([*args, *remote]) == 0
        cli_done = json.loads(capsys.readouterr().out)["revocation"]
        assert sorted(cli_done["revoked"]) == ["org/chat@1", "org/tuned@1"]
        done = call(hub, "POST", "/affected/revoke", body, token=tokens["alice"])
        assert done.status == 200 and done.body["revoked"] == ["org/chat@2"]
        assert [s["ref"] for s in done.body["skipped"]] == ["org/chat@1", "org/tuned@1"]
    assert incident.show("org/chat@1").state.value == "revoked"
    assert incident.show("org/chat@2").state.value == "revoked"
