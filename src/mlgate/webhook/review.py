"""One admission request decided: exemptions, every reference judged, the policy's mode
applied, and the decision recorded in the registry's audit log (not for a dry run, which
changes nothing in the cluster either).

Only creations and updates that carry an object can start a model; a subresource write
(``status``, ``scale``, ``binding``) cannot change what a workload loads, except
``ephemeralcontainers``, which adds containers to a running Pod and is checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlgate.errors import MlgateError
from mlgate.registry.service import Registry
from mlgate.webhook.admission import AdmissionRequest
from mlgate.webhook.cache import Lookup
from mlgate.webhook.decisions import Finding, Outcome, judge
from mlgate.webhook.policy import Mode, Policy, Rules
from mlgate.webhook.references import references

CHECKED_SUBRESOURCES = frozenset({None, "ephemeralcontainers"})


@dataclass(frozen=True)
class Verdict:
    """Whether the object is admitted, the denial's message, the warnings to return, the
    findings behind them and, for an exempt object, the reason it gave."""

    allowed: bool
    message: str = ""
    warnings: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()
    exemption: str | None = None


def decide(
    registry: Registry, lookup: Lookup, policy: Policy, request: AdmissionRequest
) -> Verdict:
    """The verdict on ``request`` (models resolved with ``lookup``), recorded in
    ``registry``'s audit log unless it is a dry run."""
    rules = policy.rules(request.namespace)
    verdict = _verdict(lookup, rules, request)
    if not request.dryRun:
        registry.auditing.record_admission(_subject(request), _details(request, rules, verdict))
    return verdict


def _verdict(lookup: Lookup, rules: Rules, request: AdmissionRequest) -> Verdict:
    obj = request.object
    if obj is None or request.subResource not in CHECKED_SUBRESOURCES:
        return Verdict(True)
    exemption = _exemption(rules, obj)
    if exemption is not None:
        return exemption
    try:
        findings = tuple(judge(lookup, rules, ref) for ref in references(obj))
    except MlgateError as e:  # unreadable object, registry refusal: never an allow
        return _apply(rules, (), f"mlgate cannot check this object: {e}")
    denials = "; ".join(f.message for f in findings if f.outcome is Outcome.DENY)
    return _apply(rules, findings, denials)


def _apply(rules: Rules, findings: tuple[Finding, ...], denial: str) -> Verdict:
    """The verdict under the policy's mode: enforce denies, warn warns, audit records."""
    warnings = tuple(f.message for f in findings if f.outcome is Outcome.WARN)
    if not denial:
        return Verdict(True, "", warnings if rules.mode is not Mode.AUDIT else (), findings)
    if rules.mode is Mode.ENFORCE:
        return Verdict(False, f"mlgate denied it: {denial}", warnings, findings)
    if rules.mode is Mode.WARN:
        return Verdict(True, denial, (f"mlgate would deny it: {denial}", *warnings), findings)
    return Verdict(True, denial, (), findings)


def _exemption(rules: Rules, obj: dict[str, Any]) -> Verdict | None:
    """An exempt object's verdict (allowed with its reason, or denied without one)."""
    metadata = _dict(obj.get("metadata"))
    labels = _dict(metadata.get("labels"))
    if rules.exempt_label is None or labels.get(rules.exempt_label) != "true":
        return None
    reason = _dict(metadata.get("annotations")).get(rules.exempt_reason_annotation)
    if isinstance(reason, str) and reason.strip():
        return Verdict(True, "", (f"exempt from mlgate: {reason.strip()}",), exemption=reason)
    return Verdict(
        False,
        f"mlgate denied it: the label {rules.exempt_label}=true needs the annotation "
        f"{rules.exempt_reason_annotation} saying why (it is audited)",
    )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _subject(request: AdmissionRequest) -> str:
    generated = _dict((request.object or request.oldObject or {}).get("metadata")).get(
        "generateName"
    )
    name = request.name or (f"{generated}*" if isinstance(generated, str) else "")
    return f"{request.kind.kind}/{request.namespace or '-'}/{name}"


def _details(request: AdmissionRequest, rules: Rules, verdict: Verdict) -> dict[str, Any]:
    return {
        "uid": request.uid,
        "operation": request.operation,
        "user": request.userInfo.username,
        "mode": rules.mode.value,
        "allowed": verdict.allowed,
        "message": verdict.message,
        "exemption": verdict.exemption,
        "references": [
            {"where": f.where, "value": f.value, "outcome": f.outcome.value, "resolved": f.resolved}
            for f in verdict.findings
        ],
    }
