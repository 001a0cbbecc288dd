"""Upload sessions over a real uvicorn hub and a real ``mlgate worker``: files sent one by one
are ingested as the uploader, identical and scanned (a malicious pickle auto-rejected as a
local ingest rejects it); bad names, oversized files and sessions, wrong digests, other
users' sessions and the wrong role are refused with a 4xx and ingest nothing."""

from __future__ import annotations

import hashlib
import http.client
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hub_api_support import Answer, call, dump, running_hub
from hub_support import registry_url_of
from hubjobs_support import WORKER, wait_until, workers  # noqa: F401
from registry_models import write_benign, write_malicious
from registry_support import as_user

from mlgate.hub.intake_jobs import ingest_upload
from mlgate.hub.runner import WorkerSettings
from mlgate.hub.settings import HubSettings

USERS = ("alice", "pat", "pia", "rob")


@pytest.fixture
def tokens(registry: Any) -> dict[str, str]:
    registry.add_user("pia", "publisher")
    return {u: as_user(registry, u).tokens.create(label="test").secret for u in USERS}


def _open(hub: str, token: str, name: str = "org/up", **extra: Any) -> str:
    answer = call(hub, "POST", "/uploads", {"name": name, **extra}, token=token)
    assert answer.status == 201, answer.body
    assert answer.body["file_count"] == 0 and not answer.body["committed"]
    return str(answer.body["id"])


def _put(hub: str, token: str, upload: str, path: str, data: bytes, sha: str | None = "") -> Answer:
    headers = {"Content-Type": "application/octet-stream"}
    if sha is not None:
        headers["X-Content-SHA256"] = sha or hashlib.sha256(data).hexdigest()
    url = f"/uploads/{upload}/files/{path}"
    return call(hub, "PUT", url, raw=data, headers=headers, token=token)


def _send_folder(hub: str, token: str, upload: str, folder: Path) -> dict[str, str]:
    sent = {}
    for file in sorted(folder.iterdir()):
        answer = _put(hub, token, upload, file.name, file.read_bytes())
        assert answer.status == 201, answer.body
        assert answer.body["size"] == file.stat().st_size
        sent[file.name] = answer.body["sha256"]
    return sent


def _done(hub: str, token: str, key: str) -> Callable[[], Any]:
    def check() -> Any:
        job = call(hub, "GET", f"/jobs/{key}", token=token).body
        assert job["state"] != "failed", job
        return job if job["state"] == "done" else None

    return check


def _sessions(registry: Any) -> list[str]:
    root = registry.data_dir / "uploads"
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []


def test_uploaded_folders_are_ingested_as_the_uploader(
    registry: Any,
    tokens: dict[str, str],
    tmp_path: Path,
    workers,  # noqa: F811
) -> None:
    registry.add_user(WORKER, "publisher")
    benign = write_benign(tmp_path / "tiny")
    (benign / "vocab.txt").write_text("word\n" * 1000)  # over max_body_bytes
    evil = write_malicious(tmp_path / "evil", str(tmp_path / "pwned"))
    pat = tokens["pat"]
    settings = HubSettings(registry.data_dir, registry_url_of(registry), max_body_bytes=1024)
    with running_hub(settings) as hub:
        upload = _open(hub, pat, origin=str(benign))
        sent = _send_folder(hub, pat, upload, benign)
        assert call(hub, "POST", "/uploads", {"name": "x" * 2000}, token=pat).status == 413
        queued = call(hub, "POST", f"/uploads/{upload}/commit", token=pat)
        assert queued.status == 202, queued.body
        assert (queued.body["kind"], queued.body["args"]["actor"]) == ("upload", "pat")
        assert call(hub, "POST", f"/uploads/{upload}/commit", token=pat).body == queued.body
        assert _put(hub, pat, upload, "late.txt", b"late").status == 409  # closed to changes
        assert call(hub, "DELETE", f"/uploads/{upload}", token=pat).status == 409
        assert registry.models() == []  # nothing ingested in a request
        bad = _open(hub, pat, name="org/evil")
        _send_folder(hub, pat, bad, evil)
        rejected = call(hub, "POST", f"/uploads/{bad}/commit", token=pat).body["key"]
        workers(registry)
        done = wait_until(_done(hub, pat, queued.body["key"]), what="the upload job")
        assert (done["result"]["version"], done["result"]["state"]) == ("org/up@1", "scanned")
        wait_until(_done(hub, pat, rejected), what="the malicious upload's job")
    version = registry.show("org/up@1")
    assert (version.ingested_by, version.owner) == ("pat", "pat")
    assert (version.source.kind, version.source.uri) == ("upload", str(benign))
    assert version.source.requested_revision == f"upload:{upload}"
    assert {f.path: f.digest for f in version.files} == sent
    assert sent == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in benign.iterdir()}
    twin = as_user(registry, "pat").ingest(benign, name="org/up-local")  # a local ingest
    assert version.scan_report is not None
    assert (version.risk, version.content_digest) == (twin.risk, twin.content_digest)
    local = as_user(registry, "pat").ingest(evil, name="org/evil-local")
    uploaded = registry.show("org/evil@1")
    assert uploaded.state.value == local.state.value == "rejected"
    assert [d.reason for d in uploaded.decisions] == [d.reason for d in local.decisions]
    assert uploaded.content_digest == local.content_digest
    assert not (tmp_path / "pwned").exists()
    assert _sessions(registry) == []  # removed once ingested
    job = registry.jobs.get(queued.body["key"])  # a retry, e.g. after a killed worker
    again = ingest_upload(registry, job, WorkerSettings(), lambda step, **details: None)
    assert again["version"] == "org/up@1"
    assert [v.number for v in registry.downloads.versions_of("org/up")] == [1]


