"""Rescan (retro-hunt): scan a stored version again with today's rules and say whether its
verdict changed.

A version's report is evidence from the rules of the day it was scanned. After a rule
update, ``mlgate rescan --all`` runs every stored version through the scanner again as
background jobs keyed by the rules version (:func:`rules_version`): the same rules never
rescan the same version twice. The new report replaces the stored one (audited, before and
after); a version still awaiting review is scanned through the usual path (auto-reject
included). A served version that now fails at or above ``auto_reject_at`` is, under the
policy ``quarantine_on_rescan_fail``, withdrawn to quarantine by ``mlgate-policy``: no longer
served, its aliases fall back, and a reviewer decides again (quarantine, unlike revocation,
is not final).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from mlgate import __version__
from mlgate.registry import schema as t
from mlgate.registry import store
from mlgate.registry.aliases import Aliases
from mlgate.registry.context import RegistryContext
from mlgate.registry.intake import POLICY_ACTOR, Intake, StaticScan
from mlgate.registry.jobstate import Submitted, submit_in
from mlgate.registry.lifecycle import SERVED, State
from mlgate.registry.records import Version
from mlgate.registry.roles import Action


def rules_version() -> str:
    """This mlgate's scanner version and a digest of its rule catalogue (ids, severities)."""
    from mlgate.scan.rules import ALL_RULES  # noqa: PLC0415  (scan engine loads lazily)

    rules = sorted(ALL_RULES, key=lambda r: r.id)
    catalogue = "\n".join(f"{r.id}:{r.severity.name}" for r in rules)
    return f"{__version__}+{hashlib.sha256(catalogue.encode()).hexdigest()[:12]}"


def rescan_key(ref: str, rules: str) -> str:
    """The idempotency key of the rescan job of version ``ref`` under rules ``rules``."""
    return f"rescan:{ref}:{rules}"


@dataclass(frozen=True)
class Verdict:
    """A scan's verdict as compared across rescans: risk and findings per rule."""

    risk: str
    findings: dict[str, int]

    @classmethod
    def of(cls, risk: str, report: dict[str, Any] | None) -> Verdict:
        counts = Counter(
            f"{f.get('rule_id')}:{f.get('severity')}" for f in (report or {}).get("findings", [])
        )
        return cls(risk, dict(sorted(counts.items())))


@dataclass(frozen=True)
class Baseline:
    """A version's verdict and state before a rescan (kept by the rescan job, so that a
    re-run after a crash compares with what was there before the first attempt)."""

    verdict: Verdict
    state: State

    def to_json(self) -> dict[str, Any]:
        return {"verdict": vars(self.verdict), "state": self.state.value}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Baseline:
        verdict = data["verdict"]
        return cls(Verdict(str(verdict["risk"]), dict(verdict["findings"])), State(data["state"]))


@dataclass(frozen=True)
class RescanResult:
    """What a rescan found: the verdict before and after, and what policy did."""

    ref: str
    rules: str
    before: Verdict
    after: Verdict
    state: State
    withdrawn: bool

    @property
    def changed(self) -> bool:
        """Whether the verdict (risk or findings) differs from the stored one."""
        return self.before != self.after

    def to_json(self) -> dict[str, Any]:
        """JSON form (a rescan job's result)."""
        return {
            "ref": self.ref,
            "rules": self.rules,
            "before": vars(self.before),
            "after": vars(self.after),
            "changed": self.changed,
            "state": self.state.value,
            "withdrawn": self.withdrawn,
        }


class Rescans:
    """Scan stored versions again and apply the rescan policy."""

    def __init__(self, ctx: RegistryContext, intake: Intake, aliases: Aliases) -> None:
        self.ctx = ctx
        self.intake = intake
        self.aliases = aliases

    def submit_all(self) -> list[Submitted]:
        """Submit a rescan job under today's rules for every stored version (one audited
        transaction); versions already rescanned under these rules are not submitted again."""
        rules = rules_version()
        with self.ctx.write(Action.SCAN) as conn:
            rows = conn.execute(
                select(t.models.c.name, t.versions.c.number)
                .join(t.versions, t.versions.c.model_id == t.models.c.id)
                .order_by(t.models.c.name, t.versions.c.number)
            ).all()
            refs = [f"{r.name}@{r.number}" for r in rows]
            submitted = [
                submit_in(conn, rescan_key(ref, rules), "rescan", {"ref": ref}) for ref in refs
            ]
            queued = sum(s.enqueue for s in submitted)
            details = {"rules": rules, "versions": len(refs), "queued": queued}
            self.ctx.append_audit(conn, "rescan-all", "registry", details)
        return submitted

    def baseline(self, ref: str) -> Baseline:
        """The verdict and state of ``ref`` now, as a rescan will compare them."""
        version = self.ctx.show(ref)
        return Baseline(Verdict.of(version.risk, version.scan_report), version.state)

    def rescan(self, ref: str, baseline: Baseline | None = None) -> RescanResult:
        """Scan ``ref`` again with today's rules, record the new report and compare it with
        ``baseline`` (default: the stored verdict)."""
        self.ctx.require(Action.SCAN)
        before = baseline or self.baseline(ref)
        version = self.ctx.show(ref)
        # Never scanned (ingested with --no-scan), or awaiting review: the usual scan path,
        # auto-reject included. A version withdrawn to quarantine keeps its report.
        if version.state is State.SCANNED or (
            version.state is State.QUARANTINED and version.scan_report is None
        ):
            return self._result(version.ref, before, self.intake.scan(version.ref))
        outcome = self.intake.evaluate(version)
        withdraw = (
            version.state in SERVED
            and outcome.reject is not None
            and self.ctx.policy.quarantine_on_rescan_fail
        )
        self._record(version, before.verdict, outcome, withdraw)
        return self._result(version.ref, before, self.ctx.show(version.ref))

    def _record(
        self, version: Version, before: Verdict, outcome: StaticScan, withdraw: bool
    ) -> None:
        after = Verdict.of(outcome.risk, outcome.report)
        with self.ctx.write(Action.SCAN) as conn:
            row = self.ctx.row(conn, version.ref)
            self.intake.record_report(conn, row, outcome)
            details = {
                "rules": rules_version(),
                "before": vars(before),
                "after": vars(after),
                "changed": before != after,
            }
            self.ctx.append_audit(conn, "rescan", version.ref, details)
            if not withdraw or State(row.state) not in SERVED:
                return
            reason = f"withdrawn: rescan with rules {rules_version()}: {outcome.reject}"
            current = State(row.state)
            store.record_state(conn, row.id, current, State.QUARANTINED, POLICY_ACTOR, reason)
            self.ctx.append_audit(
                conn, "withdraw", version.ref, {"reason": reason}, actor=POLICY_ACTOR
            )
            self.aliases.fall_back(conn, row.model_id, row.id)

    def _result(self, ref: str, before: Baseline, now: Version) -> RescanResult:
        withdrawn = before.state in SERVED and now.state is State.QUARANTINED
        after = Verdict.of(now.risk, now.scan_report)
        return RescanResult(ref, rules_version(), before.verdict, after, now.state, withdrawn)
