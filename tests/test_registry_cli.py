"""The registry command line, in-process on the embedded SQLite registry: exit codes
(0 done, 1 rejected / check failed, 2 could not complete) and what each command prints."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from registry_models import BENIGN_FILES, Cli, init_cli, write_benign, write_malicious

from mlgate.errors import ExitCode
from mlgate.provenance.signing import verify_model


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli-models")
    return {
        "v1": write_benign(root / "v1", seed=0),
        "v2": write_benign(root / "v2", seed=1),
        "evil": write_malicious(root / "evil", "registry-cli-evil"),
    }


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    return init_cli(tmp_path, capsys, monkeypatch)


def test_model_lifecycle_through_the_cli(cli: Cli, models: dict[str, Path], tmp_path: Path) -> None:
    assert cli("registry", "users") == ExitCode.CLEAN
    assert cli.out.splitlines() == [
        "alice: admin",
        "pat: publisher",
        "rita: reviewer",
        "rob: reader",
    ]

    assert cli("ingest", models["v1"], "--name", "org/tiny", actor="pat") == ExitCode.CLEAN
    assert cli.out.startswith("org/tiny@1: scanned (risk: ")
    assert "awaiting review" in cli.out
    assert cli("ingest", models["evil"], "--name", "org/evil", actor="pat") == ExitCode.UNSAFE
    assert cli.out.startswith("org/evil@1: rejected")
    assert "reject by mlgate-policy: auto-rejected" in cli.out

    for number, folder in ((1, models["v1"]), (2, models["v2"])):
        if number == 2:
            assert cli("ingest", folder, "--name", "org/tiny", actor="pat") == ExitCode.CLEAN
        assert cli("approve", f"org/tiny@{number}", "--reason", "ok", actor="rita") == 0
        assert f"org/tiny@{number}: approved" in cli.out
        assert cli("publish", f"org/tiny@{number}", "--alias", "production", actor="pat") == 0
        assert f"production -> org/tiny@{number}" in cli.out

    assert cli("ingest", models["v1"], "--name", "org/tiny", actor="pat") == ExitCode.CLEAN
    assert cli("reject", "org/tiny@3", "--reason", "duplicate", actor="rita") == ExitCode.CLEAN
    assert "org/tiny@3: rejected" in cli.out and "reject by rita: duplicate" in cli.out

    assert cli("models", "list", actor="rob") == ExitCode.CLEAN
    rows = {line.split()[0]: line for line in cli.out.splitlines()}
    assert rows.keys() == {"org/evil@1", "org/tiny@1", "org/tiny@2", "org/tiny@3"}
    assert "published" in rows["org/tiny@2"] and rows["org/tiny@2"].endswith("[production]")
    assert cli("models", "list", "--format", "json", actor="rob") == ExitCode.CLEAN
    listed = {(v["model"], v["version"]): v for v in json.loads(cli.out)}
    assert {k: v["state"] for k, v in listed.items()} == {
        ("org/evil", 1): "rejected",
        ("org/tiny", 1): "published",
        ("org/tiny", 2): "published",
        ("org/tiny", 3): "rejected",
    }
    assert listed[("org/tiny", 2)]["aliases"] == ["production"]

    assert cli("models", "show", "org/tiny@production", actor="rob") == ExitCode.CLEAN
    assert cli.out.startswith("org/tiny@2  published")
    assert "licence:  apache-2.0" in cli.out
    assert cli("models", "show", "org/tiny@2", "--format", "json", actor="rob") == 0
    shown = json.loads(cli.out)
    assert sorted(f["path"] for f in shown["files"]) == list(BENIGN_FILES)
    assert shown["source"]["uri"] == str(models["v2"])
    assert shown["signature"] and shown["bom"]["bomFormat"] == "CycloneDX"

    assert cli("models", "history", "org/tiny", actor="rob") == ExitCode.CLEAN
    changes = [line[21:] for line in cli.out.splitlines()]  # without the timestamp
    assert changes[:3] == [
        "org/tiny@1  - -> quarantined  by pat: ingested from " + str(models["v1"]),
        "org/tiny@1  quarantined -> scanned  by pat: static scan: info",
        "org/tiny@1  scanned -> approved  by rita: ok",
    ]
    assert changes[3].startswith("org/tiny@1  approved -> published  by pat: signed by ")
    assert "org/tiny@3  scanned -> rejected  by rita: duplicate" in cli.out

    dest = tmp_path / "pulled"
    assert cli("pull", "org/tiny@production", dest, actor="rob") == ExitCode.CLEAN
    assert cli.out == f"org/tiny@2: 3 files written to {dest}\n"
    assert verify_model(dest, cli_public_key(cli)).verified
    assert cli("models", "show", "org/tiny@2", actor="rob") == ExitCode.CLEAN
    assert "download  model.safetensors by rob" in cli.out

    assert cli("rollback", "org/tiny", actor="pat") == ExitCode.CLEAN
    assert cli.out == "org/tiny@production -> org/tiny@1\n"
    assert cli("rollback", "org/tiny", "--to", "2", actor="pat") == ExitCode.CLEAN
    assert cli.out == "org/tiny@production -> org/tiny@2\n"
    assert cli("revoke", "org/tiny@2", "--reason", "leak") == ExitCode.CLEAN
    assert "org/tiny@2: revoked" in cli.out and "production -> org/tiny@1" in cli.out
    assert cli("pull", "org/tiny@2", tmp_path / "again", actor="rob") == ExitCode.ERROR
    assert "only published versions are served" in cli.err

    assert cli("audit", "verify") == ExitCode.CLEAN
    assert cli.out.startswith("audit log intact: ")
    assert cli("registry", "check") == ExitCode.CLEAN
    assert cli.out.endswith("4 versions, 5 blobs: 0 inconsistencies, 0 leftovers\n")


def cli_public_key(cli: Cli) -> Path:
    """``mlgate pubkey`` of the key ``registry init`` generated."""
    pub = cli.data_dir.parent / "org.pub"
    assert cli.raw("pubkey", "--key", cli.data_dir / "keys" / "org.pem", "-o", pub) == 0
    return pub


def test_audit_verify_names_the_first_tampered_entry(cli: Cli) -> None:
    assert cli("audit", "verify") == ExitCode.CLEAN
    assert cli.out == "audit log intact: 4 entries, 0 signed checkpoints verified\n"
    with sqlite3.connect(cli.data_dir / "registry.db") as db:
        db.execute("UPDATE audit_entries SET actor = 'mallory' WHERE seq = 3")
    db.close()
    assert cli("audit", "verify") == ExitCode.UNSAFE
    assert cli.out.splitlines() == [
        "FAIL entry 3: content does not match its hash (edited)",
        "audit log TAMPERED: first bad entry 3",
    ]


def test_exported_log_verifies_offline_with_the_public_key(cli: Cli, tmp_path: Path) -> None:
    assert cli("audit", "checkpoint") == ExitCode.CLEAN
    assert cli.out.startswith("checkpoint at entry 5: ")
    export = tmp_path / "audit.jsonl"
    assert cli("audit", "export", "--out", export, actor="rob") == ExitCode.CLEAN
    pub = cli_public_key(cli)
    assert cli("audit", "verify", "--file", export, "--key", pub) == ExitCode.CLEAN
    assert cli.out == "audit log intact: 5 entries, 1 signed checkpoints verified\n"
    assert cli("audit", "verify", "--file", export) == ExitCode.ERROR
    assert "--file needs --key" in cli.err
    lines = export.read_text().splitlines()
    lines[1] = lines[1].replace('"publisher"', '"admin"')
    export.write_text("\n".join(lines) + "\n")
    assert cli("audit", "verify", "--file", export, "--key", pub) == ExitCode.UNSAFE
    assert "FAIL entry 2: content does not match its hash (edited)" in cli.out
    assert "first bad entry 2" in cli.out


def test_policy_file_and_permission_errors(cli: Cli, models: dict[str, Path]) -> None:
    policy = cli.data_dir.parent / "policy.toml"
    policy.write_text('[registry]\nrequired-approvals = 2\nauto-reject-at = "critical"\n')
    assert cli("registry", "policy", "--set", policy) == ExitCode.CLEAN
    shown = json.loads(cli.out)
    assert (shown["required_approvals"], shown["auto_reject_at"]) == (2, "CRITICAL")
    assert cli("registry", "policy", "--set", policy, actor="rob") == ExitCode.ERROR
    assert "rob (reader) may not administer" in cli.err
    assert cli("registry", "user", "rob", "--role", "admin", actor="rob") == ExitCode.ERROR
    assert "rob (reader) may not administer" in cli.err
    assert cli("ingest", models["v1"], actor="rob") == ExitCode.ERROR
    assert "rob (reader) may not ingest: needs one of admin, publisher" in cli.err
    assert cli("approve", "v1@1", "--reason", "x", actor="pat") == ExitCode.ERROR
    assert "pat (publisher) may not approve: needs one of admin, reviewer" in cli.err
    assert cli("approve", "v1@1", "--reason", "x", actor="rita") == ExitCode.ERROR
    assert cli.err == "mlgate: error: no model named 'v1' in the registry\n"
    assert cli("registry", "init") == ExitCode.ERROR
    assert "already initialised" in cli.err
    policy.write_text("[registry]\nrequired-aprovals = 2\n")
    assert cli("registry", "policy", "--set", policy) == ExitCode.ERROR
    assert "unknown registry policy keys ['required_aprovals']" in cli.err
    assert cli("registry", "policy", actor="rob") == ExitCode.CLEAN
    assert json.loads(cli.out)["required_approvals"] == 2  # the bad file changed nothing
