"""The CLI's remote mode: :class:`RemoteRegistry` speaks the hub's management API and
returns the registry's own records (``Version``, ``ModelSummary``, ``StateChange``, audit
verification...), so ``mlgate ... --hub URL`` renders exactly what the local mode does.

Standard library only (the CLI stays light). Bounded: every response is read up to
:data:`MAX_RESPONSE_BYTES` (audit lines up to :data:`MAX_LINE_BYTES`) within a timeout. The
token goes in the ``Authorization`` header to the hub's own origin only (redirects are not
followed) and never into a message. Errors come back as the registry's error classes, named
by the API's ``{"error": kind, "message"}`` body. ``ingest`` of a local file or folder
uploads it (:mod:`mlgate.hub.uploads`), streamed from disk, file by file.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, urlsplit

from mlgate.hub.commits import commit_id
from mlgate.hub.records import (
    checkpoint_from_json,
    model_from_json,
    new_token_from_json,
    token_from_json,
    verification_from_json,
    version_from_json,
)
from mlgate.hub.settings import API_PREFIX
from mlgate.registry import audit, errors
from mlgate.registry.decisions import pending_reason
from mlgate.registry.downloads import materialise, require_served
from mlgate.registry.ingest import HubOptions, check_name, default_name, stage
from mlgate.registry.lineage import Affected, BulkRevocation, Derivation
from mlgate.registry.policy import RegistryPolicy
from mlgate.registry.records import FileRecord, ModelSummary, StateChange, Version
from mlgate.registry.roles import Role
from mlgate.registry.sources import SourceLimits
from mlgate.registry.tokens import NewToken, TokenInfo

MAX_RESPONSE_BYTES = 64 * 1024 * 1024
MAX_LINE_BYTES = 1024 * 1024
TIMEOUT = 60.0
SLOW_TIMEOUT = 3600.0  # ingest, scan and publish hash, scan or sign whole models
DOWNLOAD_CHUNK = 1024 * 1024
JOB_POLL = 0.25  # seconds between looks at a background job's state
_BLOCK = 1024 * 1024  # bytes per send of a streamed body
WORKER_WAIT = 60.0  # a job no worker has taken by then: say so rather than wait an hour
_KINDS: dict[str, type[errors.RegistryError]] = {
    cls.__name__: cls
    for cls in (
        errors.NotFound,
        errors.PermissionDenied,
        errors.Unauthenticated,
        errors.TransitionRefused,
        errors.IngestRefused,
    )
}


@dataclass(frozen=True)
class FileBody:
    """A request body sent as it is read from ``stream`` (an upload), not as JSON."""

    stream: BinaryIO
    headers: dict[str, str]


class HubClient:
    """JSON over HTTP(S) to one hub's ``/api/mlgate/v1``, as the holder of ``token``."""

    def __init__(self, url: str, token: str | None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise errors.RegistryError(f"--hub must be an http(s):// URL, not {url!r}")
        if token is not None and not token.isprintable():
            raise errors.RegistryError("the hub token holds control characters: check it")
        self.url = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self.scheme, self.host, self.port = parts.scheme, parts.hostname, parts.port
        self.root = parts.path.rstrip("/")
        self.prefix = self.root + API_PREFIX
        self.token = token

    def send_file(self, path: str, local: Path) -> Any:
        """``PUT`` the file ``local`` as the body of ``path``, streamed, with its SHA-256
        (``X-Content-SHA256``: the hub refuses what it did not receive intact)."""
        with local.open("rb") as f:
            sha256 = hashlib.file_digest(f, "sha256").hexdigest()
            size = f.tell()
            f.seek(0)
            headers = {
                "Content-Type": "application/octet-stream",
                "Content-Length": str(size),
                "X-Content-SHA256": sha256,
            }
            return self.call("PUT", path, FileBody(f, headers))

    def call(self, method: str, path: str, body: Any = None, *, timeout: float = TIMEOUT) -> Any:
        """The JSON answer of ``method path``; the registry's error when the hub refuses."""
        with self._exchange(method, path, body, timeout) as response:
            data = response.read(MAX_RESPONSE_BYTES + 1)
        if len(data) > MAX_RESPONSE_BYTES:
            raise errors.RegistryError(f"the hub's answer is over {MAX_RESPONSE_BYTES} bytes")
        return _json(data)

    def download(self, path: str, target: Path, size: int, sha256: str) -> None:
        """Stream the file at ``path`` (a Hugging Face ``resolve`` URL path) into the new file
        ``target``, refusing more than ``size`` bytes or other content than ``sha256``."""
        connection = self._connection(TIMEOUT)
        try:
            connection.request("GET", self.root + path, None, self._headers())
            response = connection.getresponse()
            if response.status != 200:
                raise _hub_refusal(response)
            _stream_verified(response, target, size, sha256, path)
        except (OSError, http.client.HTTPException) as e:
            raise errors.RegistryError(f"cannot download {path} from the hub: {_reason(e)}") from e
        finally:
            connection.close()

    @contextmanager
    def lines(self, path: str) -> Iterator[Iterator[str]]:
        """The JSON lines of ``GET path`` as they arrive, each at most ``MAX_LINE_BYTES``."""
        with self._exchange("GET", path, None, TIMEOUT) as response:
            yield _read_lines(response)

    @contextmanager
    def _exchange(
        self, method: str, path: str, body: Any, timeout: float
    ) -> Iterator[http.client.HTTPResponse]:
        connection = self._connection(timeout)
        try:
            response = self._send(connection, method, path, body)
            if response.status >= 300:
                raise _refusal(response)
            yield response
        except (OSError, http.client.HTTPException) as e:
            raise errors.RegistryError(f"cannot reach the hub at {self.url}: {_reason(e)}") from e
        finally:
            connection.close()

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self.scheme == "https":
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout, blocksize=_BLOCK
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout, blocksize=_BLOCK)

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "mlgate"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def _send(
        self, connection: http.client.HTTPConnection, method: str, path: str, body: Any
    ) -> http.client.HTTPResponse:
        headers = self._headers()
        payload: bytes | BinaryIO | None = None
        if isinstance(body, FileBody):
            payload = body.stream
            headers.update(body.headers)
        elif body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        connection.request(method, self.prefix + path, payload, headers)
        return connection.getresponse()


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise errors.RegistryError(f"the hub sent something that is not JSON: {e}") from e


