"""Request paths as Hugging Face clients build them, parsed from the raw path.

The client quotes a revision with ``safe=""`` (``refs/pr/1`` arrives as ``refs%2Fpr%2F1``)
and a file name with ``/`` kept. The decoded path the router sees has lost that distinction,
so these functions split the raw path on ``/`` first and decode each segment after.

A repo id is ``name`` or ``org/name`` (the registry's model names). When both readings of
a path are possible (``a/resolve/resolve/main/x``), ``org/name`` wins.

Everything is checked before it reaches the registry: a file path is looked up in the
version's recorded files, never joined to a directory, and ``..``, ``.``, empty segments,
backslashes, control characters (NUL, CR, LF), bad UTF-8 and overlong values are refused
with 400 (path traversal and header injection attempts).
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from fastapi import Request

from mlgate.hub.hf.errors import REPO_NOT_FOUND, HfError, bad_request
from mlgate.registry.errors import IngestRefused
from mlgate.registry.ingest import check_name

MAX_REVISION = 256
MAX_PATH = 1024  # the registry's files.path column
MAX_RAW = 4 * MAX_PATH  # a percent-encoded path is at most three times longer


def raw_segments(request: Request, prefix: str) -> list[str]:
    """The still-encoded ``/`` segments of the request path after ``prefix``."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    if len(raw) > MAX_RAW:
        raise bad_request("the request path is too long")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise bad_request("the request path is not percent-encoded ASCII") from None
    if not text.startswith(prefix):
        raise HfError(404, "not found")
    return text[len(prefix) :].split("/")


def split_repo(segments: list[str], marker: str) -> tuple[str, list[str]]:
    """(repo id, segments after ``marker``) of ``org/name/marker/...`` or ``name/marker/...``."""
    if len(segments) >= 3 and segments[2] == marker:
        return repo_id(segments[:2]), segments[3:]
    if len(segments) >= 2 and segments[1] == marker:
        return repo_id(segments[:1]), segments[2:]
    raise HfError(404, f"expected /{{repo_id}}/{marker}/...", REPO_NOT_FOUND)


def repo_id(segments: list[str]) -> str:
    """A repo id from its one or two raw segments, checked as a registry model name."""
    name = "/".join(decode(s) for s in segments)
    try:
        return check_name(name)
    except IngestRefused as e:
        raise bad_request(str(e)) from None


def revision(segment: str) -> str:
    """A revision from its raw segment (``main``, an alias, a commit id...)."""
    text = decode(segment)
    if not text or len(text) > MAX_REVISION or not text.isprintable():
        raise bad_request(f"invalid revision {text!r}")
    return text


def file_path(segments: list[str]) -> str:
    """A relative file path from its raw segments (each may also hold encoded ``/``)."""
    path = "/".join(decode(s) for s in segments)
    if len(path) > MAX_PATH:
        raise bad_request(f"file path longer than {MAX_PATH} characters")
    for part in path.split("/"):
        if part in ("", ".", "..") or "\\" in part or not part.isprintable():
            raise bad_request(f"invalid file path {path!r}")
    return path


def decode(segment: str) -> str:
    """One percent-decoded segment; bytes that are not UTF-8 are refused."""
    try:
        return unquote_to_bytes(segment).decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("the request path is not UTF-8") from None
