"""JSON output. The schema (``mlgate.scan/1``) is stable; see docs/json-schema.md."""

from __future__ import annotations

import json
from typing import Any

from mlgate import __version__
from mlgate.errors import ExitCode
from mlgate.findings import Finding, Region, Report, Severity
from mlgate.render.escape import json_safe
from mlgate.scan.rules import RULES_BY_ID

SCHEMA = "mlgate.scan/1"


def report_to_dict(report: Report, fail_on: Severity) -> dict[str, Any]:
    """The report as plain JSON-compatible data."""
    worst = report.max_severity
    counts = {s.name: 0 for s in reversed(Severity)}
    for f in report.findings:
        counts[f.severity.name] += 1
    return {
        "schema": SCHEMA,
        "mlgate_version": __version__,
        "targets": list(report.targets),
        "complete": report.complete,
        "exit_code": int(report.exit_code(fail_on)),
        "summary": {
            "artifacts": len(report.artifacts),
            "findings": len(report.findings),
            "by_severity": counts,
            "max_severity": worst.name if worst is not None else None,
            "fail_on": fail_on.name,
            "passed": report.exit_code(fail_on) is ExitCode.CLEAN,
            "complete": report.complete,
        },
        "artifacts": [
            {"artifact": a.artifact, "format": a.format, "complete": a.complete, "size": a.size}
            for a in report.artifacts
        ],
        "findings": [_finding(f) for f in report.sorted_findings()],
    }


def _finding(f: Finding) -> dict[str, Any]:
    rule = RULES_BY_ID.get(f.rule_id)
    loc = f.location
    return {
        "rule_id": f.rule_id,
        "rule_name": rule.name if rule else None,
        "severity": f.severity.name,
        "message": f.message,
        "location": {
            "path": loc.path,
            "members": list(loc.members),
            "artifact": loc.artifact,
            "offset": loc.offset,
            "opcode_index": loc.opcode_index,
            "region": _region(loc.region),
        },
        "evidence": f.evidence,
    }


def _region(region: Region | None) -> dict[str, int] | None:
    if region is None:
        return None
    return {
        "line": region.line,
        "column": region.column,
        "end_line": region.end_line,
        "end_column": region.end_column,
    }


def render_json(report: Report, fail_on: Severity) -> str:
    return json.dumps(json_safe(report_to_dict(report, fail_on)), indent=2)
