"""Request limits for the whole hub, as ASGI middleware in front of every route.

* A body larger than ``max_body_bytes`` is refused with 413: at once when ``Content-Length``
  says so (nothing is read), else as soon as the streamed body passes the limit. One route
  is exempt: an upload's file (``PUT /api/mlgate/v1/uploads/{id}/files/...``), which
  :mod:`mlgate.hub.uploads` bounds by the upload limits as it streams it to disk.
* Each bearer token (each client address without one) gets ``rate_per_minute`` requests a
  minute, in a token bucket; over it, 429 with ``Retry-After``. Buckets are kept for at most
  ``MAX_CLIENTS`` clients (least recently seen dropped first), so a flood of distinct tokens
  cannot exhaust memory. Limits are per process: with several uvicorn workers, divide.
* Oversized paths (414) and header sets (431), ``.``/``..`` path segments (traversal) and
  control characters (CR/LF: header and log injection) in the path or query are refused
  with 400 before any route sees them.

Every refusal happens before the route runs, so a refused request changes nothing.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlgate.hub.api.errors import error_response
from mlgate.hub.uploads import FILE_ROUTE

MAX_PATH_BYTES = 4096
MAX_HEADER_BYTES = 8 * 1024
MAX_CLIENTS = 10_000
_CONTROL = frozenset(range(0x20)) | {0x7F}


@dataclass(frozen=True)
class Refusal:
    status: int
    kind: str
    message: str
    retry_after: int | None = None


class RateLimiter:
    """Token buckets of ``per_minute`` requests, refilled continuously, one per client key."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.refill = per_minute / 60.0
        self.clock = clock
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str) -> float:
        """0 when ``key`` may go ahead (one request taken), else seconds until it may."""
        now = self.clock()
        level, then = self.buckets.pop(key, (self.capacity, now))
        level = min(self.capacity, level + (now - then) * self.refill)
        wait = 0.0 if level >= 1 else (1 - level) / self.refill
        self.buckets[key] = (level - 1 if wait == 0 else level, now)
        while len(self.buckets) > MAX_CLIENTS:
            self.buckets.popitem(last=False)
        return wait


class RequestLimits:
    """ASGI middleware enforcing the limits above on every HTTP request."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, rate_per_minute: int) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.rate = RateLimiter(rate_per_minute)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = malformed(scope) or self._oversized(scope) or self._throttled(scope)
        if refusal is not None:
            await _refuse(refusal, scope, receive, send)
            return
        await self.app(scope, receive if _uploaded_file(scope) else self._bounded(receive), send)

    def _oversized(self, scope: Scope) -> Refusal | None:
        if _uploaded_file(scope):
            return None
        length = _header(scope, b"content-length")
        if length is None:
            return None
        if not length.isdigit():
            return Refusal(400, "BadRequest", "Content-Length is not a number")
        if int(length) > self.max_body:
            return self._too_large()
        return None

    def _too_large(self) -> Refusal:
        return Refusal(413, "PayloadTooLarge", f"the request body is over {self.max_body} bytes")

    def _throttled(self, scope: Scope) -> Refusal | None:
        wait = self.rate.take(client_key(scope))
        if wait == 0:
            return None
        seconds = max(1, math.ceil(wait))
        return Refusal(429, "RateLimited", f"too many requests: retry in {seconds} s", seconds)

    def _bounded(self, receive: Receive) -> Receive:
        """``receive`` that refuses a streamed body once it passes the limit; FastAPI reads
        the body before the route runs, so nothing has been done with it yet."""
        seen = 0

        async def bounded() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body:
                raise HTTPException(413, self._too_large().message)
            return message

        return bounded


def malformed(scope: Scope) -> Refusal | None:
    """Why the request line or headers are refused outright, if they are."""
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
    if len(raw_path) + len(scope.get("query_string", b"")) > MAX_PATH_BYTES:
        return Refusal(414, "UriTooLong", f"the URL is over {MAX_PATH_BYTES} bytes")
    if sum(len(k) + len(v) for k, v in scope["headers"]) > MAX_HEADER_BYTES:
        return Refusal(431, "HeadersTooLarge", f"the headers are over {MAX_HEADER_BYTES} bytes")
    path = unquote_to_bytes(raw_path)
    if any(segment in (b".", b"..") for segment in path.replace(b"\\", b"/").split(b"/")):
        return Refusal(400, "BadRequest", "'.' and '..' path segments are refused")
    if _CONTROL & set(path) or _CONTROL & set(unquote_to_bytes(scope.get("query_string", b""))):
        return Refusal(400, "BadRequest", "control characters in the URL are refused")
    return None


def _uploaded_file(scope: Scope) -> bool:
    return scope["method"] == "PUT" and FILE_ROUTE.match(scope["path"]) is not None


def client_key(scope: Scope) -> str:
    """The rate-limit bucket: the bearer token (hashed: the key is kept in memory) or, for
    requests without one, the client address."""
    authorization = _header(scope, b"authorization")
    if authorization:
        return "token:" + hashlib.sha256(authorization.encode("latin-1")).hexdigest()
    client = scope.get("client")
    return f"addr:{client[0] if client else 'unknown'}"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            text: str = value.decode("latin-1").strip()
            return text
    return None


async def _refuse(refusal: Refusal, scope: Scope, receive: Receive, send: Send) -> None:
    retry = refusal.retry_after
    headers = {"Retry-After": str(retry)} if retry is not None else {}
    response = error_response(refusal.status, refusal.kind, refusal.message, **headers)
    await response(scope, receive, send)
