"""Dynamic test of a version (issue 13): its model files loaded by their real loaders in the
sandbox (:func:`mlgate.sandbox.service.run_sandbox`) after the static scan.

When (policy ``dynamic-test``):

- ``off`` (default): never.
- ``on-findings``: when the static scan reported any finding of LOW severity or above. A
  static finding may be a false positive; what the file does once loaded is the evidence a
  reviewer needs to decide either way. INFO findings do not count: they are observations
  ("valid safetensors: no code possible") that nearly every version has, which would make
  ``on-findings`` the same as ``always``.
- ``always``: every version.

A version the static scan already auto-rejects is not loaded: it is rejected anyway, and
running a payload known to be hostile costs minutes for no decision.

Which files: each one :func:`mlgate.sandbox.choice.choose_loader` names a loader for (pickle,
PyTorch, TorchScript, joblib, NumPy, Keras, ONNX, GGUF); the others (safetensors, configs...)
are listed in the stored report as not loaded, with why, never silently left out.

What it decides, in the same transaction as the static report:

- a CRITICAL finding (the payload started a process, executed code, reached for the network,
  wrote outside its scratch space or tried to escape) auto-rejects the version, whatever
  ``auto-reject-at`` says: it is an action observed, not a suspicion. The reason names the
  dynamic test, the file and the action.
- a load not fully observed (failed, timed out, records lost) is handled as an incomplete
  static scan: auto-rejected when ``auto-reject-at`` is set (a payload that kills its loader or
  sleeps past the clock must not pass by hiding), otherwise risk ``incomplete`` for review.
- a sandbox that cannot run (no bubblewrap, no strace, no user namespaces) raises
  :class:`~mlgate.sandbox.errors.SandboxUnavailableError` before anything is recorded: the
  version stays quarantined, where it cannot be approved, until the host is fixed and the
  version scanned again. A policy asking for the dynamic test is never skipped in silence.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from mlgate.findings import Finding, Report, Severity, relative_finding
from mlgate.registry import schema as t
from mlgate.registry.context import RegistryContext
from mlgate.registry.records import FileRecord, Version
from mlgate.registry.roles import Action
from mlgate.render.escape import inert
from mlgate.sandbox.errors import SandboxUnavailableError

if TYPE_CHECKING:
    from mlgate.registry.intake import StaticScan
    from mlgate.registry.policy import RegistryPolicy

# A reject reason quotes at most this much of the payload's call (attacker-chosen text).
_MAX_REASON_ACTION = 200


@dataclass(frozen=True)
class DynamicTest:
    """The stored ``report`` (JSON) and what it means for the version."""

    report: dict[str, Any]
    worst: Severity | None
    complete: bool
    reject: str | None

    def combine(self, static: StaticScan) -> StaticScan:
        """The version's outcome once both tests are in: the worse risk, the first reason."""
        risk = static.risk
        if not self.complete:
            risk = "incomplete"
        elif self.worst is not None and risk != "incomplete":
            current = None if risk == "none" else Severity[risk.upper()]
            if current is None or self.worst > current:
                risk = self.worst.name.lower()
        return replace(static, risk=risk, reject=static.reject or self.reject)

    def summary(self) -> dict[str, Any]:
        """What the audit entry records."""
        return {
            "trigger": self.report["trigger"],
            "complete": self.complete,
            "findings": len(self.report["findings"]),
            "worst": self.worst.name if self.worst else None,
        }


def record_dynamic(conn: Connection, version_id: int, test: DynamicTest) -> None:
    """Store the dynamic report in the column reserved for it."""
    conn.execute(
        t.versions.update()
        .where(t.versions.c.id == version_id)
        .values(dynamic_report=json.dumps(test.report))
    )


def trigger(policy: RegistryPolicy, static: StaticScan) -> str | None:
    """Why the version is loaded in the sandbox under ``policy`` (None: it is not)."""
    if policy.dynamic_test == "off" or static.reject is not None:
        return None
    severities = {f["severity"] for f in static.report["findings"]}
    if policy.dynamic_test == "on-findings" and not severities - {Severity.INFO.name}:
        return None
    return policy.dynamic_test


