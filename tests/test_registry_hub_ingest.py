"""Ingest from a Hugging Face-compatible hub (tests/hubserver.py on 127.0.0.1): pinned to the
resolved commit, LFS content verified, and a refused download leaves nothing behind."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hubserver import HubServer, Listing
from registry_models import Cli, blob_count, init_cli, write_benign
from registry_support import as_user

from mlgate.registry.errors import IngestRefused
from mlgate.registry.ingest import HubOptions
from mlgate.registry.lifecycle import State

SECRET = "hf_not_a_real_token"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """A benign model's files as a hub repo holds them (the weights in LFS)."""
    folder = write_benign(tmp_path_factory.mktemp("hub") / "tiny")
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def repo(files: dict[str, bytes]) -> dict[str, bytes | tuple[bytes, str]]:
    return {n: (data, "lfs") if n.endswith(".safetensors") else data for n, data in files.items()}


@pytest.fixture
def hub() -> Iterator[HubServer]:
    with HubServer() as server:
        yield server


def staging_leftovers(data_dir: Path) -> list[Path]:
    return list((data_dir / "staging").rglob("*")) if (data_dir / "staging").exists() else []


def test_hub_model_is_pinned_to_the_resolved_commit(registry, hub: HubServer, files) -> None:
    commit = hub.add_repo("org/tiny", repo(files))
    pat = as_user(registry, "pat")
    version = pat.ingest("hf://org/tiny@main", hub=HubOptions(endpoint=hub.url))
    assert (version.model, version.state, version.license) == (
        "org/tiny",
        State.SCANNED,
        "apache-2.0",
    )
    source = version.source
    assert (source.kind, source.uri, source.repo_id) == (
        "huggingface",
        f"{hub.url}/org/tiny",
        "org/tiny",
    )
    assert (source.revision, source.requested_revision) == (commit, "main")
    digests = {f.path: f.digest for f in version.files}
    assert digests == {n: hashlib.sha256(data).hexdigest() for n, data in files.items()}
    assert any(r.path.startswith("/cdn/") for r in hub.requests)  # the LFS blob, by sha256
    assert staging_leftovers(registry.data_dir) == []
    [entry] = [e for e in registry.audit_export() if '"action": "ingest"' in e]
    assert f'"revision": "{commit}"' in entry

    moved = hub.add_repo("org/tiny", repo({**files, "config.json": b'{"model_type": "gpt2"}'}))
    again = pat.ingest("hf://org/tiny@main", hub=HubOptions(endpoint=hub.url))
    assert (again.number, again.source.revision, again.source.requested_revision) == (
        2,
        moved,
        "main",
    )
    assert blob_count(registry.data_dir) == len(files) + 1  # only the new config is stored
    assert registry.show("org/tiny@1").source.revision == commit  # the record never moves


def traversal(listing: Listing) -> None:
    listing["siblings"].append({"rfilename": "../../evil.py", "size": 3})


def not_a_commit(listing: Listing) -> None:
    listing["sha"] = "main"


def no_files(listing: Listing) -> None:
    listing["siblings"] = []


def other_lfs_bytes(hub: HubServer, files: dict[str, bytes]) -> None:
    hub.tamper("org/tiny", "model.safetensors", files["model.safetensors"][:-1] + b"!")


@pytest.mark.parametrize(
    ("patch", "tampered", "match"),
    [
        (traversal, False, r"unsafe file name '\.\./\.\./evil\.py': path traversal"),
        (not_a_commit, False, r"no valid commit sha for org/tiny@main: 'main'"),
        (None, True, r"sha256 mismatch for model\.safetensors"),
        (no_files, False, r"cannot ingest hf://org/tiny@main: it has no files"),
    ],
)
def test_a_refused_hub_download_records_and_stores_nothing(
    registry,
    hub: HubServer,
    files,
    patch: Callable[[Listing], None] | None,
    tampered: bool,
    match: str,
) -> None:
    hub.add_repo("org/tiny", repo(files))
    if patch is not None:
        hub.patch_listing("org/tiny", patch)
    if tampered:
        other_lfs_bytes(hub, files)
    audit_before = list(registry.audit_export())
    with pytest.raises(IngestRefused, match=match):
        as_user(registry, "pat").ingest("hf://org/tiny@main", hub=HubOptions(endpoint=hub.url))
    assert registry.models() == []
    assert blob_count(registry.data_dir) == 0
    assert staging_leftovers(registry.data_dir) == []
    assert list(registry.audit_export()) == audit_before


def test_an_empty_folder_is_refused_too(registry, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(IngestRefused, match="it has no files"):
        as_user(registry, "pat").ingest(tmp_path / "empty")
    assert registry.models() == []


def test_token_is_forwarded_and_never_recorded(registry, hub: HubServer, files) -> None:
    hub.add_repo("org/private", repo(files), token=SECRET)
    pat = as_user(registry, "pat")
    with pytest.raises(IngestRefused, match="org/private"):
        pat.ingest("hf://org/private", hub=HubOptions(endpoint=hub.url))
    assert registry.models() == []
    hub.requests.clear()
    version = pat.ingest("hf://org/private", hub=HubOptions(endpoint=hub.url, token=SECRET))
    assert version.source.requested_revision == "main"
    assert {r.authorization for r in hub.requests if not r.path.startswith("/cdn/")} == {
        f"Bearer {SECRET}"
    }
    assert all(SECRET not in line for line in registry.audit_export())
    assert SECRET not in str(registry.show("org/private@1").to_json())


def test_cli_ingests_from_a_hub_endpoint(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    hub: HubServer,
    files,
) -> None:
    commit = hub.add_repo("org/tiny", repo(files))
    cli: Cli = init_cli(tmp_path, capsys, monkeypatch)
    assert cli("ingest", "hf://org/tiny@main", "--endpoint", hub.url, actor="pat") == 0
    assert cli.out.startswith("org/tiny@1: scanned")
    assert f"from {hub.url}/org/tiny at {commit})" in cli.out
    assert cli("models", "show", "org/tiny", "--format", "json", actor="rob") == 0
    assert '"requested_revision": "main"' in cli.out
    hub.patch_listing("org/tiny", traversal)
    assert cli("ingest", "hf://org/tiny@main", "--endpoint", hub.url, actor="pat") == 2
    assert "cannot ingest hf://org/tiny@main: " in cli.err and "path traversal" in cli.err
    assert staging_leftovers(cli.data_dir) == []
