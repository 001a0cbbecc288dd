"""SARIF 2.1.0 output for code-scanning dashboards (GitHub, GitLab, Azure DevOps)."""

from __future__ import annotations

import json
from pathlib import PurePath
from typing import Any
from urllib.parse import quote

from mlgate import __version__
from mlgate.findings import Finding, Report, Severity
from mlgate.render.escape import json_safe
from mlgate.scan.rules import ALL_RULES

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
# GitHub ranks security results by this 0-10 score.
_SCORE = {
    Severity.CRITICAL: "9.8",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.0",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}


def render_sarif(report: Report) -> str:
    """The report as a SARIF 2.1.0 log with one run."""
    index = {r.id: i for i, r in enumerate(ALL_RULES)}
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "mlgate",
                        "version": __version__,
                        "informationUri": "https://github.com/mlgate/mlgate",
                        "rules": [_rule(r) for r in ALL_RULES],
                    }
                },
                "invocations": [_invocation(report)],
                # Regions count columns as Python does: in characters, not UTF-16 units.
                "columnKind": "unicodeCodePoints",
                "results": [_result(f, index) for f in report.sorted_findings()],
            }
        ],
    }
    return json.dumps(json_safe(log), indent=2)


def _invocation(report: Report) -> dict[str, Any]:
    """SARIF 3.20: ``executionSuccessful`` is false when the analysis is incomplete, with one
    error notification per artifact not fully analysed, so a dashboard never shows a partial
    scan as a clean one (the findings say why each one was cut short)."""
    notes = [
        {
            "level": "error",
            "message": {"text": f"not fully analysed ({a.format}): not known to be safe"},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": _uri(a.artifact)}}}],
        }
        for a in report.artifacts
        if not a.complete
    ]
    invocation: dict[str, Any] = {"executionSuccessful": report.complete}
    if notes:
        invocation["toolExecutionNotifications"] = notes
    return invocation


def _rule(rule: Any) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": rule.name,
        "shortDescription": {"text": rule.name.replace("-", " ")},
        "fullDescription": {"text": rule.description},
        "defaultConfiguration": {"level": _LEVEL[rule.severity]},
        "properties": {"security-severity": _SCORE[rule.severity], "tags": ["security"]},
    }


def _result(f: Finding, index: dict[str, int]) -> dict[str, Any]:
    loc = f.location
    physical: dict[str, Any] = {"artifactLocation": {"uri": _uri(loc.path)}}
    # A position inside a member (archive entry, notebook cell) is not one in the file on
    # disk: no region on the outer file; the member is named as a logical location instead.
    if loc.offset is not None and not loc.members:
        physical["region"] = {"byteOffset": loc.offset}
    if loc.region is not None and not loc.members:
        physical["region"] = {
            "startLine": loc.region.line,
            "startColumn": loc.region.column,
            "endLine": loc.region.end_line,
            "endColumn": loc.region.end_column,
        }
    location: dict[str, Any] = {"physicalLocation": physical}
    if loc.members:
        location["logicalLocations"] = [{"fullyQualifiedName": loc.artifact, "kind": "member"}]
    result: dict[str, Any] = {
        "ruleId": f.rule_id,
        "level": _LEVEL[f.severity],
        "message": {"text": f.message},
        "locations": [location],
        "properties": {
            "severity": f.severity.name,
            "evidence": f.evidence,
            "offset": loc.offset,
            "opcodeIndex": loc.opcode_index,
            "line": loc.region.line if loc.region is not None else None,
            "column": loc.region.column if loc.region is not None else None,
        },
    }
    if f.rule_id in index:
        result["ruleIndex"] = index[f.rule_id]
    return result


def _uri(path: str) -> str:
    # The name's own bytes, percent-encoded (RFC 3986): a name that is not UTF-8 (carried as
    # surrogate escapes) still designates the very file.
    return quote(PurePath(path).as_posix().encode("utf-8", "surrogateescape"), safe="/:")
