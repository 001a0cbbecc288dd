"""`mlgate scan` of Hugging Face inputs: hub repos (hf://, hub URLs) downloaded from a real local
hub (tests/hubserver.py on 127.0.0.1) into a temporary folder that is gone afterwards, and
cache folders written by the real huggingface_hub client, scanned as the models they are."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import payloads
import pytest
from hubserver import HubServer
from registry_models import write_benign

from mlgate.cli import main

SECRET = "hf_not_a_real_token"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    benign = write_benign(tmp_path_factory.mktemp("hub") / "tiny")
    files = {p.name: p.read_bytes() for p in benign.iterdir()}
    with HubServer() as server:
        server.add_repo(
            "org/benign", {**files, "model.safetensors": (files["model.safetensors"], "lfs")}
        )
        server.add_repo(
            "org/evil",
            {"config.json": b"{}", "pytorch_model.bin": (payloads.os_system("x"), "lfs")},
        )
        server.add_repo(
            "org/private", {"model.safetensors": files["model.safetensors"]}, token=SECRET
        )
        yield server


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, hub: HubServer) -> Path:
    """HF_ENDPOINT on the local hub, no token, and a temporary folder of the test's own."""
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_TOKEN_PATH", raising=False)
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return temp


def scan_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict, str]:
    code = main(["scan", "--format", "json", *args])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out else {}, err


def test_malicious_repo_fails_and_names_repo_and_commit(env: Path, hub: HubServer, capsys) -> None:
    code, report, err = scan_json(capsys, "hf://org/evil")
    commit = hub.repos[("model", "org/evil")].resolve("main")
    assert code == 1
    assert report["targets"] == ["hf://org/evil"]
    paths = {f["location"]["path"] for f in report["findings"] if f["severity"] == "CRITICAL"}
    assert paths == {f"hf://org/evil@{commit}/pytorch_model.bin"}
    assert f"revision main is commit {commit}" in err
    assert list(env.iterdir()) == []  # the download is gone


def test_benign_repo_passes(env: Path, capsys) -> None:
    code, report, _ = scan_json(capsys, "hf://org/benign@main")
    assert code == 0, report
    assert {a["artifact"].rsplit("/", 1)[-1] for a in report["artifacts"]} >= {"model.safetensors"}
    assert list(env.iterdir()) == []


@pytest.mark.parametrize("spec", ["hf://org/missing", "hf://org/evil@no-such-branch"])
def test_unknown_repo_or_revision_is_an_error(env: Path, spec: str, capsys) -> None:
    code, report, err = scan_json(capsys, spec)
    assert (code, report) == (2, {})
    assert "not found" in err or "does not exist" in err
    assert list(env.iterdir()) == []


def test_token_is_sent_as_bearer_to_a_private_repo(
    env: Path, hub: HubServer, monkeypatch, capsys
) -> None:
    code, _, err = scan_json(capsys, "hf://org/private")
    assert code == 2 and "authentication" in err
    monkeypatch.setenv("HF_TOKEN", SECRET)
    assert scan_json(capsys, "hf://org/private")[0] == 0
    assert SECRET not in capsys.readouterr().err


def test_stored_token_file_is_used(env: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "hf-home").mkdir()
    (tmp_path / "hf-home" / "token").write_text(SECRET + "\n")
    code, _, err = scan_json(capsys, "hf://org/private")
    assert code == 0 and SECRET not in err


def test_token_that_would_inject_headers_is_refused(
    env: Path, hub: HubServer, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("HF_TOKEN", SECRET + "\r\nX-Evil: 1")
    before = len(hub.requests)
    code, _, err = scan_json(capsys, "hf://org/private")
    assert code == 2 and "HF_TOKEN does not hold a token" in err and SECRET not in err
    assert len(hub.requests) == before


def test_hub_url_with_tree_revision(env: Path, hub: HubServer, capsys) -> None:
    commit = hub.repos[("model", "org/evil")].resolve("main")
    code, report, _ = scan_json(capsys, f"{hub.url}/org/evil/tree/{commit}")
    assert code == 1
    assert report["targets"] == [f"{hub.url}/org/evil/tree/{commit}"]


@pytest.mark.parametrize(
    "url", ["https://elsewhere.example/org/evil", "{hub}/org/evil/blob/main/x", "{hub}/a/b/c"]
)
def test_url_not_a_repo_of_the_hub_is_refused(env: Path, hub: HubServer, url: str, capsys) -> None:
    before = len(hub.requests)
    code, _, err = scan_json(capsys, url.format(hub=hub.url))
    assert code == 2 and "is not" in err
    assert len(hub.requests) == before  # refused before asking the hub anything


def test_hub_scan_imports_no_sqlalchemy(tmp_path: Path, env: Path) -> None:
    src = Path(__file__).parent.parent / "src"
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "mlgate", "scan", "hf://org/benign"],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(src)},
        timeout=60,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "sqlalchemy" not in run.stderr


# -- the Hugging Face cache layout ---------------------------------------------------------


@pytest.fixture
def cache(hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """org/evil and org/benign as the real huggingface_hub client caches them."""
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    from huggingface_hub import snapshot_download

    for repo in ("org/evil", "org/benign"):
        snapshot_download(repo, cache_dir=tmp_path / "cache", endpoint=hub.url, token=False)
    return tmp_path / "cache"


def snapshot(repo_folder: Path) -> Path:
    (only,) = (repo_folder / "snapshots").iterdir()
    return only


def test_cache_snapshot_is_scanned_under_its_file_names(cache: Path, capsys) -> None:
    folder = snapshot(cache / "models--org--evil")
    assert (folder / "pytorch_model.bin").is_symlink()
    code, report, _ = scan_json(capsys, str(folder))
    assert code == 1
    critical = {f["location"]["path"] for f in report["findings"] if f["severity"] == "CRITICAL"}
    assert critical == {str(folder / "pytorch_model.bin")}
    assert not any(f["rule_id"] == "MLG206" for f in report["findings"])


def test_cache_repo_folder_scans_its_snapshots_once(cache: Path, capsys) -> None:
    code, report, _ = scan_json(capsys, str(cache / "models--org--benign"))
    assert code == 0, report
    names = sorted(a["artifact"] for a in report["artifacts"])
    assert not any("/blobs/" in n for n in names), names  # not scanned a second time
    assert any(n.endswith("/model.safetensors") for n in names)


def test_whole_cache_folder(cache: Path, capsys) -> None:
    code, report, _ = scan_json(capsys, str(cache))
    assert code == 1
    assert not any("/blobs/" in a["artifact"] for a in report["artifacts"])


@pytest.mark.parametrize(
    "target", ["/etc/hostname", "../../refs/main", "../../../models--org--benign/blobs"]
)
def test_cache_link_outside_its_blobs_is_refused(cache: Path, target: str, capsys) -> None:
    folder = snapshot(cache / "models--org--evil")
    if target.endswith("/blobs"):  # another repo's blob
        blobs = cache / "models--org--benign" / "blobs"
        target = os.path.relpath(next(blobs.iterdir()), folder)
    (folder / "extra.safetensors").symlink_to(target)
    code, report, _ = scan_json(capsys, str(cache / "models--org--evil"))
    refused = [f for f in report["findings"] if f["rule_id"] == "MLG206"]
    assert [f["location"]["path"] for f in refused] == [str(folder / "extra.safetensors")]
    assert code == 1
