"""Builders of real model files (made by the real libraries) and report assertions."""

from __future__ import annotations

from pathlib import Path

import mlgate
from mlgate import Report, Severity


class Reduce:
    """Pickles as ``func(*args)``: builds malicious fixtures, which are never loaded."""

    def __init__(self, func: object, *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.func, self.args


def scan(path: Path | str) -> Report:
    """Scan with the default configuration (no user config file is discovered in tmp)."""
    return mlgate.scan(path, config=mlgate.Config())


def describe(report: Report) -> str:
    return "\n".join(
        f"{f.severity.name} {f.rule_id} {f.location} {f.message} | {f.evidence[:200]}"
        for f in report.sorted_findings()
    )


def assert_benign(report: Report) -> None:
    """No finding at HIGH or above, and every artifact fully analysed."""
    bad = report.at_or_above(Severity.HIGH)
    assert not bad, describe(report)
    incomplete = [a.artifact for a in report.artifacts if not a.complete]
    assert not incomplete, incomplete


def assert_caught(report: Report, rule_id: str | None = None,
                  at_least: Severity = Severity.HIGH) -> None:
    """Some finding at ``at_least`` or worse (with ``rule_id`` when given)."""
    hits = [f for f in report.at_or_above(at_least) if rule_id is None or f.rule_id == rule_id]
    assert hits, f"nothing caught at {at_least.name} (rule {rule_id}):\n{describe(report)}"


def finding_with(report: Report, rule_id: str, text: str,
                 at_least: Severity = Severity.HIGH) -> bool:
    """Some finding of ``rule_id`` at ``at_least`` or worse whose message contains ``text``."""
    return any(f.rule_id == rule_id and text in f.message for f in report.at_or_above(at_least))


def rules_found(report: Report, at_least: Severity = Severity.INFO) -> set[str]:
    return {f.rule_id for f in report.at_or_above(at_least)}


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def proto_field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field encoded by hand (for messages the protobuf library
    cannot build: missing classes, or nesting deeper than it allows)."""
    length, out = len(payload), bytearray()
    while True:
        out.append((length & 0x7F) | (0x80 if length > 0x7F else 0))
        length >>= 7
        if not length:
            break
    return bytes([number << 3 | 2]) + bytes(out) + payload
