"""Lineage and incident response: what a version was built from, and which versions a
poisoned base model, dataset, rule or file affects, with where each is deployed.

What a version derives from is indexed once, in the ``lineage`` table, when the facts are
first known: the model card and ``config.json`` at ingest (read bounded, through the
blob view, never loaded), rule ids when a scan report is recorded, the ML-BOM's pedigree at
publication. A reverse query is then a few indexed SQL queries whatever the inventory's
size, rather than parsing 10,000 stored reports and BOMs per question.

Derivation is followed transitively: a registered model built on a poisoned base is itself
a base for others, and a safetensors conversion carries its original's content.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, or_, select

from mlgate.errors import MlgateError
from mlgate.registry import schema as t
from mlgate.registry.context import RegistryContext
from mlgate.registry.errors import RegistryError, TransitionRefused
from mlgate.registry.lifecycle import State
from mlgate.registry.roles import Action

if TYPE_CHECKING:
    from mlgate.registry.decisions import Decisions

BASE_MODEL = "base_model"
DATASET = "dataset"
RULE = "rule"
DIGEST = "digest"
KINDS = (BASE_MODEL, DATASET, RULE, DIGEST)
# Model cards are attacker-controlled: an entry longer than a hub id, or a card listing
# thousands of bases, is not lineage but an attempt to bloat the index (and every page).
MAX_VALUE = 256
MAX_PER_KIND = 64
# Bases of bases of bases...: real fine-tuning chains are a few links long; the cap bounds
# the work a cycle of hostile cards naming one another could otherwise cause.
MAX_DEPTH = 8
_CHUNK = 500  # ids per IN (...) list: well under SQLite's bound-parameter limit
_REVOCABLE = frozenset({State.APPROVED, State.PUBLISHED, State.DEPRECATED})


@dataclass(frozen=True)
class Derivation:
    """One thing a version was built from (or matched by): ``kind`` (base_model, dataset,
    rule), ``value`` (a hub id, a rule id) and ``origin`` (card, config, bom, scan)."""

    kind: str
    value: str
    origin: str


@dataclass(frozen=True)
class Affected:
    """A version an incident touches, ``via`` what, and where it is deployed."""

    ref: str
    model: str
    number: int
    state: str
    risk: str
    via: str
    aliases: tuple[str, ...]
    downloads: int
    last_download: str | None

    def to_json(self) -> dict[str, Any]:
        return {**vars(self), "aliases": list(self.aliases)}


@dataclass(frozen=True)
class BulkRevocation:
    """What a bulk revoke did: the versions it revoked, and those it left, with why."""

    revoked: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "revoked": list(self.revoked),
            "skipped": [{"ref": r, "why": w} for r, w in self.skipped],
        }


class Lineage:
    """Lineage queries and the bulk revoke; revocations go through :class:`Decisions`, so
    a bulk revoke does exactly what one revoke does, per version (state, audit, aliases)."""

    def __init__(self, ctx: RegistryContext, decisions: Decisions) -> None:
        self.ctx = ctx
        self.decisions = decisions

    def built_from(self, ref: str) -> tuple[Derivation, ...]:
        """The base models and datasets version ``ref`` was built from."""
        with self.ctx.read(Action.READ) as conn:
            row = self.ctx.row(conn, ref)
            rows = conn.execute(
                select(t.lineage)
                .where(t.lineage.c.version_id == row.id, t.lineage.c.kind != RULE)
                .order_by(t.lineage.c.kind, t.lineage.c.value, t.lineage.c.origin)
            )
            return tuple(Derivation(r.kind, r.value, r.origin) for r in rows)

    def affected(self, kind: str, value: str) -> tuple[Affected, ...]:
        """Every version that derives from or contains ``value`` (a ``kind``), oldest first."""
        with self.ctx.read(Action.READ) as conn:
            return _affected(conn, kind, value)

    def revoke_affected(self, kind: str, value: str, reason: str) -> BulkRevocation:
        """Revoke every affected version that can be, in one transaction under the actor's
        identity; each revocation is audited and falls its aliases back like a single one."""
        if not reason.strip():
            raise TransitionRefused("a bulk revoke needs a reason")
        revoked: list[str] = []
        skipped: list[tuple[str, str]] = []
        with self.ctx.write(Action.REVOKE) as conn:
            for item in _affected(conn, kind, value):
                if State(item.state) not in _REVOCABLE:
                    skipped.append((item.ref, f"it is {item.state}"))
                    continue
                row = self.ctx.row(conn, item.ref)
                incident = {"incident": f"{kind} {value}", "via": item.via}
                self.decisions.record_retirement(conn, row, State.REVOKED, reason, incident)
                revoked.append(item.ref)
        return BulkRevocation(tuple(revoked), tuple(skipped))


# -- indexing ---------------------------------------------------------------------------


def record(
    conn: Connection, version_id: int, sources: Iterable[Derivation], kind: str | None
) -> None:
    """Index ``sources`` for a version, replacing what was indexed of ``kind`` (all kinds
    but rules when None) so that a rescan's new report replaces the old rule ids."""
    old = t.lineage.delete().where(t.lineage.c.version_id == version_id)
    old = old.where(t.lineage.c.kind == kind if kind else t.lineage.c.kind != RULE)
    conn.execute(old)
    rows = [{"version_id": version_id, **vars(s)} for s in _bounded(sources)]
    if rows:
        conn.execute(t.lineage.insert(), rows)


