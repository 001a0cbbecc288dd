"""Revisions: each registry version is an immutable commit, and what may resolve to one.

A version's commit id is :func:`mlgate.hub.commits.commit_id`. ``main`` is the newest
served version (published or deprecated); an alias (``production``) is the version it
points at; a commit id is its version. Anything else is ``RevisionNotFound``.

A version that is not served answers ``GatedRepo`` saying why: quarantined or scanned and
pending review, approved but not published, rejected or revoked with the reviewer's reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlgate.hub.commits import commit_id
from mlgate.hub.hf.errors import REPO_NOT_FOUND, REVISION_NOT_FOUND, HfError, gated
from mlgate.registry.errors import NotFound
from mlgate.registry.lifecycle import SERVED, State
from mlgate.registry.records import Version
from mlgate.registry.service import Registry

MAIN = "main"
COMMIT = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class Resolved:
    """A served version (with its files) and its commit id."""

    version: Version
    commit: str


def resolve(registry: Registry, repo_id: str, revision: str) -> Resolved:
    """The served version ``revision`` names, or the client's error saying why not."""
    try:
        chosen = registry.downloads.resolve(repo_id, lambda versions: pick(versions, revision))
    except NotFound:
        raise HfError(404, f"no model {repo_id!r} on this hub", REPO_NOT_FOUND) from None
    if chosen is None:
        raise HfError(404, f"{repo_id} has no revision {revision!r}", REVISION_NOT_FOUND)
    if chosen.state not in SERVED:
        raise gated(why_not_served(chosen))
    return Resolved(chosen, commit_id(chosen))


def pick(versions: tuple[Version, ...], revision: str) -> Version | None:
    """The version (newest first in ``versions``) that ``revision`` names. ``main`` with
    nothing served names the newest version, so the client learns why it is not served."""
    if revision == MAIN:
        served = [v for v in versions if v.state in SERVED]
        return served[0] if served else next(iter(versions), None)
    if COMMIT.fullmatch(revision):
        return next((v for v in versions if commit_id(v) == revision), None)
    return next((v for v in versions if revision in v.aliases), None)


def why_not_served(version: Version) -> str:
    """Why ``version`` (with its state history) is not served, for the client to show."""
    last = version.history[-1] if version.history else None
    by = f" by {last.actor}: {last.reason}" if last else ""
    reasons = {
        State.QUARANTINED: "is quarantined, pending scan and review",
        State.SCANNED: f"is scanned (risk: {version.risk}), pending review",
        State.APPROVED: "is approved but not published yet",
        State.REJECTED: f"was rejected{by}",
        State.REVOKED: f"was revoked{by}",
    }
    return f"{version.ref} {reasons.get(version.state, version.state.value)}; not served"
