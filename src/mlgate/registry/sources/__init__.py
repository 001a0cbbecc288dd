"""Sources of ``mlgate ingest SOURCE``: get an external model's files onto local disk, safely.

One module per kind of source (:mod:`.local`, :mod:`.huggingface`), each returning the same
:class:`StagedSource`. Every name is validated and every limit enforced before the registry
sees the files; on failure nothing is left behind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlgate.registry.sources.base import (
    SourceError,
    SourceLimits,
    StagedFile,
    StagedSource,
)

if TYPE_CHECKING:
    from mlgate.registry.sources.huggingface import stage_huggingface
    from mlgate.registry.sources.local import stage_local

__all__ = [
    "SourceError",
    "SourceLimits",
    "StagedFile",
    "StagedSource",
    "parse_source",
    "stage_huggingface",
    "stage_local",
]

# Loaded on first use: the hub client (http.client, ssl) is not needed to list models.
_LAZY = {
    "stage_huggingface": "mlgate.registry.sources.huggingface",
    "stage_local": "mlgate.registry.sources.local",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'mlgate.registry.sources' has no attribute {name!r}")
    import importlib  # noqa: PLC0415

    return getattr(importlib.import_module(_LAZY[name]), name)


_HF_SCHEME = "hf://"
# "hf://datasets/org/name" as in huggingface_hub's HfFileSystem paths.
_HF_TYPES = {"datasets/": "dataset", "spaces/": "space", "models/": "model"}


def parse_source(spec: str) -> tuple[str, dict[str, str]]:
    """``("huggingface", {repo_id, revision, repo_type})`` or ``("local", {path})``.

    ``hf://org/name@rev`` (``rev`` defaults to ``main``; ``hf://datasets/org/name`` for a
    dataset). Anything else is a local path. The endpoint is not part of the spec: the caller
    passes it to :func:`stage_huggingface`.
    """
    if not spec.startswith(_HF_SCHEME):
        return "local", {"path": spec}
    rest = spec[len(_HF_SCHEME) :]
    repo_type = "model"
    for prefix, kind in _HF_TYPES.items():
        if rest.startswith(prefix):
            rest, repo_type = rest[len(prefix) :], kind
            break
    repo_id, at, revision = rest.partition("@")
    if not repo_id or (at and not revision):
        raise SourceError(f"invalid hub source {spec!r}: expected hf://org/name[@revision]")
    return "huggingface", {
        "repo_id": repo_id,
        "revision": revision or "main",
        "repo_type": repo_type,
    }
