"""Output formats: the JSON schema ``mlgate.scan/1``, SARIF 2.1.0 (validated against the official
OASIS schema in tests/data) and the human text report.

Every malicious artifact here is built in ``tmp_path`` and only ever scanned, never loaded.
"""

from __future__ import annotations

import copy
import io
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import jsonschema
import pytest
import torch
from payloads import benign_state_dict, glob0, os_system, shell

import mlgate
from mlgate import Report, Severity
from mlgate.findings import ArtifactResult
from mlgate.render.formats import RENDERERS, OutputFormat
from mlgate.scan.rules import ALL_RULES, RULES_BY_ID

SCHEMA_PATH = Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"
SEVERITY_ORDER = [s.name for s in sorted(Severity, reverse=True)]  # CRITICAL ... INFO
ANSI = re.compile(r"\x1b\[[0-9;]*m")
URI_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#@!$&'()*+,;=%]*")  # RFC 3986, brackets: host only


# --- helpers --------------------------------------------------------------------------------


class _Reduce:
    """Pickles as ``func(*args)``; only ever written with torch.save, never loaded."""

    def __init__(self, func: object, *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.func, self.args


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _scan(*paths: Path) -> Report:
    """Scan with the default configuration (no config file discovery)."""
    return mlgate.scan(*paths, config=mlgate.Config())


def _render(fmt: OutputFormat, report: Report, fail_on: Severity = Severity.HIGH,
            color: bool = False) -> str:
    return RENDERERS[fmt](report, fail_on, color)


def _custom_global_call(module: str, name: str) -> bytes:
    """Protocol-0 ``module.name('x')``: an unknown global (MEDIUM by default)."""
    return glob0(module, name) + b"(Vx\ntR."


def _two_findings(name: str) -> bytes:
    """A tuple ``(mycompany.tools.fetch('x'), os.system(cmd))``: MEDIUM first, CRITICAL later."""
    return (b"(" + glob0("mycompany.tools", "fetch") + b"(Vx\ntR"
            + glob0("os", "system") + b"(V" + shell(name).encode() + b"\ntRt.")


def _evil_checkpoint(path: Path, name: str) -> Path:
    """A real torch.save zip checkpoint whose data.pkl calls os.system (built, never loaded)."""
    buf = io.BytesIO()
    torch.save({"w": torch.ones(2), "x": _Reduce(os.system, shell(name))}, buf)
    return _write(path, buf.getvalue())


def _sort_key(f: dict[str, Any]) -> tuple[str, int, int, int]:
    loc = f["location"]
    return (loc["artifact"], SEVERITY_ORDER.index(f["severity"]),
            -1 if loc["offset"] is None else loc["offset"],
            -1 if loc["opcode_index"] is None else loc["opcode_index"])


@pytest.fixture(scope="module")
def sarif_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


@pytest.fixture(scope="module")
def sarif_validator(sarif_schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    """Validator of the draft the schema declares; its format checker runs offline (formats
    whose checker needs an optional package, such as ``uri``, are simply not checked)."""
    cls = jsonschema.validators.validator_for(sarif_schema)
    cls.check_schema(sarif_schema)
    return cls(sarif_schema, format_checker=cls.FORMAT_CHECKER)


def _validate_sarif(validator: jsonschema.protocols.Validator, text: str) -> dict[str, Any]:
    log: dict[str, Any] = json.loads(text)
    errors = sorted(validator.iter_errors(log), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:10])
    return log


def _assert_uri_reference(artifact: dict[str, str], path: str) -> None:
    """What the ``uri-reference`` format would check (its checker needs an optional package
    that is not installed), plus: the URI names ``path`` and nothing else (relative to
    ``%SRCROOT%``, the working directory, or else an absolute ``file://`` URI)."""
    uri = artifact["uri"]
    assert URI_CHARS.fullmatch(uri), uri
    assert all(re.fullmatch(r"%[0-9A-Fa-f]{2}", m) for m in re.findall(r"%.{0,2}", uri)), uri
    parts = urlsplit(uri)
    assert not parts.query and not parts.fragment, uri
    if "uriBaseId" in artifact:
        assert artifact["uriBaseId"] == "%SRCROOT%" and not parts.scheme, artifact
        assert Path.cwd() / unquote(uri) == Path(path).absolute(), (uri, path)
    else:
        assert parts.scheme == "file" and not parts.netloc, uri
        assert unquote(parts.path) == Path(path).as_posix(), (uri, path)


# --- the schema file itself --------------------------------------------------------------------


def test_sarif_schema_file_is_the_official_2_1_0_schema(sarif_schema: dict[str, Any]) -> None:
    assert sarif_schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert "2.1.0" in sarif_schema["title"]
    assert sarif_schema["properties"]["version"]["enum"] == ["2.1.0"]
    assert {"run", "result", "location", "reportingDescriptor"} <= set(
        sarif_schema["definitions"])
    jsonschema.Draft7Validator.check_schema(sarif_schema)


def test_sarif_validator_rejects_invalid_logs(tmp_path: Path,
                                             sarif_validator: jsonschema.protocols.Validator
                                             ) -> None:
    """The schema really constrains what these tests check (not a permissive stub)."""
    path = _write(tmp_path / "evil.pkl", os_system("sarif-invalid"))
    log = json.loads(_render(OutputFormat.SARIF, _scan(path)))
    assert sarif_validator.is_valid(log)
    mutations: list[Callable[[dict[str, Any]], object]] = [
        lambda d: d.update(version="2.0.0"),
        lambda d: d.pop("runs"),
        lambda d: d["runs"][0]["results"][0].update(level="fatal"),
        lambda d: d["runs"][0]["results"][0].update(message={}),
        lambda d: d["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]
        .update(byteOffset=-7),
        lambda d: d["runs"][0]["tool"]["driver"].pop("name"),
    ]
    for mutate in mutations:
        doc = copy.deepcopy(log)
        mutate(doc)
        assert not sarif_validator.is_valid(doc)


def test_every_output_format_has_a_renderer() -> None:
    assert set(RENDERERS) == set(OutputFormat)


# --- JSON -----------------------------------------------------------------------------------


def test_json_clean_scan(tmp_path: Path) -> None:
    path = _write(tmp_path / "clean.pkl", benign_state_dict())
    data = json.loads(_render(OutputFormat.JSON, _scan(path)))

    assert data["schema"] == "mlgate.scan/1"
    assert data["mlgate_version"] == mlgate.__version__
    assert data["targets"] == [str(path)]
    assert data["summary"] == {
        "artifacts": 1,
        "findings": 0,
        "by_severity": dict.fromkeys(SEVERITY_ORDER, 0),
        "max_severity": None,
        "fail_on": "HIGH",
        "passed": True,
        "complete": True,
    }
    assert list(data["summary"]["by_severity"]) == SEVERITY_ORDER
    assert data["artifacts"] == [
        {"artifact": str(path), "format": "pickle", "complete": True,
         "size": path.stat().st_size},
    ]
    assert data["findings"] == []


def test_json_summary_counts_and_sorted_findings(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    _write(folder / "a_custom.pkl", _custom_global_call("mycompany.tools", "fetch"))
    _write(folder / "b_two.pkl", _two_findings("json-two"))
    _write(folder / "c_evil.pkl", os_system("json-evil"))
    _write(folder / "d_clean.pkl", benign_state_dict())
    report = _scan(folder)
    data = json.loads(_render(OutputFormat.JSON, report))
    findings = data["findings"]
    summary = data["summary"]

    assert data["targets"] == [str(folder)]
    assert summary["findings"] == len(findings) == len(report.findings) == 4
    assert summary["artifacts"] == len(data["artifacts"]) == 4
    counts = {s: sum(f["severity"] == s for f in findings) for s in SEVERITY_ORDER}
    assert summary["by_severity"] == counts
    assert counts["CRITICAL"] == 2 and counts["MEDIUM"] == 2
    assert summary["max_severity"] == "CRITICAL"
    assert summary["fail_on"] == "HIGH" and summary["passed"] is False
    assert summary["complete"] is True

    # Sorted: by artifact, then most severe first, then by position.
    assert findings == sorted(findings, key=_sort_key)
    two = [f for f in findings if f["location"]["artifact"].endswith("b_two.pkl")]
    assert [f["severity"] for f in two] == ["CRITICAL", "MEDIUM"]
    assert two[0]["location"]["offset"] > two[1]["location"]["offset"]  # not file order

    for f in findings:
        rule = RULES_BY_ID[f["rule_id"]]
        assert f["rule_name"] == rule.name
        assert set(f) == {"rule_id", "rule_name", "severity", "message", "location", "evidence"}
        loc = f["location"]
        assert set(loc) == {"path", "members", "artifact", "offset", "opcode_index", "region"}
        assert loc["region"] is None  # model files have byte offsets; source code has regions
        assert loc["members"] == []
        assert loc["artifact"] == loc["path"]
        assert Path(loc["path"]).parent == folder
        assert isinstance(loc["offset"], int) and isinstance(loc["opcode_index"], int)
        assert 0 <= loc["offset"] < Path(loc["path"]).stat().st_size

    evil = next(f for f in findings if f["location"]["path"].endswith("c_evil.pkl"))
    assert evil["rule_id"] == "MLG101"
    assert shell("json-evil") in evil["evidence"]


def test_json_fail_on_threshold_sets_passed(tmp_path: Path) -> None:
    report = _scan(_write(tmp_path / "custom.pkl",
                          _custom_global_call("mycompany.tools", "fetch")))
    for fail_on, passed in ((Severity.LOW, False), (Severity.MEDIUM, False),
                            (Severity.HIGH, True), (Severity.CRITICAL, True)):
        summary = json.loads(_render(OutputFormat.JSON, report, fail_on))["summary"]
        assert summary["fail_on"] == fail_on.name
        assert summary["passed"] is passed
        assert summary["max_severity"] == "MEDIUM"


def test_json_archive_member_location(tmp_path: Path) -> None:
    ckpt = _evil_checkpoint(tmp_path / "ckpt.pt", "json-archive")
    data = json.loads(_render(OutputFormat.JSON, _scan(ckpt)))
    crit = [f for f in data["findings"] if f["severity"] == "CRITICAL"]
    assert crit, data["findings"]
    loc = crit[0]["location"]
    assert crit[0]["rule_id"] == "MLG101"
    assert loc["path"] == str(ckpt)
    assert len(loc["members"]) == 1 and loc["members"][0].endswith("/data.pkl")
    assert loc["artifact"] == f"{ckpt}!{loc['members'][0]}"
    assert isinstance(loc["offset"], int)
    artifacts = {a["artifact"]: a for a in data["artifacts"]}
    assert str(ckpt) in artifacts and loc["artifact"] in artifacts
    assert artifacts[loc["artifact"]]["format"] == "pickle"


# --- SARIF ----------------------------------------------------------------------------------


def _single_run(log: dict[str, Any]) -> dict[str, Any]:
    assert log["version"] == "2.1.0"
    assert len(log["runs"]) == 1
    run: dict[str, Any] = log["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "mlgate"
    assert driver["version"] == mlgate.__version__
    assert [r["id"] for r in driver["rules"]] == [r.id for r in ALL_RULES]
    return run


def test_sarif_clean_scan_is_valid(tmp_path: Path,
                                   sarif_validator: jsonschema.protocols.Validator) -> None:
    path = _write(tmp_path / "clean.pkl", benign_state_dict())
    log = _validate_sarif(sarif_validator, _render(OutputFormat.SARIF, _scan(path)))
    assert urlsplit(log["$schema"]).scheme == "https"
    run = _single_run(log)
    assert run["results"] == []  # present but empty: this log represents an actual scan


def test_sarif_critical_findings_are_valid(tmp_path: Path,
                                           sarif_validator: jsonschema.protocols.Validator
                                           ) -> None:
    folder = tmp_path / "models"
    _write(folder / "evil.pkl", os_system("sarif-evil"))
    _write(folder / "two.pkl", _two_findings("sarif-two"))
    report = _scan(folder)
    run = _single_run(_validate_sarif(sarif_validator, _render(OutputFormat.SARIF, report)))
    results = run["results"]
    rules = run["tool"]["driver"]["rules"]

    assert len(results) == len(report.findings) == 3
    for result, finding in zip(results, report.sorted_findings(), strict=True):
        assert result["ruleId"] == finding.rule_id
        assert rules[result["ruleIndex"]]["id"] == finding.rule_id
        assert result["properties"]["severity"] == finding.severity.name
        assert result["level"] == {"CRITICAL": "error", "HIGH": "error", "MEDIUM": "warning",
                                   "LOW": "note", "INFO": "note"}[finding.severity.name]
        assert result["message"]["text"] == finding.message
        (location,) = result["locations"]
        physical = location["physicalLocation"]
        _assert_uri_reference(physical["artifactLocation"], finding.location.path)
        assert physical["region"]["byteOffset"] == finding.location.offset
        assert "logicalLocations" not in location
    assert sum(r["level"] == "error" for r in results) == 2
    for rule in rules:
        score = float(rule["properties"]["security-severity"])
        assert 0.0 <= score <= 10.0
        assert rule["defaultConfiguration"]["level"] in {"error", "warning", "note"}


def test_sarif_archive_member_finding_is_valid(tmp_path: Path,
                                               sarif_validator: jsonschema.protocols.Validator
                                               ) -> None:
    ckpt = _evil_checkpoint(tmp_path / "ckpt.pt", "sarif-archive")
    report = _scan(ckpt)
    run = _single_run(_validate_sarif(sarif_validator, _render(OutputFormat.SARIF, report)))
    crit = [r for r in run["results"] if r["properties"]["severity"] == "CRITICAL"]
    assert crit, run["results"]
    (location,) = crit[0]["locations"]
    physical = location["physicalLocation"]
    _assert_uri_reference(physical["artifactLocation"], str(ckpt))
    # The offset is inside the member, not the archive: no byte region on the outer file.
    assert physical["region"] == {"startLine": 1}
    (logical,) = location["logicalLocations"]
    assert logical["fullyQualifiedName"].startswith(f"{ckpt}!")
    assert logical["fullyQualifiedName"].endswith("/data.pkl")
    assert shell("sarif-archive") in crit[0]["properties"]["evidence"]


def test_sarif_uri_of_awkward_file_name(tmp_path: Path,
                                        sarif_validator: jsonschema.protocols.Validator) -> None:
    path = _write(tmp_path / "my model #1 [v2]?.pkl", os_system("sarif-uri"))
    run = _single_run(_validate_sarif(sarif_validator,
                                      _render(OutputFormat.SARIF, _scan(path))))
    (result,) = run["results"]
    _assert_uri_reference(result["locations"][0]["physicalLocation"]["artifactLocation"],
                          str(path))


# --- text -----------------------------------------------------------------------------------


def test_text_groups_by_artifact_most_severe_first(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # short relative paths: see test_text_keeps_long_paths_whole
    folder = Path("models")
    custom = _write(folder / "a_custom.pkl", _custom_global_call("mycompany.tools", "fetch"))
    two = _write(folder / "b_two.pkl", _two_findings("text-two"))
    evil = _write(folder / "c_evil.pkl", os_system("text-evil"))
    _write(folder / "d_clean.pkl", benign_state_dict())
    text = _render(OutputFormat.TEXT, _scan(folder))
    lines = text.splitlines()
    assert not ANSI.search(text)

    headers = [line for line in lines if line and not line.startswith(" ")]
    # Artifacts with a CRITICAL finding first (by name), the MEDIUM-only artifact last;
    # the clean artifact has no group.
    assert headers[:3] == [str(two), str(evil), str(custom)]
    assert not any("d_clean.pkl" in h for h in headers)

    group = lines[lines.index(str(two)) + 1:lines.index(str(evil))]
    severities = [line.split()[0] for line in group if re.match(r"  [A-Z]+ +MLG\d+", line)]
    assert severities == ["CRITICAL", "MEDIUM"]
    assert any(shell("text-two") in line for line in group)  # evidence shown

    assert "4 artifacts scanned, 1 without findings; 4 findings (2 critical, 2 medium)" in text
    assert lines[-1] == "FAIL: 2 findings at or above HIGH"


def test_text_pass_and_fail_summary(tmp_path: Path) -> None:
    clean = _scan(_write(tmp_path / "clean.pkl", benign_state_dict()))
    clean_text = _render(OutputFormat.TEXT, clean)
    assert clean_text.splitlines() == [
        "1 artifact scanned, 1 without findings; 0 findings",
        "PASS: 0 findings at or above HIGH",
    ]

    custom = _scan(_write(tmp_path / "custom.pkl",
                          _custom_global_call("mycompany.tools", "fetch")))
    assert _render(OutputFormat.TEXT, custom, Severity.CRITICAL).splitlines()[-1] == (
        "PASS: 0 findings at or above CRITICAL")
    assert _render(OutputFormat.TEXT, custom, Severity.MEDIUM).splitlines()[-1] == (
        "FAIL: 1 finding at or above MEDIUM")


def test_text_archive_member_and_color(tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    ckpt = _evil_checkpoint(Path("ckpt.pt"), "text-archive")
    report = _scan(ckpt)
    plain = _render(OutputFormat.TEXT, report)
    member_header = next(line for line in plain.splitlines() if line.startswith(f"{ckpt}!"))
    assert member_header.endswith("/data.pkl")
    assert "CRITICAL MLG101" in " ".join(plain.split())
    assert plain.splitlines()[-1].startswith("FAIL: ")

    colored = _render(OutputFormat.TEXT, report, color=True)
    assert ANSI.search(colored)
    assert ANSI.sub("", colored) == plain


def test_text_keeps_long_paths_whole(tmp_path: Path) -> None:
    """BUG (src/mlgate/render/text.py, render_text): the rich Console is built with width=110
    and soft_wrap=False, which *enables* hard wrapping, so an artifact path (or evidence line)
    longer than 110 columns is split over two lines, in files and pipes too; the report can
    then no longer be grepped or copy-pasted for that path."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    path = _write(deep / "evil.pkl", os_system("text-long"))
    text = _render(OutputFormat.TEXT, _scan(path))
    assert str(path) in text.splitlines(), text


class _CountingName(str):
    """An artifact name that counts how often it is compared (cost model of the summary)."""

    comparisons = 0

    def __eq__(self, other: object) -> bool:
        _CountingName.comparisons += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_text_summary_of_many_flagged_artifacts_is_not_quadratic() -> None:
    """An archive of thousands of flagged members: counting the clean artifacts compared every
    artifact with every finding (20 000 of each: 15 minutes); it must stay linear."""
    names = [_CountingName(f"model.zip!m{i}.pkl") for i in range(1000)]
    findings = tuple(
        mlgate.Finding("MLG101", Severity.CRITICAL, "calls os.system", mlgate.Location(n))
        for n in names
    )
    artifacts = tuple(ArtifactResult(n, "pickle", True) for n in names)
    _CountingName.comparisons = 0
    text = _render(OutputFormat.TEXT, Report(("model.zip",), findings, artifacts))
    assert "1000 artifacts scanned, 0 without findings; 1000 findings" in text
    assert _CountingName.comparisons < 20 * len(names)
