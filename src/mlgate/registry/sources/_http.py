"""Minimal HTTP(S) GET on the standard library, with the hub's redirect and error rules.

Redirects are followed by hand (at most :data:`MAX_REDIRECTS`, http/https only) so that the
``Authorization`` header never leaves the origin it was meant for: the Hub answers LFS files
with a redirect to a CDN, and forwarding the token there would hand it to a third party. The
opener has no file:, ftp: or data: handler, so a redirect can never read local files.
"""

from __future__ import annotations

import http.client
import ssl
from typing import cast
from urllib.error import HTTPError, URLError
from urllib.parse import urljoin, urlsplit
from urllib.request import (
    HTTPDefaultErrorHandler,
    HTTPErrorProcessor,
    HTTPHandler,
    HTTPSHandler,
    OpenerDirector,
    ProxyHandler,
    Request,
)

from mlgate.registry.sources.base import SourceError

MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_STATUS_TEXT = {
    # The Hub also answers 401 for repos that do not exist, so as not to reveal private ones.
    401: "needs authentication or does not exist (pass a token that can read it)",
    403: "is not accessible with this token (private or gated repo)",
    404: "not found",
}
_SCHEMES = ("http", "https")


class HttpStatusError(SourceError):
    """The server answered with an HTTP error status."""

    def __init__(self, message: str, status: int, error_code: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code  # the Hub's X-Error-Code header (e.g. RevisionNotFound)


def _opener() -> OpenerDirector:
    opener = OpenerDirector()
    handlers = (
        ProxyHandler(),  # honours http(s)_proxy / no_proxy like every HTTP client
        HTTPHandler(),
        HTTPSHandler(context=ssl.create_default_context()),
        HTTPDefaultErrorHandler(),  # every non-2xx (redirects included) becomes HTTPError
        HTTPErrorProcessor(),
    )
    for handler in handlers:
        opener.add_handler(handler)
    return opener


_OPENER = _opener()


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of ``url``: credentials are only sent back to the same origin."""
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


def open_url(
    url: str, *, token: str | None, timeout: float, subject: str
) -> http.client.HTTPResponse:
    """The response to ``GET url`` after redirects; :class:`SourceError` naming ``subject``."""
    home = origin(url)
    for _ in range(MAX_REDIRECTS + 1):
        headers = {"User-Agent": "mlgate", "Accept-Encoding": "identity"}
        if token is not None and origin(url) == home:
            headers["Authorization"] = f"Bearer {token}"
        try:
            # The opener has only http/https handlers and redirects are checked: no file: URL.
            request = Request(url, headers=headers)  # noqa: S310
            return cast(http.client.HTTPResponse, _OPENER.open(request, None, timeout))
        except HTTPError as e:
            with e:
                if e.code not in _REDIRECTS:
                    raise _status_error(e, url, subject) from None
                url = _redirect_target(url, e.headers.get("Location"), subject)
        except (OSError, http.client.HTTPException) as e:  # URLError is an OSError
            raise network_error(e, url, timeout, subject) from e
    raise SourceError(f"{subject}: more than {MAX_REDIRECTS} redirects from {url}")


def _redirect_target(url: str, location: str | None, subject: str) -> str:
    if not location:
        raise SourceError(f"{subject}: redirect without a Location from {url}")
    target = urljoin(url, location)
    scheme = urlsplit(target).scheme
    if scheme not in _SCHEMES:
        raise SourceError(f"{subject}: refused redirect from {url} to non-HTTP {target}")
    if scheme == "http" and urlsplit(url).scheme == "https":
        raise SourceError(f"{subject}: refused redirect from HTTPS {url} to plain HTTP {target}")
    return target


def _status_error(e: HTTPError, url: str, subject: str) -> HttpStatusError:
    text = _STATUS_TEXT.get(e.code, "failed on the server" if e.code >= 500 else "refused")
    error_code = e.headers.get("X-Error-Code") if e.headers is not None else None
    return HttpStatusError(f"{subject} {text} at {url} (HTTP {e.code})", e.code, error_code)


def network_error(e: BaseException, url: str, timeout: float, subject: str) -> SourceError:
    """A clear :class:`SourceError` for a connection failure or a timeout."""
    reason = e.reason if isinstance(e, URLError) else e
    if isinstance(reason, TimeoutError):
        return SourceError(f"{subject}: no answer from {url} within {timeout:g} s (timed out)")
    text = getattr(reason, "strerror", None) or str(reason)
    return SourceError(f"{subject}: cannot reach {url}: {text}")


def read_limited(
    response: http.client.HTTPResponse, limit: int, url: str, timeout: float, subject: str
) -> bytes:
    """The whole body, refused once it passes ``limit`` bytes (a listing cannot flood memory)."""
    chunks: list[bytes] = []
    total = 0
    try:
        while chunk := response.read(64 * 1024):
            total += len(chunk)
            if total > limit:
                raise SourceError(f"{subject}: answer from {url} is over {limit} bytes; refused")
            chunks.append(chunk)
    except (OSError, http.client.HTTPException) as e:
        raise network_error(e, url, timeout, subject) from e
    return b"".join(chunks)