def _read_lines(response: http.client.HTTPResponse) -> Iterator[str]:
    while line := response.readline(MAX_LINE_BYTES + 1):
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            raise errors.RegistryError(f"the hub sent a line over {MAX_LINE_BYTES} bytes")
        yield line.decode("utf-8", "surrogateescape").rstrip("\n")


def _refusal(response: http.client.HTTPResponse) -> errors.RegistryError:
    """The registry error the hub's error body names (its message as the hub worded it)."""
    data = response.read(MAX_LINE_BYTES)
    try:
        body = json.loads(data)
        kind, message = str(body["error"]), str(body["message"])
    except (ValueError, UnicodeDecodeError, KeyError, TypeError):
        return errors.RegistryError(f"the hub answered HTTP {response.status}")
    return _KINDS.get(kind, errors.RegistryError)(message)


def _hub_refusal(response: http.client.HTTPResponse) -> errors.RegistryError:
    """A refused file download: the Hugging Face routes say why in ``X-Error-Message``."""
    why = response.getheader("X-Error-Message") or f"HTTP {response.status}"
    kind = errors.TransitionRefused if response.status == 403 else errors.RegistryError
    return kind(f"the hub refused the download: {why}")


def _stream_verified(
    response: http.client.HTTPResponse, target: Path, size: int, sha256: str, path: str
) -> None:
    digest = hashlib.sha256()
    written = 0
    with target.open("xb") as out:
        while chunk := response.read(DOWNLOAD_CHUNK):
            written += len(chunk)
            if written > size:
                raise errors.RegistryError(f"{path}: the hub sent more than {size} bytes")
            digest.update(chunk)
            out.write(chunk)
    if written != size or digest.hexdigest() != sha256:
        raise errors.RegistryError(
            f"{path}: the hub sent {written} bytes with SHA-256 {digest.hexdigest()[:16]}..., "
            f"not the {size} bytes of {sha256[:16]}... the registry records"
        )


def _reason(e: BaseException) -> str:
    if isinstance(e, TimeoutError):
        return "no answer in time (timed out)"
    return getattr(e, "strerror", None) or str(e) or type(e).__name__


def _ref(ref: str) -> str:
    return quote(ref, safe="/@")


