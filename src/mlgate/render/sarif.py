"""SARIF 2.1.0 output for code-scanning dashboards (GitHub, GitLab, Azure DevOps).

Shaped so that GitHub code scanning accepts the log as is (issue 15): every result has a
region (``startLine`` 1 on a binary artifact, plus its ``byteOffset``), a stable
``partialFingerprints`` entry, and a URI relative to ``%SRCROOT%`` (the working directory at
render time, the checkout root in CI); every rule carries help text and a ``helpUri``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import quote

from mlgate import __version__
from mlgate.findings import Finding, Location, Report, Severity
from mlgate.render.escape import json_safe
from mlgate.render.rules_doc import REPOSITORY_URL, rule_help_markdown, rule_help_text, rule_uri
from mlgate.scan.rules import ALL_RULES, Rule

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SRCROOT = "%SRCROOT%"
FINGERPRINT_KEY = "mlgate/v1"
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


def render_sarif(report: Report, base: Path | None = None) -> str:
    """The report as a SARIF 2.1.0 log with one run; URIs relative to ``base`` (default: the
    working directory) as ``%SRCROOT%``."""
    paths = _Paths(Path.cwd() if base is None else base, report.targets)
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
                        "informationUri": REPOSITORY_URL,
                        "rules": [_rule(r) for r in ALL_RULES],
                    }
                },
                "invocations": [_invocation(report, paths)],
                "originalUriBaseIds": {SRCROOT: {"uri": paths.base_uri}},
                # Regions count columns as Python does: in characters, not UTF-16 units.
                "columnKind": "unicodeCodePoints",
                "results": [_result(f, index, paths) for f in report.sorted_findings()],
            }
        ],
    }
    return json.dumps(json_safe(log), indent=2)


class _Paths:
    """Artifact paths as SARIF artifact locations, and as the machine-independent names that
    fingerprints are derived from (never an absolute path: moving the checkout or the scanned
    folder must not turn every result into a new alert)."""

    def __init__(self, base: Path, targets: tuple[str, ...]) -> None:
        self.base = _absolute(base, Path("/"))
        self.targets = tuple(_absolute(Path(t), self.base) for t in targets)
        self.base_uri = "file://" + _quote(self.base.as_posix()).rstrip("/") + "/"

    def location(self, path: str) -> dict[str, str]:
        """Relative to ``%SRCROOT%`` when inside it; otherwise an absolute ``file://`` URI,
        which a dashboard shows but cannot link to the repository."""
        full = _absolute(Path(path), self.base)
        if full.is_relative_to(self.base):
            return {"uri": _quote(full.relative_to(self.base).as_posix()), "uriBaseId": SRCROOT}
        return {"uri": "file://" + _quote(full.as_posix())}

    def stable_name(self, path: str) -> str:
        """The path relative to ``%SRCROOT%``; outside it, relative to the parent of the scan
        target holding it (so the target's own name stays, wherever it was moved)."""
        full = _absolute(Path(path), self.base)
        for root in (self.base, *(t.parent for t in self.targets if full.is_relative_to(t))):
            if full.is_relative_to(root):
                return full.relative_to(root).as_posix()
        return full.name


def _absolute(path: Path, base: Path) -> Path:
    # Lexical normalisation only: resolving symlinks would make the name depend on the machine.
    return Path(os.path.normpath(base / path))


def _quote(path: str) -> str:
    # The name's own bytes, percent-encoded (RFC 3986): a name that is not UTF-8 (carried as
    # surrogate escapes) still designates the very file.
    return quote(PurePath(path).as_posix().encode("utf-8", "surrogateescape"), safe="/:")


def _invocation(report: Report, paths: _Paths) -> dict[str, Any]:
    """SARIF 3.20: ``executionSuccessful`` is false when the analysis is incomplete, with one
    error notification per artifact not fully analysed, so a dashboard never shows a partial
    scan as a clean one (the findings say why each one was cut short)."""
    notes = [
        {
            "level": "error",
            "message": {"text": f"not fully analysed ({a.format}): not known to be safe"},
            "locations": [{"physicalLocation": {"artifactLocation": paths.location(a.artifact)}}],
        }
        for a in report.artifacts
        if not a.complete
    ]
    invocation: dict[str, Any] = {"executionSuccessful": report.complete}
    if notes:
        invocation["toolExecutionNotifications"] = notes
    return invocation


def _rule(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": rule.name,
        "shortDescription": {"text": rule.name.replace("-", " ")},
        "fullDescription": {"text": rule.description},
        "help": {"text": rule_help_text(rule), "markdown": rule_help_markdown(rule)},
        "helpUri": rule_uri(rule),
        "defaultConfiguration": {"level": _LEVEL[rule.severity]},
        "properties": {
            "security-severity": _SCORE[rule.severity],
            "tags": ["security", f"external/mlgate/{rule.name}"],
        },
    }


def _result(f: Finding, index: dict[str, int], paths: _Paths) -> dict[str, Any]:
    loc = f.location
    physical = {"artifactLocation": paths.location(loc.path), "region": _region(loc)}
    location: dict[str, Any] = {"physicalLocation": physical}
    if loc.members:
        location["logicalLocations"] = [{"fullyQualifiedName": loc.artifact, "kind": "member"}]
    fingerprint = _fingerprint(f, paths.stable_name(loc.path))
    result: dict[str, Any] = {
        "ruleId": f.rule_id,
        "level": _LEVEL[f.severity],
        "message": {"text": f.message},
        "locations": [location],
        # primaryLocationLineHash is set too: without it, GitHub's upload action computes one
        # by reading the artifact as text lines, which for a multi-gigabyte binary model is
        # slow and meaningless.
        "partialFingerprints": {
            FINGERPRINT_KEY: fingerprint,
            "primaryLocationLineHash": fingerprint,
        },
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


def _region(loc: Location) -> dict[str, int]:
    """GitHub requires a ``startLine``: 1 for a binary artifact. A position inside a member
    (archive entry, notebook cell) is not one in the file on disk, so it is not given as a
    region of the outer file; the member is named as a logical location instead."""
    if loc.members:
        return {"startLine": 1}
    if loc.region is not None:
        return {
            "startLine": loc.region.line,
            "startColumn": loc.region.column,
            "endLine": loc.region.end_line,
            "endColumn": loc.region.end_column,
        }
    if loc.offset is not None:
        return {"startLine": 1, "byteOffset": loc.offset}
    return {"startLine": 1}


def _fingerprint(f: Finding, name: str) -> str:
    """Rule, machine-independent artifact name, position (members, offset, opcode, region) and
    a digest of the evidence: identical across runs and machines, never a timestamp."""
    loc = f.location
    region = loc.region
    parts = [
        f.rule_id,
        name,
        *loc.members,
        repr((loc.offset, loc.opcode_index, None if region is None else str(region))),
        hashlib.sha256(f.evidence.encode("utf-8", "surrogateescape")).hexdigest(),
    ]
    # Length-prefixed parts: no two different tuples of names join to the same text.
    text = "".join(f"{len(p)}:{p}" for p in parts)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()
