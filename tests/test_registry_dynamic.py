"""Registry policy dynamic-test: versions loaded in the real sandbox after the static scan
(SQLite and PostgreSQL), the report stored, shown, in the ML-BOM, and CRITICAL auto-rejects."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import payloads
import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from registry_models import Cli, init_cli, write_benign
from registry_support import as_user
from sandbox_support import require_sandbox

from mlgate.errors import ExitCode
from mlgate.registry.errors import TransitionRefused
from mlgate.registry.lifecycle import State
from mlgate.registry.policy import RegistryPolicy
from mlgate.sandbox.errors import SandboxUnavailableError


def _benign(folder: Path) -> Path:
    """Safetensors, config, card (no sandbox loader) and a plain pickle (loaded)."""
    write_benign(folder)
    (folder / "extra.pkl").write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    return folder


def _malicious(folder: Path, marker: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.pkl").write_bytes(payloads.os_system(marker))
    return folder


def _valid(bom: dict[str, Any]) -> bool:
    return JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(bom)) is None


def _audit_actions(registry: Any) -> list[str]:
    return [json.loads(line)["action"] for line in registry.audit_export()]


@pytest.mark.parametrize("mode", ["always", "on-findings"])
def test_a_payload_that_runs_when_loaded_is_auto_rejected(
    registry: Any, tmp_path: Path, mode: str
) -> None:
    require_sandbox()
    # Static auto-reject off: the dynamic test alone must catch it (CRITICAL always rejects).
    registry.set_policy(RegistryPolicy(auto_reject_at=None, dynamic_test=mode))
    marker = f"registry-dynamic-{mode}"
    version = as_user(registry, "pat").ingest(_malicious(tmp_path / "evil", marker), name="evil")
    assert not (payloads.MARKER_DIR / f"PWNED-{marker}").exists()
    assert version.state is State.REJECTED and version.risk == "critical"
    [decision] = version.decisions
    assert decision.actor == "mlgate-policy"
    assert decision.reason.startswith("auto-rejected by the dynamic test: loading model.pkl MLG701")
    assert f"os.system(b'touch {payloads.marker(marker)}')" in decision.reason  # the command
    report = version.dynamic_report
    assert report is not None and report["trigger"] == mode
    assert {"MLG701", "MLG705"} <= {f["rule_id"] for f in report["findings"]}
    assert any("/bin/sh" in (f["evidence"] or "") for f in report["findings"])
    [entry] = report["files"]
    assert entry["loader"] == "pickle" and entry["events"]["process"] >= 1
    assert "dynamic-test" in _audit_actions(registry)


def test_a_benign_version_is_tested_clean_and_its_bom_says_so(
    registry: Any, tmp_path: Path
) -> None:
    require_sandbox()
    registry.set_policy(RegistryPolicy(dynamic_test="always"))
    version = as_user(registry, "pat").ingest(_benign(tmp_path / "ok"), name="ok")
    assert version.state is State.SCANNED and version.risk == "info"  # static: a pickle
    report = version.dynamic_report
    assert report is not None and report["complete"] and report["findings"] == []
    files = {f["path"]: f for f in report["files"]}
    assert files["extra.pkl"]["loader"] == "pickle" and files["extra.pkl"]["complete"]
    assert files["model.safetensors"]["loader"] is None
    assert "not loaded" in files["model.safetensors"]["skipped"]
    as_user(registry, "rita").approve(version.ref, "dynamic test clean")
    bom = as_user(registry, "pat").publish(version.ref).bom
    assert bom is not None
    assert _valid(bom)
    [model] = [c for c in bom["components"] if c["bom-ref"] == "model"]
    props = {p["name"]: p["value"] for p in model["properties"]}
    assert props["mlgate:dynamic-test"] == "complete"
    assert props["mlgate:dynamic-test-findings"] == "0"


def test_a_load_not_fully_observed_is_incomplete_or_rejected(registry: Any, tmp_path: Path) -> None:
    """Statically clean (an allowed global, OrderedDict) but the load raises: never a pass."""
    require_sandbox()
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "odd.pkl").write_bytes(b"\x80\x02ccollections\nOrderedDict\nK\x05\x85R.")
    registry.set_policy(RegistryPolicy(auto_reject_at=None, dynamic_test="always"))
    pat = as_user(registry, "pat")
    review = pat.ingest(folder, name="odd")
    assert review.state is State.SCANNED and review.risk == "incomplete"
    assert review.dynamic_report is not None and not review.dynamic_report["complete"]
    assert {f["rule_id"] for f in review.dynamic_report["findings"]} == {"MLG708"}
    # A reviewer may still publish it: the BOM then lists the dynamic finding (MEDIUM).
    as_user(registry, "rita").approve(review.ref, "known loader bug, weights unused")
    bom = pat.publish(review.ref).bom
    assert bom is not None and _valid(bom)
    [vulnerability] = bom["vulnerabilities"]
    assert vulnerability["id"] == "MLG708:odd.pkl"
    assert {"name": "mlgate:test", "value": "dynamic"} in vulnerability["properties"]
    registry.set_policy(RegistryPolicy(dynamic_test="always"))
    rejected = pat.ingest(folder, name="odd")
    assert rejected.state is State.REJECTED
    assert rejected.decisions[0].reason == (
        "auto-rejected: the dynamic test could not observe the whole load of every file"
    )


def test_without_a_sandbox_the_version_stays_quarantined_and_off_runs_nothing(
    registry: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No bubblewrap on PATH (a real host without it): never a silent skip."""
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))
    registry.set_policy(RegistryPolicy(dynamic_test="always"))
    pat = as_user(registry, "pat")
    with pytest.raises(SandboxUnavailableError, match="ok@1 is left quarantined") as refused:
        pat.ingest(_benign(tmp_path / "ok"), name="ok")
    assert "bubblewrap" in str(refused.value) and "mlgate rescan ok@1" in refused.value.remedy
    stuck = registry.show("ok@1")
    assert stuck.state is State.QUARANTINED and stuck.scan_report is None
    with pytest.raises(TransitionRefused):
        as_user(registry, "rita").approve("ok@1", "looks fine")
    # off, and on-findings when the static scan finds nothing above INFO (the plain pickle),
    # never reach for the sandbox.
    for policy in ("off", "on-findings"):
        registry.set_policy(RegistryPolicy(dynamic_test=policy))
        version = pat.ingest(tmp_path / "ok", name=f"ok-{policy}")
        assert version.state is State.SCANNED and version.dynamic_report is None
    assert _audit_actions(registry).count("dynamic-test") == 1  # the refusal, audited