class DynamicTester:
    """Runs the dynamic test the policy asks for on a version of the registry."""

    def __init__(self, ctx: RegistryContext) -> None:
        self.ctx = ctx

    def evaluate(self, version: Version, static: StaticScan) -> DynamicTest | None:
        """The dynamic test of ``version`` after ``static`` (None: the policy does not ask).
        A sandbox that cannot run is audited and raised, naming the version left as it was."""
        why = trigger(self.ctx.policy, static)
        if why is None:
            return None
        view = self.ctx.view(version.content_digest, version.files)
        try:
            return run_dynamic(view, version.files, self.ctx.policy, why)
        except SandboxUnavailableError as e:
            cause = str(e).split("\n", 1)[0]
            with self.ctx.write(Action.SCAN) as conn:
                details = {"trigger": why, "not run": cause}
                self.ctx.append_audit(conn, "dynamic-test", version.ref, details)
            raise SandboxUnavailableError(
                f"{version.ref} is left {version.state.value}: policy dynamic-test = {why} "
                f"needs the sandbox, and {cause}",
                remedy=f"{e.remedy}; then `mlgate rescan {version.ref}`",
            ) from e


def run_dynamic(
    view: Path, files: tuple[FileRecord, ...], policy: RegistryPolicy, why: str
) -> DynamicTest:
    """Load each file of ``view`` that has a sandbox loader; judge the whole version."""
    entries: list[dict[str, Any]] = []
    findings: list[Finding] = []
    for f in files:
        entry, found = _load_one(view, f, policy)
        entries.append(entry)
        findings += found
    complete = all(e["complete"] for e in entries)
    worst = max((f.severity for f in findings), default=None)
    return DynamicTest(
        report={
            "trigger": why,
            "complete": complete,
            "files": entries,
            "findings": _findings_json(findings),
            "artifacts": [
                {"artifact": e["path"], "complete": e["complete"]} for e in entries if e["loader"]
            ],
        },
        worst=worst,
        complete=complete,
        reject=_reject(findings, complete, policy),
    )


def _load_one(
    view: Path, f: FileRecord, policy: RegistryPolicy
) -> tuple[dict[str, Any], list[Finding]]:
    """One file's entry in the report and its findings (paths relative to the model)."""
    from mlgate.sandbox.choice import choose_loader  # noqa: PLC0415  (sandbox loads on use)
    from mlgate.sandbox.limits import GIB, SandboxLimits  # noqa: PLC0415
    from mlgate.sandbox.service import SandboxOptions, run_sandbox  # noqa: PLC0415

    path = view / f.path
    try:
        loader = choose_loader(path)
    except SandboxUnavailableError:
        why = f"no sandbox loader for {f.format} files: not loaded"
        return {"path": f.path, "loader": None, "complete": True, "skipped": why}, []
    timeout = policy.dynamic_timeout
    limits = SandboxLimits(
        wall_seconds=float(timeout), cpu_seconds=timeout, memory_bytes=policy.dynamic_memory * GIB
    )
    run = run_sandbox(path, SandboxOptions(loader=loader, limits=limits))
    found = [relative_finding(g, view) for g in run.report.findings]
    entry = {
        "path": f.path,
        "loader": loader,
        "format": f.format,
        "complete": run.report.complete,
        "seconds": round(run.seconds, 2),
        "events": dict(sorted(Counter(e.category for e in run.events).items())),
    }
    return entry, found


def _findings_json(findings: list[Finding]) -> list[dict[str, Any]]:
    """The findings in the static report's JSON shape, most severe first (one renderer: a
    reviewer, ``models show`` and the BOM read both reports the same way)."""
    from mlgate.render.json import report_to_dict  # noqa: PLC0415

    data = report_to_dict(Report((), tuple(findings), ()), Severity.CRITICAL)
    return list(data["findings"])


def _reject(findings: list[Finding], complete: bool, policy: RegistryPolicy) -> str | None:
    critical = [f for f in findings if f.severity is Severity.CRITICAL]
    if critical:
        first = critical[0]
        # The evidence is the payload's own call (a command line from the trace): quoted
        # inert and bounded, so a reason can neither forge lines nor grow without limit.
        call = inert(first.evidence.split("\n", 1)[0])[:_MAX_REASON_ACTION]
        more = f" (and {len(critical) - 1} more)" if len(critical) > 1 else ""
        return (
            f"auto-rejected by the dynamic test: loading {first.location.path} "
            f"{first.rule_id} {first.message}" + (f": {call}" if call else "") + more
        )
    if not complete and policy.auto_reject_at is not None:
        return "auto-rejected: the dynamic test could not observe the whole load of every file"
    return None
