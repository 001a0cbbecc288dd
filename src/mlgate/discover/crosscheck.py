"""Cross-checking model references against what the organisation vetted.

Against a registry, through the registry library (``Registry.models()``: one read, no SQL
here); or against a hub that speaks the Hugging Face API (mlgate's own hub, issue 18), by
asking it for the model as a client would (``GET /api/models/{repo}/revision/{rev}``): a hub
answers 403 GatedRepo for what is not servable, 401/404 for what it does not have. A hub that
cannot be asked is an error, never a pass.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote

from mlgate.discover.sources import Reference
from mlgate.errors import MlgateError

if TYPE_CHECKING:
    from mlgate.registry.records import ModelSummary
    from mlgate.registry.service import Registry

MAX_HUB_QUERIES = 500  # distinct references asked of a hub in one run
HUB_TIMEOUT = 20.0


class CrossCheckError(MlgateError):
    """The registry or hub could not answer; the references were not cross-checked."""


class Catalogue(Protocol):
    def absent(self, refs: Iterable[Reference]) -> dict[str, str]:
        """For each reference (by ``str(ref)``) that is not servable: why."""


@dataclass(frozen=True)
class RegistryCatalogue:
    """The registry's published models, matched by model name or hub repo id."""

    registry: Registry

    def absent(self, refs: Iterable[Reference]) -> dict[str, str]:
        models = self.registry.models()
        return {str(r): why for r in refs if (why := _registry_verdict(models, r)) is not None}


def _registry_verdict(models: list[ModelSummary], ref: Reference) -> str | None:
    from mlgate.registry.lifecycle import SERVED  # noqa: PLC0415 - registry users only

    versions = [v for m in models for v in m.versions if ref.name in (m.name, v.source.repo_id)]
    if not versions:
        return "not in the registry"
    served = [v for v in versions if v.state in SERVED]
    if not served:
        states = ", ".join(sorted({str(v.state) for v in versions}))
        return f"in the registry but not published ({states})"
    if ref.pinned and all(v.source.revision != ref.revision for v in served):
        return f"revision {ref.revision} is not a published version"
    return None


@dataclass(frozen=True)
class HubCatalogue:
    """A Hugging Face-compatible hub, asked per distinct reference."""

    endpoint: str
    token: str | None = None

    def absent(self, refs: Iterable[Reference]) -> dict[str, str]:
        distinct = {str(r): r for r in refs}
        if len(distinct) > MAX_HUB_QUERIES:
            raise CrossCheckError(
                f"{len(distinct)} distinct model references; at most {MAX_HUB_QUERIES} are "
                "cross-checked against a hub in one run (scan fewer paths at a time)"
            )
        answers = {key: self._verdict(ref) for key, ref in distinct.items()}
        return {key: why for key, why in answers.items() if why is not None}

    def _verdict(self, ref: Reference) -> str | None:
        from mlgate.registry.sources._http import (  # noqa: PLC0415 - hub users only
            HttpStatusError,
            open_url,
            read_limited,
        )
        from mlgate.registry.sources.base import SourceError  # noqa: PLC0415

        revision = quote(ref.revision or "main", safe="")
        url = f"{self.endpoint.rstrip('/')}/api/models/{ref.name}/revision/{revision}"
        subject = f"model {ref.name}"
        try:
            with open_url(url, token=self.token, timeout=HUB_TIMEOUT, subject=subject) as answer:
                json.loads(read_limited(answer, 8 << 20, url, HUB_TIMEOUT, subject))
        except HttpStatusError as e:
            return _hub_refusal(e.status, e.error_code)
        except (SourceError, ValueError) as e:
            raise CrossCheckError(f"the hub could not be asked about {subject}: {e}") from e
        return None


def _hub_refusal(status: int, code: str | None) -> str:
    if code == "RevisionNotFound":
        return "the hub has the model but not this revision"
    if status == 403 or code == "GatedRepo":
        return "refused by the hub (not published: quarantined, rejected or revoked)"
    if status in (401, 404):
        return "not on the hub"
    raise CrossCheckError(f"the hub answered HTTP {status} ({code or 'no error code'})")