def test_models_show_prints_the_dynamic_test(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    require_sandbox()
    cli: Cli = init_cli(tmp_path, capsys, monkeypatch)
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[registry]\ndynamic-test = "always"\ndynamic-timeout = 60\ndynamic-memory = 6\n'
    )
    assert cli("registry", "policy", "--set", policy) == ExitCode.CLEAN
    assert '"dynamic_test": "always"' in cli.out and '"dynamic_memory": 6' in cli.out
    assert cli("ingest", _benign(tmp_path / "ok"), "--name", "ok", actor="pat") == ExitCode.CLEAN
    assert "  dynamic test: complete, 0 findings" in cli.out.splitlines()
    assert cli("models", "show", "ok@1") == ExitCode.CLEAN
    assert "  dynamic test (always): complete" in cli.out
    assert "    extra.pkl: loaded with pickle in " in cli.out
    assert "    model.safetensors: no sandbox loader for safetensors files: not loaded" in cli.out
    assert "  dynamic findings: 0" in cli.out


def test_policy_rejects_an_unknown_dynamic_test_mode(tmp_path: Path) -> None:
    from mlgate.errors import ConfigError
    from mlgate.registry.policy import load_policy

    policy = tmp_path / "policy.toml"
    policy.write_text('[registry]\ndynamic-test = "sometimes"\n')
    with pytest.raises(ConfigError, match="dynamic-test must be one of off, on-findings, always"):
        load_policy(policy)
