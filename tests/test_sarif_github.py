"""SARIF that GitHub code scanning accepts as is (issue 15): stable ``partialFingerprints``,
a region with ``startLine`` on every result, URIs relative to ``%SRCROOT%``, rules with help
and a ``helpUri`` into docs/rules.md (generated from the rules table, checked up to date here),
all validated against the SARIF 2.1.0 schema in tests/data.

Every malicious artifact here is built in ``tmp_path`` and only ever scanned, never loaded.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from payloads import benign_state_dict, glob0, os_system

import mlgate
from mlgate.discover import discover_paths
from mlgate.findings import Report
from mlgate.render.rules_doc import rules_markdown
from mlgate.render.sarif import render_sarif
from mlgate.scan.rules import ALL_RULES

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "tests" / "data" / "sarif-schema-2.1.0.json").read_text())
FINGERPRINT = re.compile(r"[0-9a-f]{64}")
# Microsoft's SARIF multitool (npm @microsoft/sarif-multitool-linux); .ci/run installs it.
MULTITOOL = os.environ.get("SARIF_MULTITOOL", "")


def _sarif(*paths: Path | str) -> dict[str, Any]:
    """Scan, render and validate against the SARIF 2.1.0 schema."""
    log: dict[str, Any] = json.loads(render_sarif(mlgate.scan(*paths, config=mlgate.Config())))
    errors = list(jsonschema.Draft7Validator(SCHEMA).iter_errors(log))
    assert not errors, [e.message for e in errors[:5]]
    return log


def _results(log: dict[str, Any]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = log["runs"][0]["results"]
    return results


def _fingerprints(log: dict[str, Any]) -> list[str]:
    return [r["partialFingerprints"]["mlgate/v1"] for r in _results(log)]


def _models(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "evil.pkl").write_bytes(os_system("sarif-gh-evil"))
    # Two findings in one file at different offsets: distinct fingerprints.
    (folder / "two.pkl").write_bytes(
        b"("
        + glob0("mycompany.tools", "fetch")
        + b"(Vx\ntR"
        + glob0("os", "system")
        + b"(Vsarif-gh-two\ntRt."
    )
    (folder / "clean.pkl").write_bytes(benign_state_dict())
    return folder


# --- partialFingerprints --------------------------------------------------------------------


def test_fingerprints_are_stable_across_runs_and_moves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(_models(tmp_path / "a" / "models").parent)
    first = _fingerprints(_sarif("models"))
    assert first == _fingerprints(_sarif("models"))  # a second run
    assert first == _fingerprints(_sarif(Path("models").absolute()))  # spelled absolute
    assert len(first) == len(set(first)) >= 3 and all(FINGERPRINT.fullmatch(f) for f in first)

    moved = shutil.move(tmp_path / "a" / "models", tmp_path / "b" / "c" / "models")
    monkeypatch.chdir(tmp_path / "b" / "c")  # another checkout on another machine
    assert _fingerprints(_sarif("models")) == first
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # outside %SRCROOT%: named from the target
    outside = _sarif(Path(moved))
    assert _results(outside)[0]["locations"][0]["physicalLocation"]["artifactLocation"][
        "uri"
    ].startswith("file:///")
    assert _fingerprints(outside) == first


def test_fingerprint_changes_with_rule_location_or_evidence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("x.pkl").write_bytes(os_system("sarif-gh-one"))
    Path("y.pkl").write_bytes(os_system("sarif-gh-one"))  # same bytes, another file
    Path("z.pkl").write_bytes(os_system("sarif-gh-two"))  # other evidence, same offsets
    (x,), (y,), (z,) = (_fingerprints(_sarif(n)) for n in ("x.pkl", "y.pkl", "z.pkl"))
    assert len({x, y, z}) == 3
    for result in _results(_sarif("x.pkl")):  # both GitHub's key and ours
        assert result["partialFingerprints"] == {"mlgate/v1": x, "primaryLocationLineHash": x}


# --- regions and URIs -----------------------------------------------------------------------


def test_every_result_has_a_region_and_a_relative_uri(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(_models(tmp_path / "models").parent)
    log = _sarif("models")
    run = log["runs"][0]
    assert run["originalUriBaseIds"] == {"%SRCROOT%": {"uri": f"{tmp_path.as_uri()}/"}}
    report = mlgate.scan("models", config=mlgate.Config())
    for result, finding in zip(_results(log), report.sorted_findings(), strict=True):
        physical = result["locations"][0]["physicalLocation"]
        assert physical["artifactLocation"] == {
            "uri": Path(finding.location.path).as_posix(),
            "uriBaseId": "%SRCROOT%",
        }
        assert physical["region"] == {"startLine": 1, "byteOffset": finding.location.offset}
    assert {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in _results(log)
    } == {"models/evil.pkl", "models/two.pkl"}


def test_paths_outside_the_base_stay_absolute_file_uris(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    evil = tmp_path / "out" / "evil.pkl"
    evil.parent.mkdir()
    evil.write_bytes(os_system("sarif-gh-outside"))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    (result,) = _results(_sarif(evil))
    artifact = result["locations"][0]["physicalLocation"]["artifactLocation"]
    assert artifact == {"uri": evil.as_uri()}


# --- rules, help and docs/rules.md ----------------------------------------------------------


def _github_anchors(markdown: str) -> set[str]:
    """Anchors GitHub derives from headings: lower case, punctuation dropped, spaces to '-'."""
    headings = re.findall(r"^#+ (.+)$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_docs_rules_md_is_generated_from_the_table() -> None:
    assert (ROOT / "docs" / "rules.md").read_text(encoding="utf-8") == rules_markdown(), (
        "regenerate: python -m mlgate.render.rules_doc > docs/rules.md"
    )


def test_every_rule_has_what_github_shows(tmp_path: Path) -> None:
    (tmp_path / "clean.pkl").write_bytes(benign_state_dict())
    rules = _sarif(tmp_path / "clean.pkl")["runs"][0]["tool"]["driver"]["rules"]
    anchors = _github_anchors((ROOT / "docs" / "rules.md").read_text(encoding="utf-8"))
    assert [r["id"] for r in rules] == [r.id for r in ALL_RULES]
    for rule, source in zip(rules, ALL_RULES, strict=True):
        assert rule["shortDescription"]["text"] and rule["fullDescription"]["text"]
        assert source.description in rule["help"]["text"]
        assert source.description in rule["help"]["markdown"]
        page, anchor = rule["helpUri"].split("#")
        assert page.startswith("https://") and page.endswith("/blob/main/docs/rules.md")
        assert anchor == source.id.lower() and anchor in anchors
        assert 0.0 <= float(rule["properties"]["security-severity"]) <= 10.0
        assert "security" in rule["properties"]["tags"] and len(rule["properties"]["tags"]) <= 20


# --- Microsoft's SARIF multitool, GitHub rules --------------------------------------------


@pytest.fixture
def multitool() -> str:
    if not (MULTITOOL and os.access(MULTITOOL, os.X_OK)):
        # CI must prove GitHub accepts the log; only a developer machine may lack the tool.
        missing = "SARIF_MULTITOOL unset or not executable (see .ci/run)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {missing}")
        pytest.skip(missing)
    return MULTITOOL


def test_multitool_github_rules_find_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, multitool: str
) -> None:
    monkeypatch.chdir(tmp_path)
    _models(Path("models"))
    Path("train.py").write_text("import torch\nm = torch.load(path)\n")
    scan = mlgate.scan("models", config=mlgate.Config())
    report = Report.merge([scan, discover_paths([Path("train.py")])])
    assert {f.rule_id for f in report.findings} >= {"MLG101", "MLG103", "MLG601"}
    Path("log.sarif").write_text(render_sarif(report), encoding="utf-8")
    run = subprocess.run(
        [multitool, "validate", "--rule-kind", "Gh;Sarif", "-o", "out.sarif", "log.sarif"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    found = json.loads(Path("out.sarif").read_text(encoding="utf-8"))["runs"][0]["results"]
    assert found == [], [(r["ruleId"], r["message"]) for r in found]