def add(conn: Connection, version_id: int, sources: Iterable[Derivation]) -> None:
    """Index further sources of a version (the BOM's, at publication), keeping the rest."""
    have = {
        (r.kind, r.value, r.origin)
        for r in conn.execute(select(t.lineage).where(t.lineage.c.version_id == version_id))
    }
    rows = [
        {"version_id": version_id, **vars(s)}
        for s in _bounded(sources)
        if (s.kind, s.value, s.origin) not in have
    ]
    if rows:
        conn.execute(t.lineage.insert(), rows)


def _bounded(sources: Iterable[Derivation]) -> Iterator[Derivation]:
    counts: dict[str, int] = {}
    for s in dict.fromkeys(sources):
        value = s.value.strip()
        if not value or len(value) > MAX_VALUE or counts.get(s.kind, 0) >= MAX_PER_KIND:
            continue
        counts[s.kind] = counts.get(s.kind, 0) + 1
        yield Derivation(s.kind, value, s.origin)


def card_sources(view: Path) -> tuple[Derivation, ...]:
    """What a model folder's card and config say it was built from (bounded reads, safe
    YAML, plain JSON: nothing is loaded or executed). Unreadable metadata gives nothing."""
    from mlgate.bom.model_card import read_json, read_model_card  # noqa: PLC0415

    try:
        card = read_model_card(view)
    except (OSError, ValueError, MlgateError):
        return ()
    found = [Derivation(BASE_MODEL, b, "card") for b in card.base_models]
    found += [Derivation(DATASET, d, "card") for d in card.datasets]
    if view.is_dir():
        # transformers records the checkpoint a model was loaded from; PEFT adapters name
        # the base they must be applied to.
        for name, key in (
            ("config.json", "_name_or_path"),
            ("adapter_config.json", "base_model_name_or_path"),
        ):
            value = read_json(view / name).get(key)
            if isinstance(value, str):
                found.append(Derivation(BASE_MODEL, value, "config"))
    return tuple(found)


def report_sources(report: dict[str, Any] | None) -> tuple[Derivation, ...]:
    """The rule ids a stored scan report's findings carry."""
    findings = (report or {}).get("findings")
    if not isinstance(findings, list):
        return ()
    rules = {f.get("rule_id") for f in findings if isinstance(f, dict)}
    return tuple(
        Derivation(RULE, r, "scan") for r in sorted(r for r in rules if isinstance(r, str))
    )


def bom_sources(bom: dict[str, Any] | None) -> tuple[Derivation, ...]:
    """The base models (pedigree ancestors) and datasets (data components) of a stored
    CycloneDX ML-BOM."""
    found: list[Derivation] = []
    for component in _dicts((bom or {}).get("components")):
        if component.get("type") == "data" and isinstance(component.get("name"), str):
            found.append(Derivation(DATASET, component["name"], "bom"))
        pedigree = component.get("pedigree")
        ancestors = pedigree.get("ancestors") if isinstance(pedigree, dict) else None
        for ancestor in _dicts(ancestors):
            if isinstance(ancestor.get("name"), str):
                found.append(Derivation(BASE_MODEL, _full_name(ancestor), "bom"))
    return tuple(found)


def _full_name(component: dict[str, Any]) -> str:
    group = component.get("group")
    return f"{group}/{component['name']}" if isinstance(group, str) else str(component["name"])


def _dicts(value: object) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


# -- reverse queries ----------------------------------------------------------------------


def _affected(conn: Connection, kind: str, value: str) -> tuple[Affected, ...]:
    if kind not in KINDS:
        raise RegistryError(f"unknown lineage kind {kind!r}: use one of {', '.join(KINDS)}")
    via = _direct(conn, kind, value.strip())
    frontier = set(via)
    for _ in range(MAX_DEPTH):
        found = _derived(conn, frontier, via)
        if not found:
            break
        via.update(found)
        frontier = set(found)
    return _describe(conn, via)


