"""What a model reference names: a model on the private hub (to look up in the registry), a
model on the public Hugging Face hub (a "shadow model" that bypasses review), or storage of
another scheme (``s3``, ``gs``, ``pvc``, ``oci``, ``https``, a local ``file`` path...).

``hf://org/name[@rev]`` (KServe also writes ``hf://org/name:rev``) and a bare ``org/name``
are fetched from wherever the client's ``HF_ENDPOINT`` points: the private hub when it is
the hub, else the public one. ``https://`` URLs to the hub or to huggingface.co are read the
same way (``/org/name[/tree|resolve/rev]``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

PUBLIC_HOSTS = frozenset({"huggingface.co", "www.huggingface.co", "hf.co"})
# A Hugging Face repo id: one or two segments of letters, digits, '-', '_', '.'.
REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?")
SCHEME = re.compile(r"([a-z][a-z0-9+.-]{0,31})://")
REVISION = re.compile(r"[A-Za-z0-9._-]{1,128}")


class Where(StrEnum):
    """Where the referenced bytes come from."""

    HUB = "hub"  # the private hub: decided by the registry
    PUBLIC = "public"  # the public Hugging Face hub: a shadow model
    OTHER = "other"  # another scheme: allowed only when the policy names it
    INVALID = "invalid"  # not a reference the webhook can read


@dataclass(frozen=True)
class Target:
    """``where`` the reference points; ``name`` (repo id) and ``revision`` (None: floating
    ``main``) for hub references, ``scheme`` for others."""

    where: Where
    scheme: str
    name: str = ""
    revision: str | None = None


def same_endpoint(a: str | None, b: str | None) -> bool:
    """Whether two hub URLs name the same endpoint (scheme, host, port, path)."""
    if not a or not b:
        return False
    return _endpoint(a) == _endpoint(b)


def target(value: str, endpoint: str | None, hub: str | None) -> Target:
    """What ``value`` names, for a client whose HF_ENDPOINT is ``endpoint`` (None: unset,
    the public hub) in a cluster whose private hub is ``hub``."""
    match = SCHEME.match(value)
    if match is None:
        return _local(value) if value.startswith((".", "/", "~")) else _repo(value, endpoint, hub)
    scheme = match.group(1)
    if scheme == "hf":
        return _repo(value[match.end() :], endpoint, hub)
    if scheme in ("http", "https"):
        return _url(value, hub)
    return Target(Where.OTHER, scheme)


def _local(value: str) -> Target:
    return Target(Where.OTHER, "file", value)


def _repo(text: str, endpoint: str | None, hub: str | None) -> Target:
    where = Where.HUB if same_endpoint(endpoint, hub) else Where.PUBLIC
    name, revision = _split_revision(text)
    if not REPO_ID.fullmatch(name) or (revision is not None and not REVISION.fullmatch(revision)):
        return Target(Where.INVALID, "hf", text)
    return Target(where, "hf", name, revision)


def _split_revision(text: str) -> tuple[str, str | None]:
    for sep in ("@", ":"):
        name, found, revision = text.partition(sep)
        if found:
            return name, revision
    return text, None


def _url(value: str, hub: str | None) -> Target:
    parts = urlsplit(value)
    host = (parts.hostname or "").lower()
    if hub and value.startswith(hub.rstrip("/") + "/"):
        return _repo_path(value[len(hub.rstrip("/")) + 1 :], Where.HUB)
    if host in PUBLIC_HOSTS:
        return _repo_path(parts.path.lstrip("/"), Where.PUBLIC)
    return Target(Where.OTHER, parts.scheme)


def _repo_path(path: str, where: Where) -> Target:
    """``org/name[/tree|resolve/rev/...]`` of a hub URL."""
    segments = path.split("?", maxsplit=1)[0].split("#", maxsplit=1)[0].split("/")
    name = "/".join(segments[:2])
    revision = segments[3] if len(segments) > 3 and segments[2] in ("tree", "resolve") else None
    if not REPO_ID.fullmatch(name) or (revision is not None and not REVISION.fullmatch(revision)):
        return Target(Where.INVALID, "https", path)
    return Target(where, "hf", name, revision)


def _endpoint(url: str) -> tuple[str, str, int | None, str]:
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        port = -1
    return parts.scheme.lower(), (parts.hostname or "").lower(), port, parts.path.rstrip("/")