class RemoteTokens:
    """``registry.tokens`` of a remote hub: create, list and revoke API tokens."""

    def __init__(self, client: HubClient) -> None:
        self.client = client

    def create(
        self,
        principal: str | None = None,
        *,
        label: str,
        roles: str | frozenset[Role] | None = None,
        expires_in: timedelta | None = None,
    ) -> NewToken:
        """A new token of ``principal`` (default: the caller); its secret, shown once."""
        days = expires_in.total_seconds() / 86400 if expires_in is not None else None
        wanted = roles if roles is None or isinstance(roles, str) else ",".join(sorted(roles))
        body = {"label": label, "principal": principal, "roles": wanted, "expires_in_days": days}
        return new_token_from_json(self.client.call("POST", "/tokens", body))

    def list(self, principal: str | None = None) -> list[TokenInfo]:
        """Tokens of ``principal`` (default: the caller's own; everyone's for ``"*"``)."""
        query = f"?principal={quote(principal, safe='')}" if principal else ""
        return [token_from_json(t) for t in self.client.call("GET", f"/tokens{query}")]

    def revoke(self, token_id: str) -> TokenInfo:
        """Revoke a token for good."""
        return token_from_json(self.client.call("DELETE", f"/tokens/{quote(token_id, safe='')}"))


class RemoteLineage:
    """``registry.lineage`` of a remote hub: built-from facts, affected versions, bulk revoke."""

    def __init__(self, client: HubClient) -> None:
        self.client = client

    def built_from(self, ref: str) -> tuple[Derivation, ...]:
        body = self.client.call("GET", f"/lineage/{_ref(ref)}")
        return tuple(Derivation(**d) for d in body["built_from"])

    def affected(self, kind: str, value: str) -> tuple[Affected, ...]:
        query = f"kind={quote(kind, safe='')}&value={quote(value, safe='')}"
        body = self.client.call("GET", f"/affected?{query}")
        return tuple(Affected(**{**a, "aliases": tuple(a["aliases"])}) for a in body["affected"])

    def revoke_affected(self, kind: str, value: str, reason: str) -> BulkRevocation:
        body = {"kind": kind, "value": value, "reason": reason}
        done = self.client.call("POST", "/affected/revoke", body)
        skipped = tuple((s["ref"], s["why"]) for s in done["skipped"])
        return BulkRevocation(tuple(done["revoked"]), skipped)