def _direct(conn: Connection, kind: str, value: str) -> dict[int, str]:
    if kind == DIGEST:
        digest = value.removeprefix("sha256:").lower()
        rows = conn.execute(
            select(t.files.c.version_id, t.files.c.path).where(t.files.c.digest == digest)
        )
        found = {r.version_id: f"contains {r.path}" for r in rows}
        whole = select(t.versions.c.id).where(t.versions.c.content_digest == digest)
        found.update({i: "its content digest" for i in conn.execute(whole).scalars()})
        return found
    rows = conn.execute(
        select(t.lineage.c.version_id, t.lineage.c.origin).where(
            t.lineage.c.kind == kind, t.lineage.c.value == value
        )
    )
    return {r.version_id: f"{kind.replace('_', ' ')} {value} ({r.origin})" for r in rows}


def _derived(conn: Connection, ids: set[int], known: dict[int, str]) -> dict[int, str]:
    """Versions built on, or converted from, the versions ``ids``."""
    found: dict[int, str] = {}
    for chunk in _chunks(sorted(ids)):
        parents = conn.execute(
            select(t.versions.c.id, t.versions.c.number, t.versions.c.repo_id, t.models.c.name)
            .join(t.models, t.models.c.id == t.versions.c.model_id)
            .where(t.versions.c.id.in_(chunk))
        ).all()
        names = {n: f"{p.name}@{p.number}" for p in parents for n in (p.name, p.repo_id) if n}
        if names:
            bases = conn.execute(
                select(t.lineage.c.version_id, t.lineage.c.value).where(
                    t.lineage.c.kind == BASE_MODEL, t.lineage.c.value.in_(list(names))
                )
            )
            found.update({b.version_id: f"built on {names[b.value]}" for b in bases})
        refs = {p.id: f"{p.name}@{p.number}" for p in parents}
        conversions = conn.execute(
            select(t.versions.c.id, t.versions.c.converted_from).where(
                t.versions.c.converted_from.in_(chunk)
            )
        )
        found.update({c.id: f"converted from {refs[c.converted_from]}" for c in conversions})
    return {k: v for k, v in found.items() if k not in known}


def _describe(conn: Connection, via: dict[int, str]) -> tuple[Affected, ...]:
    out: list[Affected] = []
    for chunk in _chunks(sorted(via)):
        aliases: dict[int, list[str]] = {}
        for a in conn.execute(
            select(t.aliases.c.version_id, t.aliases.c.alias)
            .where(t.aliases.c.version_id.in_(chunk))
            .order_by(t.aliases.c.alias)
        ):
            aliases.setdefault(a.version_id, []).append(a.alias)
        pulls = {
            d.version_id: (d.n, d.last)
            for d in conn.execute(
                select(
                    t.downloads.c.version_id,
                    func.count().label("n"),
                    func.max(t.downloads.c.at).label("last"),
                )
                .where(t.downloads.c.version_id.in_(chunk))
                .group_by(t.downloads.c.version_id)
            )
        }
        rows = conn.execute(
            select(t.versions, t.models.c.name)
            .join(t.models, t.models.c.id == t.versions.c.model_id)
            .where(t.versions.c.id.in_(chunk))
        )
        for r in rows:
            count, last = pulls.get(r.id, (0, None))
            out.append(
                Affected(
                    f"{r.name}@{r.number}",
                    r.name,
                    r.number,
                    r.state,
                    r.risk,
                    via[r.id],
                    tuple(aliases.get(r.id, ())),
                    int(count),
                    last,
                )
            )
    return tuple(sorted(out, key=lambda a: (a.model, a.number)))


def _chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    for i in range(0, len(ids), _CHUNK):
        yield list(ids[i : i + _CHUNK])


def backfill(conn: Connection) -> None:
    """Index what stored reports and BOMs already say (the migration's backfill; card and
    config facts of versions ingested before the index existed are not re-read)."""
    rows = conn.execute(
        select(t.versions.c.id, t.versions.c.scan_report, t.versions.c.bom).where(
            or_(t.versions.c.scan_report.is_not(None), t.versions.c.bom.is_not(None))
        )
    ).all()
    for r in rows:
        report = json.loads(r.scan_report) if r.scan_report else None
        bom = json.loads(r.bom) if r.bom else None
        add(conn, r.id, (*report_sources(report), *bom_sources(bom)))
