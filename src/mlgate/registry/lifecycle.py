"""Lifecycle states of a model version and the transitions the registry allows."""

from __future__ import annotations

from enum import StrEnum

from mlgate.registry.errors import TransitionRefused


class State(StrEnum):
    """Where a version stands. Only ``published`` (and ``deprecated``) versions are served."""

    QUARANTINED = "quarantined"
    SCANNED = "scanned"
    APPROVED = "approved"
    REJECTED = "rejected"
    PUBLISHED = "published"
    DEPRECATED = "deprecated"
    REVOKED = "revoked"


_ALLOWED: dict[State, frozenset[State]] = {
    State.QUARANTINED: frozenset({State.SCANNED}),
    State.SCANNED: frozenset({State.SCANNED, State.APPROVED, State.REJECTED}),
    State.APPROVED: frozenset({State.PUBLISHED, State.REVOKED}),
    # Back to quarantine: a served version that a rescan (newer rules) now fails is withdrawn
    # from serving until reviewed again, without the finality of a revocation (issue 18).
    State.PUBLISHED: frozenset({State.DEPRECATED, State.REVOKED, State.QUARANTINED}),
    State.DEPRECATED: frozenset({State.REVOKED, State.QUARANTINED}),
    State.REJECTED: frozenset(),
    State.REVOKED: frozenset(),
}

_WHY: dict[State, str] = {
    State.QUARANTINED: "only a served version is withdrawn to quarantine",
    State.SCANNED: "it has not been scanned",
    State.APPROVED: "only a scanned version can be approved",
    State.REJECTED: "only a scanned version can be rejected",
    State.PUBLISHED: "only an approved version can be published",
    State.DEPRECATED: "only a published version can be deprecated",
    State.REVOKED: "it is not approved or published",
}

SERVED = frozenset({State.PUBLISHED, State.DEPRECATED})


def check_transition(subject: str, current: State, target: State) -> None:
    """Raise :class:`TransitionRefused` unless ``current -> target`` is allowed."""
    if target in _ALLOWED[current]:
        return
    raise TransitionRefused(
        f"cannot mark {subject} {target.value}: it is {current.value}; "
        f"{_WHY.get(target, 'not allowed')}"
    )