@pytest.fixture
def small_hub(registry: Any) -> Iterator[str]:
    settings = HubSettings(
        registry.data_dir,
        registry_url_of(registry),
        max_upload_bytes=150,
        max_upload_file_bytes=100,
        max_open_uploads=2,
    )
    with running_hub(settings) as hub:
        yield hub


def test_refused_uploads_change_nothing(
    registry: Any, tokens: dict[str, str], small_hub: str
) -> None:
    hub, pat = small_hub, tokens["pat"]
    before = dump(registry)
    upload = _open(hub, pat)
    assert _put(hub, pat, upload, "config.json", b"{}" * 50).status == 201  # 100 bytes
    refused = {
        "a/../b": 400,  # traversal: refused before any route
        "%2e%2e/x": 400,
        "a%00b": 400,  # control characters
        "a%0d%0aX-Injected:%201": 400,
        "a%5Cb": 422,  # backslash
        "/etc/passwd": 422,  # absolute
        ".git/config": 422,
        "sub/.GIT/hooks/post-checkout": 422,
        "mlgate.sig": 422,  # names the registry serves its own documents under
        "mlgate.bom.cdx.json": 422,
        ".cache/huggingface/download/x.metadata": 422,
        "Config.json": 422,  # same file as config.json on a case-insensitive disk
        "config.json/x": 422,  # a file where a folder would be
        "big.bin": 413,  # 101 bytes: over the per-file limit
    }
    for path, status in refused.items():
        data = b"x" * (101 if path == "big.bin" else 10)
        answer = _put(hub, pat, upload, path, data)
        assert answer.status == status, (path, answer.body)
        assert answer.body["message"]
    assert _chunked(hub, pat, upload, "chunked.bin", 101).status == 413  # no Content-Length
    assert _put(hub, pat, upload, "more.bin", b"y" * 51).status == 413  # over the session
    wrong = _put(hub, pat, upload, "w.bin", b"abc", sha=hashlib.sha256(b"abd").hexdigest())
    assert (wrong.status, wrong.body["error"]) == (422, "IngestRefused")
    assert "does not match X-Content-SHA256" in wrong.body["message"]
    assert _put(hub, pat, upload, "ok.bin", b"z" * 50, sha=None).status == 201  # 150: full
    files = registry.data_dir / "uploads" / upload / "files"
    assert sorted(p.name for p in files.iterdir()) == ["config.json", "ok.bin"]
    assert not list((files.parent / "partial").iterdir())

    for path in ("/uploads", f"/uploads/{upload}/commit"):
        assert call(hub, "POST", path, {"name": "org/up"}).status == 401
    assert call(hub, "POST", "/uploads", {"name": "org/up"}, token=tokens["rob"]).status == 403
    for user in ("rob", "pia"):  # a reader; a publisher who did not open the session
        assert _put(hub, tokens[user], upload, "c.bin", b"c").status == 403
        assert call(hub, "POST", f"/uploads/{upload}/commit", token=tokens[user]).status == 403
        assert call(hub, "DELETE", f"/uploads/{upload}", token=tokens[user]).status == 403
    assert call(hub, "POST", "/uploads", {"name": "../x"}, token=pat).status == 422
    assert call(hub, "POST", "/uploads", {"name": "a", "origin": "x\ny"}, token=pat).status == 422
    empty = _open(hub, pat)
    assert call(hub, "POST", f"/uploads/{empty}/commit", token=pat).status == 422
    assert call(hub, "POST", "/uploads", {"name": "org/up"}, token=pat).status == 422  # 2 open
    assert call(hub, "GET", "/uploads/0123/files/x", token=pat).status in (404, 405)
    assert _put(hub, pat, "0" * 32, "x", b"x").status == 404
    for session in (upload, empty):
        assert call(hub, "DELETE", f"/uploads/{session}", token=pat).status == 200
    assert _put(hub, pat, upload, "x", b"x").status == 404
    assert _sessions(registry) == []
    assert dump(registry) == before


def test_stale_sessions_are_removed_when_one_is_opened(
    registry: Any, tokens: dict[str, str], small_hub: str
) -> None:
    hub = small_hub
    old = _open(hub, tokens["pat"])
    assert _put(hub, tokens["pat"], old, "a.bin", b"a").status == 201
    manifest = registry.data_dir / "uploads" / old / "manifest.json"
    data = json.loads(manifest.read_text())
    data["created_at"] = (datetime.now(UTC) - timedelta(days=1, minutes=1)).isoformat()
    manifest.write_text(json.dumps(data))
    recent = _open(hub, tokens["pia"])
    assert _sessions(registry) == [recent]
    assert _put(hub, tokens["pat"], old, "b.bin", b"b").status == 404


def _chunked(hub: str, token: str, upload: str, path: str, size: int) -> http.client.HTTPResponse:
    """``size`` bytes sent chunked: no Content-Length to refuse them by."""
    host, port = hub.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    chunks = (b"x" * 10 for _ in range(0, size, 10))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"}
    url = f"/api/mlgate/v1/uploads/{upload}/files/{path}"
    conn.request("PUT", url, chunks, headers, encode_chunked=True)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response
