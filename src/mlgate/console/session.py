"""Console sessions: a signed cookie naming the hub token a reviewer logged in with.

The cookie holds ``{sid, token id, principal, expiry}`` signed with HMAC-SHA256 under a key
kept in the hub's data dir, never the token itself: a stolen cookie dies with its 8 hours
and with the token (every request re-checks the token id, so revoking it logs out).
A fresh random ``sid`` is issued at login and logout (session fixation: a sid planted
before login is never the one that is authenticated). CSRF tokens are an HMAC of the sid:
a cross-site form cannot read them, and they change with the session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

COOKIE = "mlgate_console"
# The anonymous session of the login form (its CSRF token) lives in a cookie of its own, so
# that the login page, reached by a cross-site link or the redirect after a forged post,
# never overwrites a reviewer's live session.
LOGIN_COOKIE = "mlgate_console_login"
LIFETIME_SECONDS = 8 * 3600
KEY_FILE = "console-session.key"


@dataclass(frozen=True)
class Session:
    """What a verified cookie says: ``token_id``/``principal`` are None before login."""

    sid: str
    token_id: str | None
    principal: str | None
    expires: int


def session_key(data_dir: Path) -> bytes:
    """The signing key, created 0600 on first use and then shared by every uvicorn worker.

    Written to a private temporary file and hard-linked into place: ``link`` fails if another
    worker won the race, and nobody ever reads a half-written key."""
    path = data_dir / KEY_FILE
    if not path.exists():
        tmp = data_dir / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_bytes()


class Signer:
    """Signs and verifies session cookies and CSRF tokens under one key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, purpose: str, data: bytes) -> str:
        # The purpose prefix keeps a CSRF token from ever verifying as a cookie signature.
        return hmac.new(self._key, purpose.encode() + b"\0" + data, hashlib.sha256).hexdigest()

    def new(self, token_id: str | None = None, principal: str | None = None) -> Session:
        """A session with a fresh random id (at first visit, login and logout)."""
        expires = int(time.time()) + LIFETIME_SECONDS
        return Session(secrets.token_urlsafe(18), token_id, principal, expires)

    def dump(self, session: Session) -> str:
        body = json.dumps(
            [session.sid, session.token_id, session.principal, session.expires],
            separators=(",", ":"),
        ).encode()
        encoded = base64.urlsafe_b64encode(body).decode().rstrip("=")
        return f"{encoded}.{self._mac('session', body)}"

    def load(self, cookie: str | None) -> Session | None:
        """The session a cookie carries, or None when it is absent, forged or expired."""
        if not cookie or cookie.count(".") != 1:
            return None
        encoded, mac = cookie.split(".")
        try:
            body = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except ValueError:
            return None
        if not _same(mac, self._mac("session", body)):
            return None
        sid, token_id, principal, expires = json.loads(body)
        if expires < time.time():
            return None
        return Session(sid, token_id, principal, expires)

    def csrf(self, session: Session) -> str:
        return self._mac("csrf", session.sid.encode())

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return token is not None and _same(token, self.csrf(session))


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison of attacker-sent text: as bytes, since ``compare_digest``
    raises on non-ASCII strings (a 500 instead of a refusal)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode())
