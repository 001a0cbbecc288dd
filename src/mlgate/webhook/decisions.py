"""Each model reference judged against the policy and the registry.

A hub reference must resolve (with the hub's own revision logic,
:mod:`mlgate.hub.hf.revisions`) to a served version: published or deprecated, never
quarantined, scanned, rejected or revoked. A commit id pins it; ``main`` or an alias floats
(the version it names today is reported, or refused when the policy requires pins). A model
from the public hub bypasses review ("shadow model"); an HF_ENDPOINT other than the hub
redirects every fetch of that container; other storage (s3, gs, pvc, oci, https, paths) is
invisible to mlgate, so it is denied unless the policy allows its scheme. Every denial says
which reference, why, and how to fix it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mlgate.hub.hf.errors import REPO_NOT_FOUND, REVISION_NOT_FOUND, HfError
from mlgate.hub.hf.revisions import MAIN
from mlgate.registry.lifecycle import State
from mlgate.webhook.cache import Lookup
from mlgate.webhook.policy import Rules
from mlgate.webhook.references import Kind, Reference
from mlgate.webhook.targets import Target, Where, same_endpoint, target


@dataclass(frozen=True)
class Finding:
    """The judgement of one reference; ``resolved`` is ``name@N`` (commit) when one was."""

    where: str
    value: str | None
    outcome: Outcome
    message: str
    resolved: str | None = None


class Outcome(StrEnum):
    """A reference is fine, fine but worth a warning, or a reason to deny the object."""

    ALLOW = "allow"
    WARN = "warn"
    DENY = "deny"


def judge(lookup: Lookup, rules: Rules, ref: Reference) -> Finding:
    """The finding for ``ref`` under ``rules``, resolving hub models with ``lookup``."""
    if ref.value is None:
        return _finding(
            ref,
            Outcome.DENY,
            "is set from a ConfigMap or Secret, which the webhook cannot "
            "check: write the value in the manifest",
        )
    if ref.kind is Kind.ENDPOINT:
        return _endpoint(rules, ref)
    if ref.kind is Kind.OFFLINE:
        return _finding(ref, Outcome.ALLOW, "the client fetches nothing (a mounted volume)")
    return _model(lookup, rules, ref, target(ref.value, ref.endpoint, rules.hub))


def _endpoint(rules: Rules, ref: Reference) -> Finding:
    if same_endpoint(ref.value, rules.hub):
        return _finding(ref, Outcome.ALLOW, "is the hub")
    fix = f"set HF_ENDPOINT={rules.hub}" if rules.hub else "set the hub in the webhook policy"
    return _finding(
        ref, Outcome.DENY, f"points Hugging Face clients away from the private hub: {fix}"
    )


def _model(lookup: Lookup, rules: Rules, ref: Reference, t: Target) -> Finding:
    if t.where is Where.HUB:
        return _hub_model(lookup, rules, ref, t)
    if t.where is Where.PUBLIC:
        hub = rules.hub or "<the hub>"
        return _finding(
            ref,
            Outcome.DENY,
            f"is a shadow model: {t.name} would be fetched from the public "
            f"Hugging Face hub, bypassing review; ingest it (`mlgate ingest hf://{t.name}`), "
            f"get it published and set HF_ENDPOINT={hub} in this container",
        )
    if t.where is Where.OTHER and t.scheme in rules.allow_schemes:
        return _finding(ref, Outcome.ALLOW, f"{t.scheme} storage, allowed by the policy")
    if t.where is Where.OTHER:
        return _finding(
            ref,
            Outcome.DENY,
            f"is {t.scheme} storage, which mlgate cannot check: serve the "
            f"model from the hub (hf://NAME@COMMIT) or allow {t.scheme} in the policy",
        )
    return _finding(ref, Outcome.DENY, "is not a model reference the webhook can read")


def _hub_model(lookup: Lookup, rules: Rules, ref: Reference, t: Target) -> Finding:
    revision = t.revision or MAIN
    try:
        found = lookup(t.name, revision)
    except HfError as e:
        return _finding(ref, Outcome.DENY, f"{e.message}: {_remedy(e, t.name)}")
    pinned = revision == found.commit
    resolved = f"{found.version.ref} (commit {found.commit})"
    if pinned and found.version.state is State.PUBLISHED:
        return _finding(ref, Outcome.ALLOW, f"is {resolved}", resolved)
    if pinned:
        message = f"is {resolved}, deprecated: move to a newer published version"
        return _finding(ref, Outcome.WARN, message, resolved)
    message = (
        f"floats ({revision}); it names {resolved} today; pin it: hf://{t.name}@{found.commit}"
    )
    outcome = Outcome.DENY if rules.require_pinned else Outcome.WARN
    return _finding(ref, outcome, message, resolved)


def _remedy(error: HfError, name: str) -> str:
    if error.code == REPO_NOT_FOUND:
        return f"ingest it (`mlgate ingest hf://{name}`) and get it reviewed and published"
    if error.code == REVISION_NOT_FOUND:
        return f"use a published version (`mlgate models show {name}`)"
    return f"deploy a published version instead (`mlgate models show {name}`)"


def _finding(ref: Reference, outcome: Outcome, why: str, resolved: str | None = None) -> Finding:
    shown = ref.value if ref.value is not None else "(not literal)"
    return Finding(ref.where, ref.value, outcome, f"{ref.where}: {shown} {why}", resolved)
