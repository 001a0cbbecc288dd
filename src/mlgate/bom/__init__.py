"""ML-BOM of a model: CycloneDX 1.6/1.7 JSON or SPDX 3.0.1 JSON-LD (AI and Dataset profiles).

Building a BOM hashes the model (:func:`mlgate.provenance.manifest.hash_model`), scans it
statically (:func:`mlgate.scan`) and reads its ``config.json`` / README model card; nothing in
the model is loaded or executed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlgate.errors import UnreadableInputError, public_entry
from mlgate.findings import Severity

if TYPE_CHECKING:
    from mlgate.bom.subject import ModelSubject
    from mlgate.config import Config

__all__ = ["build_cyclonedx", "build_spdx", "gather"]


def build_cyclonedx(
    path: str | os.PathLike[str],
    *,
    version: str = "1.6",
    name: str | None = None,
    source: str | None = None,
    revision: str | None = None,
    actor: str | None = None,
    min_severity: Severity = Severity.MEDIUM,
    allow_symlinks: bool = False,
    config: Config | None = None,
) -> dict[str, Any]:
    """The CycloneDX ML-BOM (``version`` "1.6" or "1.7") of the model at ``path``, as a dict.

    ``source`` is where the model came from: ``huggingface`` (then ``name`` is ``org/name``),
    a ``https://huggingface.co/ORG/NAME`` URL, or any other URL. ``revision`` is the commit or
    version; ``actor`` who ingested it (default: the OS user). Scan findings at or above
    ``min_severity`` are listed as vulnerabilities. Symbolic links in the model are refused
    unless ``allow_symlinks`` (then only links that stay inside the model are followed).
    """
    from mlgate.bom.cyclonedx import render_cyclonedx  # noqa: PLC0415  (heavy import)

    subject = _gather(path, name, source, revision, actor, min_severity, allow_symlinks, config)
    return render_cyclonedx(subject, version)


def build_spdx(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    source: str | None = None,
    revision: str | None = None,
    actor: str | None = None,
    min_severity: Severity = Severity.MEDIUM,
    allow_symlinks: bool = False,
    config: Config | None = None,
) -> dict[str, Any]:
    """The SPDX 3.0.1 JSON-LD document (AI and Dataset profiles) of the model, as a dict.

    Arguments as for :func:`build_cyclonedx`.
    """
    from mlgate.bom.spdx import render_spdx  # noqa: PLC0415  (heavy import)

    subject = _gather(path, name, source, revision, actor, min_severity, allow_symlinks, config)
    return render_spdx(subject)


def to_json(doc: dict[str, Any]) -> str:
    """Serialise a BOM dict as indented JSON text."""
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


# Reading the model (hash, scan, model card) is where hostile input can break a parser.
@public_entry(UnreadableInputError)
def _gather(
    path: str | os.PathLike[str],
    name: str | None,
    source: str | None,
    revision: str | None,
    actor: str | None,
    min_severity: Severity,
    allow_symlinks: bool,
    config: Config | None,
) -> ModelSubject:
    # Imported here: gathering runs the scanner and the hasher, which `import mlgate` and the
    # other CLI commands should not pay for.
    from mlgate.bom.subject import gather  # noqa: PLC0415

    return gather(
        Path(path),
        name=name,
        source=source,
        revision=revision,
        actor=actor,
        min_severity=min_severity,
        allow_symlinks=allow_symlinks,
        config=config,
    )