class RemoteRegistry:
    """The :class:`~mlgate.registry.service.Registry` methods the CLI calls, over the API."""

    def __init__(self, url: str, token: str | None) -> None:
        self.client = HubClient(url, token)
        self.tokens = RemoteTokens(self.client)
        self.lineage = RemoteLineage(self.client)

    @property
    def policy(self) -> RegistryPolicy:
        return RegistryPolicy.from_json(json.dumps(self.client.call("GET", "/policy")))

    def set_policy(self, policy: RegistryPolicy) -> None:
        self.client.call("PUT", "/policy", json.loads(policy.to_json()))

    def add_user(self, name: str, roles: str | frozenset[Role]) -> None:
        text = roles if isinstance(roles, str) else ",".join(sorted(roles))
        self.client.call("PUT", f"/users/{quote(name, safe='')}", {"roles": text})

    def users(self) -> dict[str, tuple[str, ...]]:
        return {u["name"]: tuple(u["roles"]) for u in self.client.call("GET", "/users")}

    def ingest(
        self,
        source: str | Path,
        *,
        name: str | None = None,
        owner: str | None = None,
        hub: HubOptions | None = None,
        scan: bool = True,
    ) -> Version:
        """Ingest ``hf://ORG/NAME[@REV]`` from the hub's upstream (``hub`` is the hub's own
        setting remotely, not the caller's), or a local file or folder by uploading it."""
        if not str(source).startswith("hf://"):
            return self._upload(str(source), name=name, owner=owner, scan=scan)
        body = {"source": str(source), "name": name, "owner": owner, "scan": scan}
        return self._job_version("/ingest", body)

    def _upload(self, source: str, *, name: str | None, owner: str | None, scan: bool) -> Version:
        """Send the files a local ingest of ``source`` takes (the same walk: links, special
        files, ``.git``... and the same refusals), each with its SHA-256, in an upload
        session; commit it and wait for the hub's ingest job. A failed upload is discarded."""
        # A local source is read where it is: the staging folder is for hub downloads only.
        staged = stage(source, HubOptions(), Path(tempfile.gettempdir()), SourceLimits())
        model = check_name(name or default_name(staged))
        body = {"name": model, "owner": owner, "scan": scan, "origin": staged.uri}
        session = f"/uploads/{quote(self.client.call('POST', '/uploads', body)['id'], safe='')}"
        try:
            for item in staged.files:
                self.client.send_file(f"{session}/files/{quote(item.path, safe='/')}", item.local)
        except BaseException:
            with suppress(errors.RegistryError):
                self.client.call("DELETE", session)
            raise
        return self._job_version(f"{session}/commit", None)

    def scan(self, ref: str) -> Version:
        return self._job_version(f"/rescan/{_ref(ref)}", None)

    def approve(self, ref: str, reason: str) -> Version:
        return self._version("POST", f"/approve/{_ref(ref)}", {"reason": reason})

    def pending_reason(self, version: Version) -> str | None:
        return pending_reason(version, self.policy) if version.state.value == "scanned" else None

    def reject(self, ref: str, reason: str) -> Version:
        return self._version("POST", f"/reject/{_ref(ref)}", {"reason": reason})

    def publish(self, ref: str, *, alias: str | None = None) -> Version:
        return self._version("POST", f"/publish/{_ref(ref)}", {"alias": alias}, SLOW_TIMEOUT)

    def deprecate(self, ref: str, reason: str) -> Version:
        return self._version("POST", f"/deprecate/{_ref(ref)}", {"reason": reason})

    def revoke(self, ref: str, reason: str) -> Version:
        return self._version("POST", f"/revoke/{_ref(ref)}", {"reason": reason})

    def set_alias(self, name: str, alias: str, ref: str) -> Version:
        body = {"alias": alias, "version": ref}
        return self._version("POST", f"/alias/{_ref(name)}", body)

    def rollback(self, name: str, alias: str, to: str | None = None) -> Version:
        return self._version("POST", f"/rollback/{_ref(name)}", {"alias": alias, "to": to})

    def pull(self, ref: str, dest: Path) -> Version:
        """Download a served version through the hub's file routes (each download recorded
        there as the token's owner), checking every file's digest, plus the signature."""
        version = self.show(ref)
        require_served(version)
        commit = commit_id(version)

        def fetch(f: FileRecord, target: Path) -> None:
            path = f"/{quote(version.model)}/resolve/{commit}/{quote(f.path)}"
            self.client.download(path, target, f.size, f.digest)

        materialise(dest, version, fetch)
        return version

    def show(self, ref: str) -> Version:
        return self._version("GET", f"/versions/{_ref(ref)}", None)

    def models(self) -> list[ModelSummary]:
        return [model_from_json(m) for m in self.client.call("GET", "/models")]

    def history(self, name: str) -> tuple[StateChange, ...]:
        changes = self.client.call("GET", f"/history/{_ref(name)}")
        return tuple(StateChange(**c) for c in changes)

    def audit_verify(self, public_key: Any = None) -> audit.AuditVerification:
        """The hub's own verification, or with ``public_key`` (a key the caller trusts) the
        log fetched and verified here, so a hub that lies cannot pass it."""
        if public_key is None:
            return verification_from_json(self.client.call("GET", "/audit/verify"))
        with tempfile.TemporaryDirectory() as tmp:
            export = Path(tmp) / "audit.jsonl"
            with export.open("w", encoding="utf-8", errors="surrogateescape") as f:
                f.writelines(line + "\n" for line in self.audit_export())
            entries, points = audit.read_export(export)
        return audit.verify_log(entries, points, public_key)

    def audit_export(self) -> Iterator[str]:
        with self.client.lines("/audit/export") as lines:
            yield from lines

    def audit_checkpoint(self) -> audit.Checkpoint:
        return checkpoint_from_json(self.client.call("POST", "/audit/checkpoint"))

    def _job_version(self, path: str, body: Any) -> Version:
        """Submit a background job (ingest, scan) and wait for it: the version it made."""
        job = self.client.call("POST", path, body)
        started = time.monotonic()
        while job["state"] not in ("done", "failed"):
            waited = time.monotonic() - started
            if job["state"] == "queued" and not job["attempts"] and waited > WORKER_WAIT:
                raise errors.RegistryError(
                    f"no worker took job {job['key']} in {WORKER_WAIT:g} s: is `mlgate worker` "
                    "(or the worker `mlgate serve` starts) running? The job stays queued."
                )
            if waited > SLOW_TIMEOUT:
                raise errors.RegistryError(f"job {job['key']} unfinished after {waited:.0f} s")
            time.sleep(JOB_POLL)
            job = self.client.call("GET", f"/jobs/{quote(job['key'], safe='/:@')}")
        if job["state"] == "failed":
            raise errors.RegistryError(f"{job['kind']} failed: {job['error']}")
        return self.show(str(job["result"]["version"]))

    def _version(self, method: str, path: str, body: Any, timeout: float = TIMEOUT) -> Version:
        return version_from_json(self.client.call(method, path, body, timeout=timeout))
