"""State shared by the handlers of one scan: policy, limits, findings and recursion."""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from mlgate.findings import ArtifactResult, Finding, Location, Severity
from mlgate.scan.limits import Limits, ResourceLimitError
from mlgate.scan.pickle.policy import Policy
from mlgate.scan.rules import LIMIT_EXCEEDED, UNSUPPORTED, Rule
from mlgate.scan.source import Source

if TYPE_CHECKING:
    from mlgate.scan.pickle.program import Program

# (context, source) -> format name; set by the engine to break the import cycle with handlers.
Dispatcher = Callable[["ScanContext", Source], str]
# Receives every artifact's emulated pickle programs (used by ``mlgate explain``).
ProgramObserver = Callable[[Source, list["Program"]], None]


@dataclass(frozen=True)
class DeferredFile:
    """A top-level file whose results go where it was met: the findings before index
    ``findings_at``, and the placeholder artifact at ``artifact_at`` that they replace."""

    path: Path
    shown: Path
    findings_at: int
    artifact_at: int


class Helper(Protocol):
    """A resource a handler keeps for the rest of the scan (a reader process)."""

    def close(self) -> None: ...


def _close_all(helpers: dict[str, Helper]) -> None:
    for helper in helpers.values():
        helper.close()
    helpers.clear()


@dataclass
class ScanContext:
    """Collects findings and artifact results; handlers recurse through :meth:`scan`."""

    policy: Policy
    limits: Limits
    dispatch: Dispatcher
    roots: tuple[Path, ...] = ()
    findings: list[Finding] = field(default_factory=list)
    artifacts: list[ArtifactResult] = field(default_factory=list)
    depth: int = 0
    deadline: float | None = None  # the current top-level file's, within the scan's
    scan_deadline: float | None = None
    members: int = 0  # archive members met in the current top-level file
    inflated: int = 0  # bytes decompressed for the current top-level file
    scan_inflated: int = 0
    observer: ProgramObserver | None = None
    helpers: dict[str, Helper] = field(default_factory=dict)
    # Top-level files left to the worker processes of `scan -j N` (engine, scan.parallel).
    deferred: list[DeferredFile] | None = None
    _incomplete: set[str] = field(default_factory=set)
    _chained: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        # Helper processes end with the scan that started them (or at interpreter exit).
        self._finalizer = weakref.finalize(self, _close_all, self.helpers)

    def begin_file(self, claimed: frozenset[str]) -> None:
        """Collect the results of one top-level file on their own, as a scan that already
        analysed the chained artifacts ``claimed`` (a worker of `scan -j N`)."""
        self.findings, self.artifacts = [], []
        self._incomplete, self._chained = set(), set(claimed)

    @property
    def chained(self) -> frozenset[str]:
        """The chained artifacts analysed so far (each is analysed at its first mention)."""
        return frozenset(self._chained)

    def close(self) -> None:
        """End the helper processes now (the scan is over), not whenever ctx is collected."""
        self._finalizer()

    def add(
        self,
        rule: Rule,
        location: Location,
        message: str,
        evidence: str = "",
        severity: Severity | None = None,
    ) -> Finding:
        """Record a finding for ``rule`` (default severity unless ``severity`` is given)."""
        sev = rule.severity if severity is None else severity
        finding = Finding(rule.id, sev, message, location, evidence)
        self.findings.append(finding)
        return finding

    def incomplete(self, source: Source, reason: str, rule: Rule = UNSUPPORTED) -> None:
        """Mark ``source`` as not fully analysed, with a finding that says why (fail closed)."""
        self.incomplete_at(source.location, reason, rule)

    def incomplete_at(self, location: Location, reason: str, rule: Rule = UNSUPPORTED) -> None:
        """Mark the artifact holding ``location`` as not fully analysed (see :meth:`incomplete`)."""
        self._incomplete.add(location.artifact)
        self.add(rule, location, reason)

    def is_incomplete(self, source: Source) -> bool:
        return source.location.artifact in self._incomplete

    def scan(self, source: Source) -> Severity | None:
        """Scan a nested artifact; returns the worst severity found in it."""
        if self.depth >= self.limits.max_depth:
            self.incomplete(
                source,
                f"nesting deeper than {self.limits.max_depth} levels; not analysed",
                LIMIT_EXCEEDED,
            )
            # Listed here, not left to whoever builds the report: an artifact that was never
            # read is part of the result, and it is incomplete.
            self._record(source, "unknown")
            return LIMIT_EXCEEDED.severity
        mark = len(self.findings)
        self.depth += 1
        try:
            fmt = self.dispatch(self, source)
        finally:
            self.depth -= 1
        self._record(source, fmt)
        return max((f.severity for f in self.findings[mark:]), default=None)

    def _record(self, source: Source, fmt: str) -> None:
        self.artifacts.append(
            ArtifactResult(
                source.location.artifact, fmt, not self.is_incomplete(source), source.size
            )
        )

    def start_deadline(self) -> None:
        """Open the budget of a new top-level file (the scan's budget opens with the first)."""
        now = time.monotonic()
        if self.scan_deadline is None:
            self.scan_deadline = now + self.limits.scan_seconds
        self.deadline = min(now + self.limits.file_seconds, self.scan_deadline)
        self.members = 0
        self.inflated = 0

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    def check_budget(self) -> None:
        """Raise ResourceLimitError once the file's or the scan's budget is spent.

        Every loop that can run long (archive members, CRC passes, extraction, template
        folding) calls this, so a file ends by its deadline whatever it is made of.
        """
        if self.out_of_time():
            raise ResourceLimitError("time budget for this file exhausted")
        limits = self.limits
        if self.inflated > limits.max_file_decompressed_bytes:
            raise ResourceLimitError(
                f"more than {limits.max_file_decompressed_bytes} bytes decompressed from this "
                "file (decompression bomb?)"
            )
        if self.scan_inflated > limits.max_scan_decompressed_bytes:
            raise ResourceLimitError(
                f"more than {limits.max_scan_decompressed_bytes} bytes decompressed in this scan"
            )

    def count_member(self) -> None:
        """Charge one archive member to the file's budget."""
        self.members += 1
        if self.members > self.limits.max_archive_members:
            raise ResourceLimitError(
                f"more than {self.limits.max_archive_members} archive members in this file"
            )
        self.check_budget()

    def count_inflated(self, n: int) -> None:
        """Charge ``n`` decompressed bytes (the meter of every bounded stream)."""
        self.inflated += n
        self.scan_inflated += n
        self.check_budget()

    def claim_chained(self, key: str) -> bool:
        """True the first time a chained artifact is visited (stops load cycles)."""
        if key in self._chained:
            return False
        self._chained.add(key)
        return True

    def at(self, source: Source, offset: int | None = None, index: int | None = None) -> Location:
        """A location inside ``source``."""
        return replace(source.location, offset=offset, opcode_index=index)
