"""The hub serves published models to the real Hugging Face clients (huggingface_hub,
the ``hf`` CLI, transformers) over a real uvicorn server, and refuses everything else in
the clients' own terms. Registry on SQLite and on PostgreSQL where the database matters."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx2
import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import http_get
from registry_models import release
from registry_support import as_user

from mlgate.cli import main
from mlgate.hub.commits import commit_id
from mlgate.registry.errors import IngestRefused
from mlgate.registry.policy import RegistryPolicy

if TYPE_CHECKING:
    from hub_support import Hub

pytest_plugins = ["hub_support"]
sqlite_only = pytest.mark.parametrize("registry_url", ["sqlite"], indirect=True)
BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def _hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No token, cache or endpoint of the caller's environment applies."""
    for name in ("HF_TOKEN", "HF_ENDPOINT", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")


def client_env(hub: Hub, user: str | None, tmp_path: Path) -> dict[str, str]:
    """The environment of a client process pointed at the hub."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "MLGATE_"))}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf-proc"), HF_HUB_DISABLE_TELEMETRY="1")
    if user:
        env["HF_TOKEN"] = hub.token(user)
    return env


def run_client(hub: Hub, tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """A client process run as rob against the hub."""
    env = client_env(hub, "rob", tmp_path)
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180, check=False)


def downloads_by(hub: Hub, ref: str) -> list[tuple[str, str]]:
    return [(d.actor, d.path) for d in hub.registry.show(ref).downloads]


# -- unmodified clients download published models ------------------------------------------


def test_clients_download_a_published_model(hub: Hub, tmp_path: Path) -> None:
    version = hub.publish("org/tiny")
    token = hub.token("rob")
    commit = commit_id(version)

    path = hf_hub_download(
        "org/tiny", "model.safetensors", endpoint=hub.url, token=token, cache_dir=tmp_path / "c"
    )
    assert Path(path).read_bytes() == (hub.folder("org/tiny") / "model.safetensors").read_bytes()
    assert f"snapshots/{commit}/model.safetensors" in path

    api = HfApi(endpoint=hub.url, token=token)
    info = api.model_info("org/tiny", files_metadata=True)
    assert (info.id, info.sha) == ("org/tiny", commit)
    by_name = {s.rfilename: s for s in info.siblings or []}
    assert set(by_name) == {*(f.path for f in version.files), "mlgate.sig"}  # BOM: by name
    for f in version.files:
        lfs = by_name[f.path].lfs
        assert by_name[f.path].size == f.size and lfs is not None and lfs.sha256 == f.digest
    assert sorted(api.list_repo_files("org/tiny")) == sorted(by_name)
    assert downloads_by(hub, version.ref) == [("rob", "model.safetensors")]

    head = httpx2.head(
        f"{hub.url}/org/tiny/resolve/main/config.json", headers={"Authorization": f"Bearer {token}"}
    )
    assert head.status_code == 200 and head.headers["x-repo-commit"] == commit
    assert not [h for h in head.headers if h.lower().startswith("x-xet")]
    assert "xet" not in head.headers.get("link", "")
    assert downloads_by(hub, version.ref) == [("rob", "model.safetensors")]  # HEAD: no record


@sqlite_only
def test_concurrent_downloads_are_all_recorded_across_an_audit_checkpoint(hub: Hub) -> None:
    from concurrent.futures import ThreadPoolExecutor

    version = hub.publish("org/tiny")
    url = f"{hub.url}/org/tiny/resolve/main/config.json"
    auth = {"Authorization": f"Bearer {hub.token('rob')}"}
    # More requests at once than the database pool's 15 connections.
    with httpx2.Client(headers=auth) as client, ThreadPoolExecutor(32) as pool:
        codes = list(pool.map(lambda _: client.get(url, timeout=20).status_code, range(60)))
    assert codes == [200] * 60
    assert len(downloads_by(hub, version.ref)) == 60
    audit = hub.registry.audit_verify()
    assert audit.ok and audit.checkpoints >= 1  # signed among the downloads (every 50)


@sqlite_only
def test_reads_need_a_token_unless_policy_allows_anonymous(hub: Hub, tmp_path: Path) -> None:
    version = hub.publish("org/tiny")
    with pytest.raises(HfHubHTTPError, match="a token is required") as refused:
        hf_hub_download("org/tiny", "config.json", endpoint=hub.url, cache_dir=tmp_path / "c")
    assert refused.value.response is not None and refused.value.response.status_code == 401
    with pytest.raises(HfHubHTTPError, match="unknown token"):
        HfApi(endpoint=hub.url, token="mlg_0123456789abcdef_" + "A" * 43).model_info("org/tiny")

    hub.registry.add_user("anonymous", "reader")
    hub.registry.set_policy(RegistryPolicy(anonymous_reads=True))
    path = hf_hub_download("org/tiny", "config.json", endpoint=hub.url, cache_dir=tmp_path / "d")
    assert json.loads(Path(path).read_text()) == {"model_type": "bert"}
    assert downloads_by(hub, version.ref) == [("anonymous", "config.json")]


@sqlite_only
def test_snapshot_carries_the_registry_signature_and_bom(hub: Hub, tmp_path: Path) -> None:
    version = hub.publish("org/tiny")
    token = hub.token("rob")
    model = tmp_path / "model"
    # As `hf download --local-dir` leaves it: real files plus the client's .cache/huggingface/.
    snapshot_download("org/tiny", endpoint=hub.url, token=token, local_dir=model)
    assert (model / ".cache" / "huggingface").is_dir()
    assert (model / "mlgate.sig").read_text() == version.signature
    assert not (model / "mlgate.bom.cdx.json").exists()  # not listed: not model content
    bom = hf_hub_download(
        "org/tiny", "mlgate.bom.cdx.json", endpoint=hub.url, token=token, cache_dir=tmp_path / "c"
    )
    assert json.loads(Path(bom).read_text()) == hub.registry.show(version.ref).bom
    # The gate checks the folder as downloaded, with the served signature.
    admit = ["admit", str(model), "--data-dir", str(hub.registry.data_dir), "--as", "rob"]
    assert main(admit) == 0
    # Only the client's own bookkeeping is left out: anything else in its folder counts.
    for extra in (
        "extra.pkl",
        ".cache/huggingface/download/x.pkl",
        ".cache/huggingface/a.lock",
        ".cache/huggingface/trees/x.json",
    ):
        (model / extra).write_bytes(b"\x80\x04N.")
        assert main(admit) == 1, extra
        (model / extra).unlink()
    with (model / "model.safetensors").open("r+b") as f:
        f.seek(-1, os.SEEK_END)
        f.write(b"\x01")
    assert main(admit) == 1


@sqlite_only
def test_hf_cli_downloads_a_model(hub: Hub, tmp_path: Path) -> None:
    hub.publish("org/tiny")
    out = tmp_path / "out"
    done = run_client(
        hub, tmp_path, str(BIN / "hf"), "download", "org/tiny", "--local-dir", str(out)
    )
    assert done.returncode == 0, done.stderr
    assert (out / "model.safetensors").read_bytes() == (
        hub.folder("org/tiny") / "model.safetensors"
    ).read_bytes()
    assert (out / "mlgate.sig").is_file()


_LOAD = """
import sys
from transformers import AutoModel
from huggingface_hub.errors import GatedRepoError
model = AutoModel.from_pretrained("org/bert")
print("loaded", sum(p.numel() for p in model.parameters()))
try:
    AutoModel.from_pretrained("org/held")
except OSError as e:
    cause = e.__cause__ or e.__context__
    print("refused", type(cause).__name__, str(e).replace("\\n", " "))
"""


@sqlite_only
def test_transformers_loads_a_published_model_and_not_a_quarantined_one(
    hub: Hub, tmp_path: Path
) -> None:
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=32, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=16, max_position_embeddings=16,
    )  # fmt: skip
    folder = tmp_path / "bert"
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    expected = sum(p.numel() for p in BertModel(config).parameters())
    release(hub.registry, folder, "org/bert")
    as_user(hub.registry, "pat").ingest(folder, name="org/held", scan=False)
    done = run_client(hub, tmp_path, sys.executable, "-c", _LOAD)
    assert done.returncode == 0, done.stderr
    assert f"loaded {expected}" in done.stdout
    assert "refused GatedRepoError" in done.stdout
    assert "org/held@1 is quarantined, pending scan and review" in done.stdout


# -- revisions -------------------------------------------------------------------------------


@sqlite_only
def test_main_aliases_and_commit_ids_resolve_to_versions(hub: Hub) -> None:
    first = hub.publish("org/tiny", seed=1, alias="production")
    second = hub.publish("org/tiny", seed=2)
    api = HfApi(endpoint=hub.url, token=hub.token("rob"))
    assert api.model_info("org/tiny").sha == commit_id(second)
    assert api.model_info("org/tiny", revision="production").sha == commit_id(first)
    assert api.model_info("org/tiny", revision=commit_id(first)).sha == commit_id(first)
    assert len({commit_id(first), commit_id(second)}) == 2
    for unknown in ("refs/pr/1", "staging", "0" * 40, "v1"):
        with pytest.raises(RevisionNotFoundError):
            api.model_info("org/tiny", revision=unknown)
    hub.registry.revoke(second.ref, "bad weights")
    assert api.model_info("org/tiny").sha == commit_id(first)  # main: newest still served
    with pytest.raises(GatedRepoError, match="org/tiny@2 was revoked by alice: bad weights"):
        api.model_info("org/tiny", revision=commit_id(second))


def test_unservable_versions_raise_the_gated_error_with_the_reason(
    hub: Hub, tmp_path: Path
) -> None:
    hub.quarantine("org/held")
    hub.scanned("org/waiting")
    hub.reject("org/refused", "licence forbids production use")
    hub.revoke("org/withdrawn", "CVE-2099-0001 in the tokenizer")
    expected = {
        "org/held": "org/held@1 is quarantined, pending scan and review",
        "org/waiting": "org/waiting@1 is scanned (risk: info), pending review",
        "org/refused": "org/refused@1 was rejected by rita: licence forbids production use",
        "org/withdrawn": "org/withdrawn@1 was revoked by alice: CVE-2099-0001 in the tokenizer",
    }
    token = hub.token("rob")
    for repo, reason in expected.items():
        with pytest.raises(GatedRepoError, match=re.escape(reason)):
            hf_hub_download(repo, "config.json", endpoint=hub.url, token=token, cache_dir=tmp_path)
        with pytest.raises(GatedRepoError, match=re.escape(reason)):
            HfApi(endpoint=hub.url, token=token).model_info(repo)
    hub.publish("org/tiny")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(
            "org/none", "config.json", endpoint=hub.url, token=token, cache_dir=tmp_path
        )
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(
            "org/tiny", "nothing.bin", endpoint=hub.url, token=token, cache_dir=tmp_path
        )
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(
            "org/tiny", "config.json", revision="nope", endpoint=hub.url, token=token,
            cache_dir=tmp_path,
        )  # fmt: skip


@sqlite_only
def test_a_reason_cannot_inject_headers(hub: Hub) -> None:
    hub.reject("org/evil", "bad\r\nX-Injected: 1\r\n\r\n<html>\u202e\u00e9\u4e2d")
    response = httpx2.get(
        f"{hub.url}/org/evil/resolve/main/config.json",
        headers={"Authorization": f"Bearer {hub.token('rob')}"},
    )
    assert response.status_code == 403 and response.headers["x-error-code"] == "GatedRepo"
    assert "x-injected" not in response.headers
    message = response.headers["x-error-message"]
    assert message.isascii() and message.isprintable()
    assert "bad\\r\\nX-Injected: 1\\r\\n\\r\\n<html>\\u202e\\xe9\\u4e2d" in message
    assert "bad\r\nX-Injected: 1" in response.json()["error"]  # the JSON body keeps the text


@sqlite_only
@pytest.mark.parametrize("name", ["mlgate.bom.cdx.json", "mlgate.sig"])
def test_a_model_holding_a_name_the_hub_serves_is_refused(
    hub: Hub, name: str
) -> None:
    folder = hub.folder("org/shadow")
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text('{"forged": true}')
    with pytest.raises(IngestRefused, match=re.escape(name)):
        hub.registry.ingest(folder, name="org/shadow")


# -- ranges, listings, malformed requests ----------------------------------------------------


@sqlite_only
def test_ranges_and_a_resumed_download_give_identical_bytes(hub: Hub, tmp_path: Path) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    folder = hub.folder("org/big")
    weights = np.random.default_rng(7).standard_normal((700, 1024)).astype(np.float32)
    save_file({"w": weights}, str(folder / "model.safetensors"))  # ~2.9 MB: several chunks
    version = release(hub.registry, folder, "org/big")
    data = (folder / "model.safetensors").read_bytes()
    auth = {"Authorization": f"Bearer {hub.token('rob')}"}
    url = f"{hub.url}/org/big/resolve/main/model.safetensors"

    partial = tmp_path / "partial"
    partial.write_bytes(data[:1_234_567])
    with partial.open("ab") as f:  # the client's own resume path (http_get with resume_size)
        http_get(url, f, resume_size=1_234_567, headers=auth, expected_size=len(data))
    assert partial.read_bytes() == data

    middle = httpx2.get(url, headers={**auth, "Range": "bytes=1000-1999999"})
    assert middle.status_code == 206 and middle.content == data[1000:2_000_000]
    assert middle.headers["content-range"] == f"bytes 1000-1999999/{len(data)}"
    tail = httpx2.get(url, headers={**auth, "Range": "bytes=-100"})
    assert tail.content == data[-100:]
    assert httpx2.get(url, headers={**auth, "Range": f"bytes={len(data)}-"}).status_code == 416
    assert httpx2.get(url, headers={**auth, "Range": "bytes=0-9"}).content == data[:10]
    # Counted: the request from byte 0 only; resumes and later ranges are the same download.
    assert downloads_by(hub, version.ref) == [("rob", "model.safetensors")]


@sqlite_only
def test_tree_listing_pages_through_the_link_header(hub: Hub) -> None:
    folder = hub.folder("org/deep")
    for name in ("a/x.json", "a/b/y.json", "a/b/z.json", "c/w.json"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("{}")
    version = release(hub.registry, folder, "org/deep")
    hub.app.state.hf_tree_page_size = 2
    api = HfApi(endpoint=hub.url, token=hub.token("rob"))
    files = {f.path for f in version.files} | {"mlgate.sig"}
    recursive = list(api.list_repo_tree("org/deep", recursive=True))
    assert {e.path for e in recursive} == files | {"a", "a/b", "c"}
    assert set(api.list_repo_files("org/deep")) == files
    top = {e.path for e in api.list_repo_tree("org/deep")}
    assert top == {"a", "c", "README.md", "config.json", "model.safetensors", "mlgate.sig"}
    under = [e.path for e in api.list_repo_tree("org/deep", path_in_repo="a/b", expand=True)]
    assert under == ["a/b/y.json", "a/b/z.json"]
    expanded = next(iter(api.list_repo_tree("org/deep", path_in_repo="c", expand=True)))
    assert expanded.last_commit is not None and expanded.last_commit.oid == commit_id(version)
    first = httpx2.get(
        f"{hub.url}/api/models/org/deep/tree/main",
        params={"recursive": "true"},
        headers={"Authorization": f"Bearer {hub.token('rob')}"},
    )
    assert len(first.json()) == 2 and f"/tree/{commit_id(version)}?" in first.links["next"]["url"]
    with pytest.raises(EntryNotFoundError):
        list(api.list_repo_tree("org/deep", path_in_repo="nowhere"))


@sqlite_only
@pytest.mark.parametrize(
    "path",
    [
        "/org/tiny/resolve/main/..%2F..%2Fregistry.db",
        "/org/tiny/resolve/main/../../registry.db",
        "/org/tiny/resolve/main/%2Fetc%2Fpasswd",
        "/org/tiny/resolve/main//etc/passwd",
        "/org/tiny/resolve/main/a%5C..%5Cconfig.json",
        "/org/tiny/resolve/main/config.json%00",
        "/org/tiny/resolve/main/config.json%0d%0aX-Injected:%201",
        "/org/tiny/resolve/main%0d%0aX-Injected:%201/config.json",
        "/org/tiny/resolve/main/%ff%fe",
        "/org/tiny/resolve/main/" + "a/" * 3000 + "b",
        "/org/tiny/resolve/" + "m" * 300 + "/config.json",
        "/..%2F..%2Fetc/resolve/main/passwd",
        "/org/ti%00ny/resolve/main/config.json",
        "/org/tiny/resolve/main",
        "/api/models/org/tiny/tree/main?cursor=-1",
        "/api/models/org/tiny/tree/main?cursor=99",
        "/api/models/org/tiny/tree/main?cursor=x",
        "/api/models/org/tiny/tree/main?recursive=maybe",
        "/api/models/org/tiny/tree/main/..",
        "/api/models/org/tiny/revision/main/extra",
        "/api/models/a/b/c/d",
        "/api/models/%ff",
    ],
)
def test_malformed_requests_fail_with_4xx(hub: Hub, path: str) -> None:
    hub.publish("org/tiny")
    target = urlsplit(hub.url)
    conn = http.client.HTTPConnection(target.hostname or "", target.port, timeout=10)
    conn.request("GET", path, headers={"Authorization": f"Bearer {hub.token('rob')}"})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    assert 400 <= response.status < 500, (response.status, body[:200])
    assert response.getheader("x-injected") is None
    assert b"root:" not in body and b"SQLite" not in body


# -- mlgate serve ----------------------------------------------------------------------------


@sqlite_only
@pytest.mark.parametrize("workers", ["1", "2"])
def test_mlgate_serve_starts_uvicorn_and_refuses_a_missing_registry(
    hub: Hub, tmp_path: Path, workers: str
) -> None:
    hub.publish("org/tiny")
    hub.registry.add_user("mlgate-worker", "publisher")  # serve starts a worker as this user
    assert main(["serve", "--data-dir", str(tmp_path / "nothing"), "--port", "0"]) == 2
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLGATE_")}
    server = subprocess.Popen(
        [sys.executable, "-m", "mlgate", "serve", "--data-dir", str(hub.registry.data_dir),
         "--port", str(port), "--workers", workers, "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        api = HfApi(endpoint=url, token=hub.token("rob"))
        info = _retry(lambda: api.model_info("org/tiny"), server)
        assert info.sha == commit_id(hub.registry.show("org/tiny"))
        [worker] = [p for p in _children(server.pid) if b"worker" in _cmdline(p)]
    finally:
        server.terminate()  # SIGTERM: what systemd, docker and kill send
        server.wait(30)
    # The worker serve started goes with it (uvicorn re-raises SIGTERM before clean-up runs).
    deadline = time.monotonic() + 15
    while Path(f"/proc/{worker}").exists() and b"worker" in _cmdline(worker):
        assert time.monotonic() < deadline, "the embedded worker outlived mlgate serve"
        time.sleep(0.1)


def _children(pid: int) -> list[int]:
    kids = [int(k) for t in Path(f"/proc/{pid}/task").iterdir()
            for k in (t / "children").read_text().split()]  # fmt: skip
    return kids + [g for k in kids for g in _children(k)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _retry(call: Any, server: subprocess.Popen[bytes]) -> Any:
    deadline = time.monotonic() + 30
    while True:
        try:
            return call()
        except httpx2.ConnectError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_a_batch_of_download_records_commits_each_allowed_one_only(hub: Hub) -> None:
    from mlgate.registry.downloads import DownloadRecord
    from mlgate.registry.errors import NotFound, PermissionDenied
    from mlgate.registry.roles import Role

    version = hub.publish("org/tiny")
    records = [
        DownloadRecord("rob", None, version.ref, "config.json"),
        DownloadRecord("mallory", None, version.ref, "config.json"),  # no such user
        DownloadRecord("alice", frozenset({Role.PUBLISHER}), version.ref, "README.md"),
        DownloadRecord("rob", None, "org/tiny@9", "config.json"),  # no such version
    ]
    outcome = hub.registry.downloads.record_many(records)
    assert [type(e) for e in outcome] == [type(None), PermissionDenied, type(None), NotFound]
    assert downloads_by(hub, version.ref) == [("rob", "config.json"), ("alice", "README.md")]
    assert hub.registry.audit_verify().ok
