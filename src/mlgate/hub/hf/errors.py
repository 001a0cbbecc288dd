"""Errors the way Hugging Face clients read them.

``huggingface_hub`` (``utils/_http.py: hf_raise_for_status``) picks the exception class from
``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``, ``GatedRepo``)
and shows ``X-Error-Message`` (a HEAD answer has no body) and the JSON body's ``error``.
The messages carry attacker-influenced text (reviewers' reasons, model and file names): in
the header every control, format or non-ASCII character is escaped (``\\n`` stays two
characters, so no header can be split or injected) and the length is bounded.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from mlgate.render.escape import inert

REPO_NOT_FOUND = "RepoNotFound"
REVISION_NOT_FOUND = "RevisionNotFound"
ENTRY_NOT_FOUND = "EntryNotFound"
GATED = "GatedRepo"
COMMIT_HEADER = "X-Repo-Commit"
# Long enough for a reviewer's reason, short enough for any proxy's header limits.
MAX_MESSAGE = 512


class HfError(Exception):
    """An answer other than the file: ``status``, the client's ``code`` (None: a plain
    HTTP error), a message saying why, and the commit when one was resolved (the client
    caches a missing file per commit)."""

    def __init__(
        self, status: int, message: str, code: str | None = None, commit: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.commit = commit


def gated(message: str) -> HfError:
    """The repo exists but this version may not be served (the client's GatedRepoError)."""
    return HfError(403, message, GATED)


def bad_request(message: str) -> HfError:
    """A malformed request: nothing was looked up."""
    return HfError(400, message)


def header_text(text: str) -> str:
    """``text`` as a safe header value: printable ASCII only, bounded."""
    safe = inert(text).encode("ascii", "backslashreplace").decode("ascii")
    return safe if len(safe) <= MAX_MESSAGE else safe[: MAX_MESSAGE - 3] + "..."


def hf_error_response(request: Request, exc: Exception) -> JSONResponse:
    """The response for an :class:`HfError` (registered on the application)."""
    assert isinstance(exc, HfError)
    message = exc.message[: MAX_MESSAGE * 4]
    headers = {"X-Error-Message": header_text(message)}
    if exc.code:
        headers["X-Error-Code"] = exc.code
    if exc.commit:
        headers[COMMIT_HEADER] = exc.commit
    return JSONResponse({"error": message}, status_code=exc.status, headers=headers)
