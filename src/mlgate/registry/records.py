"""What the registry returns: plain, immutable records (the API's and the CLI's data)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mlgate.registry.lifecycle import State


@dataclass(frozen=True)
class FileRecord:
    """One file of a version, addressed by its SHA-256 in the blob store."""

    path: str
    digest: str
    size: int
    format: str


@dataclass(frozen=True)
class Decision:
    """A reviewer's approval or rejection (``actor`` ``mlgate-policy`` when automatic)."""

    actor: str
    decision: str
    reason: str
    at: str


@dataclass(frozen=True)
class StateChange:
    """One lifecycle transition."""

    version: int
    from_state: str | None
    to_state: str
    actor: str
    reason: str
    at: str


@dataclass(frozen=True)
class Download:
    """Who fetched which file of a version, and when."""

    path: str
    actor: str
    at: str


@dataclass(frozen=True)
class Source:
    """Where a version came from; ``revision`` is immutable (a commit sha for hubs)."""

    kind: str
    uri: str
    repo_id: str | None
    revision: str | None
    requested_revision: str | None


@dataclass(frozen=True)
class Version:
    """A model version as recorded in the inventory."""

    model: str
    number: int
    state: State
    source: Source
    content_digest: str
    size: int
    formats: tuple[str, ...]
    license: str | None
    owner: str
    ingested_at: str
    ingested_by: str
    risk: str
    files: tuple[FileRecord, ...] = ()
    aliases: tuple[str, ...] = ()
    decisions: tuple[Decision, ...] = ()
    history: tuple[StateChange, ...] = ()
    downloads: tuple[Download, ...] = ()
    scan_report: dict[str, Any] | None = None
    dynamic_report: dict[str, Any] | None = None
    bom: dict[str, Any] | None = None
    signature: str | None = None
    signed_by: str | None = None
    converted_from: int | None = None

    @property
    def ref(self) -> str:
        """``name@number``, how commands name this version."""
        return f"{self.model}@{self.number}"

    def summary(self) -> dict[str, Any]:
        """Short JSON form (for ``models list``)."""
        return {
            "model": self.model,
            "version": self.number,
            "state": self.state.value,
            "risk": self.risk,
            "aliases": list(self.aliases),
            "size": self.size,
            "source": self.source.uri,
            "revision": self.source.revision,
            "ingested_by": self.ingested_by,
            "ingested_at": self.ingested_at,
        }

    def to_json(self) -> dict[str, Any]:
        """Full JSON form (for ``models show --format json``)."""
        data = self.summary()
        data.update(
            {
                "source": {
                    "kind": self.source.kind,
                    "uri": self.source.uri,
                    "repo_id": self.source.repo_id,
                    "revision": self.source.revision,
                    "requested_revision": self.source.requested_revision,
                },
                "content_digest": self.content_digest,
                "formats": list(self.formats),
                "license": self.license,
                "owner": self.owner,
                "converted_from": self.converted_from,
                "files": [vars(f) for f in self.files],
                "decisions": [vars(d) for d in self.decisions],
                "history": [vars(h) for h in self.history],
                "downloads": [vars(d) for d in self.downloads],
                "scan_report": self.scan_report,
                "dynamic_report": self.dynamic_report,
                "bom": self.bom,
                "signed_by": self.signed_by,
                "signature": json.loads(self.signature) if self.signature else None,
            }
        )
        return data


@dataclass(frozen=True)
class ModelSummary:
    """A model and its versions' current states."""

    name: str
    owner: str
    created_at: str
    versions: tuple[Version, ...] = field(default=())
    aliases: dict[str, int] = field(default_factory=dict)
