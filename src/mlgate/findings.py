"""The findings model shared by every stage and every output format."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import IntEnum
from pathlib import Path

from mlgate.errors import ExitCode


class Severity(IntEnum):
    """How bad a finding is; ordered so that ``max()`` gives the worst."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, text: str) -> Severity:
        """Parse a case-insensitive severity name."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(s.name for s in cls)
            raise ValueError(f"unknown severity {text!r}; expected one of {names}") from None


@dataclass(frozen=True)
class Region:
    """A span of a text file (source code): 1-based lines and 1-based columns counted in
    Unicode code points, end inclusive of its line and exclusive of its column (SARIF 3.30)."""

    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.line}:{self.column}"


@dataclass(frozen=True)
class Location:
    """Where a finding is: a file, the chain of members inside it, and a position.

    ``members`` names nested containers from the outside in, e.g.
    ``("model.zip", "archive/data.pkl")`` is ``model.zip!archive/data.pkl`` inside ``path``.
    Binary artifacts give a byte ``offset``; source code gives a line and column ``region``
    (inside the innermost member, e.g. a notebook cell).
    """

    path: str
    members: tuple[str, ...] = ()
    offset: int | None = None
    opcode_index: int | None = None
    region: Region | None = None

    @property
    def artifact(self) -> str:
        """The file or archive member the finding is in, ``outer!inner`` style."""
        return "!".join((self.path, *self.members))

    def __str__(self) -> str:
        text = self.artifact
        if self.offset is not None:
            text += f"@{self.offset}"
        if self.opcode_index is not None:
            text += f" (opcode #{self.opcode_index})"
        if self.region is not None:
            text += f":{self.region}"
        return text


@dataclass(frozen=True)
class Finding:
    """One observation about an artifact, with the evidence a reviewer needs."""

    rule_id: str
    severity: Severity
    message: str
    location: Location
    evidence: str = ""


@dataclass(frozen=True)
class ArtifactResult:
    """What the scanner made of one artifact (a file or an archive member).

    ``complete`` is False when any part of the artifact could not be analysed; such an
    artifact always carries a finding that says why, so it is never reported clean.
    """

    artifact: str
    format: str
    complete: bool
    size: int | None = None


@dataclass(frozen=True)
class Report:
    """The result of scanning one or more paths."""

    targets: tuple[str, ...]
    findings: tuple[Finding, ...]
    artifacts: tuple[ArtifactResult, ...] = field(default=())

    @property
    def max_severity(self) -> Severity | None:
        """The worst severity found, or None when there are no findings."""
        return max((f.severity for f in self.findings), default=None)

    @property
    def complete(self) -> bool:
        """True when every artifact was fully analysed; False when anything was cut short,
        unreadable or not understood (each such artifact carries a finding saying why)."""
        return all(a.complete for a in self.artifacts)

    def exit_code(self, fail_on: Severity) -> ExitCode:
        """The verdict every consumer shares (CLI, JSON ``passed``, SARIF): ERROR when the
        analysis is incomplete, whatever else was found (fail closed: not known to be safe),
        UNSAFE when a finding is at or above ``fail_on``, CLEAN otherwise."""
        if not self.complete:
            return ExitCode.ERROR
        return ExitCode.UNSAFE if self.at_or_above(fail_on) else ExitCode.CLEAN

    def at_or_above(self, threshold: Severity) -> tuple[Finding, ...]:
        """Findings whose severity is ``threshold`` or worse."""
        return tuple(f for f in self.findings if f.severity >= threshold)

    def sorted_findings(self) -> list[Finding]:
        """Findings grouped by artifact, most severe first within each."""
        return sorted(self.findings, key=_sort_key)

    @classmethod
    def merge(cls, reports: Iterable[Report]) -> Report:
        """Combine several reports into one."""
        items = list(reports)
        return cls(
            targets=tuple(t for r in items for t in r.targets),
            findings=tuple(f for r in items for f in r.findings),
            artifacts=tuple(a for r in items for a in r.artifacts),
        )


def _sort_key(f: Finding) -> tuple[str, int, int, int, int, int]:
    region = f.location.region
    return (
        f.location.artifact,
        -int(f.severity),
        f.location.offset if f.location.offset is not None else -1,
        f.location.opcode_index if f.location.opcode_index is not None else -1,
        region.line if region is not None else -1,
        region.column if region is not None else -1,
    )


def relative_finding(finding: Finding, root: Path) -> Finding:
    """The finding with its path relative to the model at ``root``, naming no host paths."""
    base = root if root.is_dir() else root.parent
    try:
        rel = Path(finding.location.path).relative_to(base).as_posix()
    except ValueError:
        return finding
    return replace(finding, location=replace(finding.location, path=rel))
