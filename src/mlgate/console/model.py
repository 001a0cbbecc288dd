"""The model / version page (files, history, findings, explain, Keras Lambda disassembly,
remote code, dynamic report, signature, ML-BOM in CycloneDX and SPDX, downloads, aliases)
and its one form: rolling an alias back."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from mlgate.console.evidence import MAX_CODE_BYTES, CodeFile, lambda_listings, remote_code
from mlgate.console.web import Viewer, console_of, form_of, see_other, viewer
from mlgate.errors import MlgateError
from mlgate.findings import Severity
from mlgate.registry.errors import NotFound
from mlgate.registry.records import Version
from mlgate.registry.roles import Action
from mlgate.registry.views import alias_history

router = APIRouter()

# Formats that are (or hold) pickles, and the largest file explained per page view: the
# explanation re-parses the stored bytes statically (never unpickles them), bounded in cost.
PICKLE_FORMATS = frozenset({"pickle", "joblib", "pytorch-legacy", "pytorch"})
MAX_EXPLAIN_BYTES = 16 * 1024 * 1024


@router.get("/models/{name:path}")
def model_page(
    name: str, request: Request, who: Annotated[Viewer, Depends(viewer)]
) -> HTMLResponse:
    return render_model(request, who, name, request.query_params.get("v", ""))


def render_model(
    request: Request, who: Viewer, name: str, number: str, error: str | None = None
) -> HTMLResponse:
    """The page of ``name@number`` (the newest version when ``number`` is not a number)."""
    registry = who.registry
    version = registry.show(_ref(name, number))
    history = registry.history(name)
    with registry.context.read(Action.READ) as conn:
        moves = alias_history(conn, name)
    return console_of(request).render(
        request,
        "model.html",
        {
            "v": version,
            "numbers": sorted({h.version for h in history}, reverse=True),
            "history": history,
            "findings": _by_severity(version.scan_report),
            "explained": _explanations(who, version),
            "lambdas": lambda_listings(version.scan_report),
            "code": _remote_code(who, version),
            "code_limit": MAX_CODE_BYTES,
            "dynamic": _pretty(version.dynamic_report),
            "pending": registry.pending_reason(version),
            "signature": _signature(who, version),
            "moves": moves,
            "built_from": _built_from(who, version),
            "error": error,
        },
        status=400 if error else 200,
    )


def _built_from(who: Viewer, version: Version) -> list[tuple[str, str, list[str]]]:
    """(kind, value, where it is said) for each base model and dataset: one line for a base
    that the card and the ML-BOM both name."""
    said: dict[tuple[str, str], list[str]] = defaultdict(list)
    for fact in who.registry.lineage.built_from(version.ref):
        said[fact.kind, fact.value].append(fact.origin)
    return [(kind, value, origins) for (kind, value), origins in said.items()]


def _ref(name: str, number: str) -> str:
    """``name@number``, or the newest version of ``name`` when ``number`` is not a number."""
    return f"{name}@{number}" if number.isdigit() else name


def _by_severity(report: dict[str, Any] | None) -> list[tuple[str, list[dict[str, Any]]]]:
    """The scan's findings grouped by severity, worst first."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for finding in (report or {}).get("findings", []):
        groups[str(finding.get("severity", "INFO"))].append(finding)
    order = [s.name for s in sorted(Severity, reverse=True)]
    return sorted(groups.items(), key=lambda g: order.index(g[0]) if g[0] in order else 99)


def _explanations(who: Viewer, version: Version) -> list[tuple[str, str]]:
    """``mlgate explain`` for each small pickle file, from the registry's read-only view of
    the stored blobs: static parsing only, nothing is ever unpickled."""
    from mlgate.api import explain  # noqa: PLC0415  (the scanner: loaded on use)

    files = [f for f in version.files if f.format in PICKLE_FORMATS and f.size <= MAX_EXPLAIN_BYTES]
    if not files:
        return []
    view = who.registry.view(version.content_digest, version.files)
    # The explanation names the view's absolute path: show the model's own path instead.
    return [(f.path, explain(view / f.path).replace(f"{view}/", "")) for f in files]


def _remote_code(who: Viewer, version: Version) -> list[CodeFile]:
    if not any(f.path.endswith(".py") for f in version.files):
        return []  # no view built for versions without code
    return remote_code(who.registry.view(version.content_digest, version.files), version)


@dataclass(frozen=True)
class SignatureStatus:
    """The registry signature checked now against the organisation key and the digests."""

    signer: str
    key_id: str
    problems: tuple[str, ...]


def _signature(who: Viewer, version: Version) -> SignatureStatus | None:
    from mlgate.provenance.keys import key_hint  # noqa: PLC0415  (cryptography: on use)
    from mlgate.provenance.signing import verify_recorded  # noqa: PLC0415

    key = who.registry.org_public_key()
    if version.signature is None or key is None:
        return None
    recorded = {f.path: f.digest for f in version.files}
    problems = verify_recorded(version.signature, key, recorded, f"{version.ref} signature")
    return SignatureStatus(version.signed_by or "", key_hint(key), problems)


def _pretty(document: dict[str, Any] | None) -> str | None:
    return None if document is None else json.dumps(document, indent=2, sort_keys=True)


# ?format= of the BOM download: the file suffix. CycloneDX is the document signed into the
# registry at publication; SPDX 3.0.1 is built on demand from the same stored blobs (a static
# scan and hashing, nothing loaded).
BOM_SUFFIXES = {"cyclonedx": "cdx.json", "spdx": "spdx.json"}


@router.get("/bom/{name:path}")
def bom(name: str, request: Request, who: Annotated[Viewer, Depends(viewer)]) -> Response:
    """The version's ML-BOM as a JSON download (``format`` cyclonedx, the default, or spdx)."""
    version = who.registry.show(_ref(name, request.query_params.get("v", "")))
    if version.bom is None:
        raise NotFound(f"{version.ref} has no BOM: it is generated when published")
    kind = request.query_params.get("format", "cyclonedx")
    if kind not in BOM_SUFFIXES:
        raise NotFound(f"no BOM format {kind[:40]!r}: cyclonedx or spdx")
    document = version.bom if kind == "cyclonedx" else _spdx(who, version)
    filename = f"{version.model.replace('/', '_')}-{version.number}.{BOM_SUFFIXES[kind]}"
    return Response(
        json.dumps(document, indent=2),
        media_type="application/json",
        # ASCII-only file name: a hostile model name cannot inject header content.
        headers={"content-disposition": f'attachment; filename="{_ascii(filename)}"'},
    )


def _spdx(who: Viewer, version: Version) -> dict[str, Any]:
    from mlgate.bom import build_spdx  # noqa: PLC0415  (heavy: loaded on use)

    return build_spdx(
        who.registry.view(version.content_digest, version.files),
        name=version.model,
        source=version.source.uri,
        revision=version.source.revision,
        actor=version.ingested_by,
    )


def _ascii(text: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in text)


@router.post("/rollback/{name:path}", response_model=None)
async def rollback(
    name: str, request: Request, who: Annotated[Viewer, Depends(viewer)]
) -> Response:
    """Move an alias back (to its previous version, or to the version given)."""
    form = await form_of(request)
    alias, to = form.get("alias", ""), form.get("to", "").strip()
    try:
        version = who.registry.rollback(name, alias, to or None)
    except MlgateError as e:
        return render_model(request, who, name, "", error=str(e))
    return see_other(f"/models/{name}?v={version.number}")
