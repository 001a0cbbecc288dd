"""Sources of ``mlgate ingest``: local folders and Hugging Face-compatible hubs."""

from __future__ import annotations

import hashlib
import os
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest
from hubserver import HubServer, Listing

from mlgate.errors import MlgateError
from mlgate.registry.sources import (
    SourceError,
    SourceLimits,
    StagedSource,
    parse_source,
    stage_huggingface,
    stage_local,
)
from mlgate.registry.sources import local as local_source

CONFIG = b'{"model_type": "bert"}'
WEIGHTS = bytes(range(256)) * 1000  # 256 KB: more than one download chunk
TINY = {"config.json": CONFIG, "model.safetensors": (WEIGHTS, "lfs"), "sub/vocab.txt": b"a\nb\n"}


def write(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def contents(staged: StagedSource) -> dict[str, bytes]:
    return {f.path: f.local.read_bytes() for f in staged.files}


def refused(match: str, call: object, *args: object, **kwargs: object) -> SourceError:
    assert callable(call)
    with pytest.raises(SourceError, match=match) as info:
        call(*args, **kwargs)
    assert isinstance(info.value, MlgateError)
    return info.value


# -- local ------------------------------------------------------------------------------------


def test_local_folder_nested_not_copied(tmp_path: Path) -> None:
    root = write(
        tmp_path / "m",
        {
            "config.json": CONFIG,
            "a/b/c/weights.bin": WEIGHTS,
            ".git/config": b"[core]",
            "sub/.git": b"gitdir: ../.git/modules/sub",  # a submodule's .git file
            ".cache/huggingface/download/x.lock": b"",
        },
    )
    staged = stage_local(root)
    assert [f.path for f in staged.files] == ["a/b/c/weights.bin", "config.json"]
    assert staged.files[0].local == root / "a/b/c/weights.bin"  # the original, not a copy
    assert staged.files[0].size == len(WEIGHTS)
    assert staged.files[0].expected_sha256 is None
    assert (staged.kind, staged.uri, staged.single_file) == ("local", str(root), False)
    assert staged.repo_id is staged.revision is staged.requested_revision is None


def test_local_single_file(tmp_path: Path) -> None:
    model = write(tmp_path, {"deep/model.pt": WEIGHTS}) / "deep/model.pt"
    staged = stage_local(model)
    assert staged.single_file
    assert [(f.path, f.local, f.size) for f in staged.files] == [("model.pt", model, len(WEIGHTS))]


def test_local_symlink_inside_is_resolved_under_its_own_name(tmp_path: Path) -> None:
    root = write(tmp_path / "m", {"blobs/abc": WEIGHTS})
    (root / "model.bin").symlink_to("blobs/abc")
    (root / "shared").symlink_to("blobs", target_is_directory=True)
    staged = stage_local(root)
    by_path = {f.path: f.local for f in staged.files}
    assert by_path == {
        "blobs/abc": root / "blobs/abc",
        "model.bin": (root / "blobs/abc").resolve(),
        "shared/abc": (root / "blobs/abc").resolve(),
    }


def test_local_symlink_escaping_the_folder(tmp_path: Path) -> None:
    secret = write(tmp_path, {"secret": b"id_rsa"}) / "secret"
    root = write(tmp_path / "m", {"config.json": CONFIG})
    (root / "sub").mkdir()
    (root / "sub/weights.bin").symlink_to(secret)
    refused(r"sub/weights\.bin is a symbolic link escaping the model folder", stage_local, root)


def test_local_symlinked_folder_escaping(tmp_path: Path) -> None:
    write(tmp_path / "outside", {"x": b"x"})
    root = write(tmp_path / "m", {"config.json": CONFIG})
    (root / "data").symlink_to(tmp_path / "outside", target_is_directory=True)
    refused(r"data is a symbolic link escaping", stage_local, root)


def test_local_symlink_loop(tmp_path: Path) -> None:
    root = write(tmp_path / "m", {"sub/a": b"a"})
    (root / "sub/up").symlink_to("..", target_is_directory=True)
    refused(r"sub/up is a symbolic link loop", stage_local, root)


def test_local_dangling_symlink(tmp_path: Path) -> None:
    root = write(tmp_path / "m", {"a": b"a"})
    (root / "gone").symlink_to("nowhere")
    refused(r"gone is a dangling symbolic link", stage_local, root)


def test_local_fifo_refused(tmp_path: Path) -> None:
    root = write(tmp_path / "m", {"a": b"a"})
    os.mkfifo(root / "pipe.bin")  # reading it would block the ingest forever
    refused(r"pipe\.bin is not a regular file", stage_local, root)


def test_local_hard_link_to_a_system_file_refused(tmp_path: Path) -> None:
    root = write(tmp_path / "m", {"config.json": CONFIG})
    secret = write(tmp_path, {"secret.txt": b"root:x:0:0"}) / "secret.txt"  # e.g. /etc/passwd
    os.link(secret, root / "weights.bin")
    refused(r"weights\.bin is a hard link \(2 names", stage_local, root)
    refused(r"weights\.bin is a hard link", stage_local, root / "weights.bin")


@pytest.mark.parametrize("kind", ["socket", "device"])
def test_local_socket_and_device_refused(tmp_path: Path, kind: str) -> None:
    import socket
    import stat

    root = write(tmp_path / "m", {"a": b"a"})
    special = root / "special.bin"
    if kind == "socket":
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(special))
        listener.close()
    else:
        try:
            os.mknod(special, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # /dev/null's numbers
        except PermissionError:
            pytest.skip("creating a device needs root")
    refused(r"special\.bin is not a regular file", stage_local, root)


def test_blob_store_refuses_a_hard_link_swapped_in_after_staging(tmp_path: Path) -> None:
    from mlgate.registry.blobs import BlobStore
    from mlgate.registry.errors import RegistryError

    root = write(tmp_path / "m", {"config.json": CONFIG})
    staged = stage_local(root)
    secret = write(tmp_path, {"secret.txt": b"root:x:0:0"}) / "secret.txt"
    (root / "config.json").unlink()
    os.link(secret, root / "config.json")  # the time-of-check gap between stage and store
    with pytest.raises(RegistryError, match="became a hard link"):
        BlobStore(tmp_path / "blobs").put_file(staged.files[0].local)
    assert not any((tmp_path / "blobs" / "sha256").rglob("*"))


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Model.bin", "model.bin"),  # one file on macOS / Windows
        ("caf\u00e9.txt", unicodedata.normalize("NFD", "caf\u00e9.txt")),  # NFC vs NFD
        ("STRASSE.md", "stra\u00dfe.md"),  # casefold: ß -> ss
    ],
)
def test_local_names_colliding_on_case_insensitive_filesystems(
    tmp_path: Path, first: str, second: str
) -> None:
    root = write(tmp_path / "m", {first: b"1", second: b"2"})
    refused(r"duplicate file name .*collides with", stage_local, root)


@pytest.mark.parametrize("name", ["back\\slash.py", "new\nline.py", "tab\t.py"])
def test_local_unsafe_names(tmp_path: Path, name: str) -> None:
    root = write(tmp_path / "m", {name: b"x"})
    refused(r"unsafe file name", stage_local, root)


def test_local_undecodable_name(tmp_path: Path) -> None:
    root = write(tmp_path / "m", {"a": b"a"})
    os.close(os.open(bytes(root) + b"/latin1-\xe9.bin", os.O_CREAT | os.O_WRONLY))
    refused(r"file name 'latin1-.*' is not valid UTF-8", stage_local, root)


def test_local_too_many_files_stops_early(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "m"
    root.mkdir()
    for i in range(500):
        (root / f"f{i}").write_bytes(b"")
    seen = 0
    real_scandir = os.scandir

    class Lazy:
        def __init__(self, path: Path) -> None:
            self.it = real_scandir(path)

        def __enter__(self) -> Lazy:
            return self

        def __exit__(self, *exc: object) -> None:
            self.it.close()

        def __iter__(self) -> Iterator[os.DirEntry[str]]:
            nonlocal seen
            for entry in self.it:
                seen += 1
                yield entry

    monkeypatch.setattr(local_source.os, "scandir", Lazy)
    refused(r"too many files: more than 10", stage_local, root, SourceLimits(max_files=10))
    assert seen == 11  # refused at the 11th entry, the other 489 never listed


def test_local_size_limits(tmp_path: Path) -> None:
    root = write(tmp_path / "m", {"a.bin": b"x" * 600, "b.bin": b"y" * 600})
    refused(
        r"a\.bin is 600 bytes, over the per-file limit of 500",
        stage_local,
        root,
        SourceLimits(max_file_bytes=500),
    )
    refused(
        r"total size over the limit of 1000 bytes",
        stage_local,
        root,
        SourceLimits(max_total_bytes=1000),
    )
    assert len(stage_local(root, SourceLimits(max_total_bytes=1200)).files) == 2


def test_local_path_length_limit(tmp_path: Path) -> None:
    root = write(tmp_path / "m", {"d" * 50 + "/" + "f" * 50: b"x"})
    refused(r"is 101 bytes long \(limit 64\)", stage_local, root, SourceLimits(max_path_length=64))


def test_local_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write(tmp_path / "m", {"a.bin": b"x", "secret.bin": b"x"})
    real_open = os.open

    def open_as_other_user(path: Path, flags: int, *args: int) -> int:
        if Path(path).name == "secret.bin":  # what chmod 0 does to anyone but root
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(local_source.os, "open", open_as_other_user)
    refused(r"cannot read secret\.bin: Permission denied", stage_local, root)


def test_local_missing_path(tmp_path: Path) -> None:
    refused(r"cannot read model .*nope", stage_local, tmp_path / "nope")


# -- hub: happy paths -------------------------------------------------------------------------


@pytest.fixture
def hub() -> Iterator[HubServer]:
    with HubServer() as server:
        yield server


def test_hub_branch_resolved_to_commit_and_downloaded_by_sha(
    hub: HubServer, tmp_path: Path
) -> None:
    commit = hub.add_repo("org/tiny", TINY)
    staging = tmp_path / "staging"
    staged = stage_huggingface(hub.url, "org/tiny", "main", staging=staging)
    assert (staged.kind, staged.uri, staged.repo_id) == (
        "huggingface",
        f"{hub.url}/org/tiny",
        "org/tiny",
    )
    assert (staged.revision, staged.requested_revision, staged.single_file) == (
        commit,
        "main",
        False,
    )
    assert contents(staged) == {
        "config.json": CONFIG,
        "model.safetensors": WEIGHTS,
        "sub/vocab.txt": b"a\nb\n",
    }
    assert all(f.local.is_relative_to(staging) for f in staged.files)
    lfs = {f.path: f.expected_sha256 for f in staged.files}
    assert lfs == {
        "config.json": None,
        "sub/vocab.txt": None,
        "model.safetensors": hashlib.sha256(WEIGHTS).hexdigest(),
    }
    paths = [r.path for r in hub.requests]
    assert paths[0] == "/api/models/org/tiny/revision/main?blobs=true"
    resolves = [p for p in paths if "/resolve/" in p]
    assert len(resolves) == 3 and all(f"/resolve/{commit}/" in p for p in resolves)
    assert any(p.startswith("/cdn/") for p in paths)  # the LFS file came through the redirect


def test_hub_tag_sha_and_moved_branch(hub: HubServer, tmp_path: Path) -> None:
    v1 = hub.add_repo("org/m", {"w.bin": b"v1"}, tags=("v1.0",))
    v2 = hub.add_repo("org/m", {"w.bin": b"v2-longer"})
    by_tag = stage_huggingface(hub.url, "org/m", "v1.0", staging=tmp_path / "a")
    assert (by_tag.revision, contents(by_tag)) == (v1, {"w.bin": b"v1"})
    by_sha = stage_huggingface(hub.url, "org/m", v1, staging=tmp_path / "b")
    assert (by_sha.revision, contents(by_sha)) == (v1, {"w.bin": b"v1"})
    latest = stage_huggingface(hub.url, "org/m", staging=tmp_path / "c")
    assert (latest.revision, contents(latest)) == (v2, {"w.bin": b"v2-longer"})


def test_hub_revision_with_slash_is_quoted(hub: HubServer, tmp_path: Path) -> None:
    commit = hub.add_repo("org/m", {"a": b"a"}, branch="refs/pr/1")
    staged = stage_huggingface(hub.url, "org/m", "refs/pr/1", staging=tmp_path / "s")
    assert staged.revision == commit
    assert hub.requests[0].path == "/api/models/org/m/revision/refs%2Fpr%2F1?blobs=true"


def test_hub_dataset_and_endpoint_prefix(tmp_path: Path) -> None:
    with HubServer(prefix="/mirror/hf") as hub:
        hub.add_repo("org/data", {"train.parquet": (b"PAR1", "lfs")}, repo_type="dataset")
        staged = stage_huggingface(
            hub.url + "/", "org/data", staging=tmp_path / "s", repo_type="dataset"
        )
    assert contents(staged) == {"train.parquet": b"PAR1"}
    assert staged.uri == f"{hub.url}/datasets/org/data"
    assert hub.requests[0].path == "/mirror/hf/api/datasets/org/data/revision/main?blobs=true"


def test_hub_token_forwarded_to_hub_not_to_cdn_host(tmp_path: Path) -> None:
    with HubServer() as cdn, HubServer(cdn=cdn) as hub:
        hub.add_repo("org/private", TINY, token="hf_secret")
        staged = stage_huggingface(
            hub.url, "org/private", staging=tmp_path / "s", token="hf_secret"
        )
        assert contents(staged)["model.safetensors"] == WEIGHTS
        assert {r.authorization for r in hub.requests} == {"Bearer hf_secret"}
        assert [r.authorization for r in cdn.requests] == [None]  # CVE-2018-18074 style leak


# -- hub: refusals (each leaves staging empty) ------------------------------------------------


def refused_hub(hub: HubServer, tmp_path: Path, match: str, **kwargs: object) -> SourceError:
    staging = tmp_path / "staging"
    repo = kwargs.pop("repo", "org/tiny")
    revision = kwargs.pop("revision", "main")
    error = refused(match, stage_huggingface, hub.url, repo, revision, staging=staging, **kwargs)
    assert not staging.exists() or list(staging.iterdir()) == []
    return error


def add_sibling(name: object, size: int = 3) -> object:
    return lambda listing: listing["siblings"].append({"rfilename": name, "size": size})


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("../evil.py", r"unsafe file name '\.\./evil\.py': path traversal"),
        ("sub/../../evil.py", r"path traversal"),
        ("/etc/cron.d/x", r"unsafe file name '/etc/cron\.d/x': absolute path"),
        ("C:/Windows/x.dll", r"absolute path"),
        ("sub\\..\\..\\evil.py", r"backslash"),
        (".git/hooks/post-checkout", r"'\.git' path component"),
        (".GIT/hooks/post-checkout", r"'\.git' path component"),  # CVE-2014-9390
        ("sub/.git./config", r"'\.git' path component"),
        ("GIT~1/config", r"'\.git' path component"),
        ("a//b", r"empty path segment"),
        ("nul\x00.py", r"control character"),
        ("", r"invalid file name ''"),
        (7, r"invalid file name 7"),
    ],
)
def test_hub_unsafe_names(hub: HubServer, tmp_path: Path, name: object, match: str) -> None:
    hub.add_repo("org/tiny", TINY)
    hub.patch_listing("org/tiny", add_sibling(name))  # type: ignore[arg-type]
    refused_hub(hub, tmp_path, match)
    assert not any("/resolve/" in r.path for r in hub.requests)  # nothing downloaded


@pytest.mark.parametrize("dup", ["config.json", "CONFIG.json", "sub"])
def test_hub_duplicate_names(hub: HubServer, tmp_path: Path, dup: str) -> None:
    hub.add_repo("org/tiny", TINY)
    hub.patch_listing("org/tiny", add_sibling(dup))  # type: ignore[arg-type]
    refused_hub(hub, tmp_path, r"duplicate file name|needs 'sub' to be a folder")


def test_hub_too_many_siblings_refused_before_download(hub: HubServer, tmp_path: Path) -> None:
    hub.add_repo("org/tiny", TINY)

    def flood(listing: Listing) -> None:
        listing["siblings"] = [{"rfilename": f"f{i}", "size": 1} for i in range(100_000)]

    hub.patch_listing("org/tiny", flood)
    refused_hub(hub, tmp_path, r"too many files: org/tiny@\w+ lists 100000 \(limit 10000\)")
    assert not any("/resolve/" in r.path for r in hub.requests)


def test_hub_listing_larger_than_the_limits_allow(hub: HubServer, tmp_path: Path) -> None:
    hub.add_repo("org/tiny", TINY)

    def bloat(listing: Listing) -> None:
        listing["padding"] = "x" * 2 * 1024**2

    hub.patch_listing("org/tiny", bloat)
    refused_hub(
        hub,
        tmp_path,
        r"repo org/tiny: answer from .* is over \d+ bytes",
        limits=SourceLimits(max_files=10),
    )


def test_hub_declared_sizes_over_limits(hub: HubServer, tmp_path: Path) -> None:
    hub.add_repo("org/tiny", TINY)
    refused_hub(
        hub,
        tmp_path,
        r"model\.safetensors is 256000 bytes, over the per-file limit",
        limits=SourceLimits(max_file_bytes=1000),
    )
    refused_hub(
        hub,
        tmp_path,
        r"total size over the limit of 100000 bytes",
        limits=SourceLimits(max_total_bytes=100_000),
    )


@pytest.mark.parametrize(
    ("path", "data", "match"),
    [
        (
            "sub/vocab.txt",
            b"a\n",
            r"size mismatch for sub/vocab\.txt: .*declared 4 bytes, it sent 2",
        ),
        ("sub/vocab.txt", b"a\nb\nEXTRA", r"size mismatch for sub/vocab\.txt: .* it sent more"),
        ("model.safetensors", WEIGHTS[:-1] + b"!", r"sha256 mismatch for model\.safetensors"),
        ("model.safetensors", WEIGHTS[:1000], r"size mismatch for model\.safetensors"),
    ],
)
def test_hub_download_differs_from_listing(
    hub: HubServer, tmp_path: Path, path: str, data: bytes, match: str
) -> None:
    hub.add_repo("org/tiny", TINY)
    hub.tamper("org/tiny", path, data)
    refused_hub(hub, tmp_path, match)  # the files downloaded before it are removed too


def test_hub_listing_lies_about_commit_or_lfs(hub: HubServer, tmp_path: Path) -> None:
    commit = hub.add_repo("org/tiny", TINY)

    def bad_sha(listing: Listing) -> None:
        listing["sha"] = "main"

    hub.patch_listing("org/tiny", bad_sha)
    refused_hub(hub, tmp_path, r"no valid commit sha for org/tiny@main: 'main'")

    def other_commit(listing: Listing) -> None:
        listing["sha"] = "f" * 40

    hub.patch_listing("org/tiny", other_commit)
    refused_hub(hub, tmp_path, rf"resolved commit {commit} of org/tiny to f{{40}}", revision=commit)

    def bad_lfs(listing: Listing) -> None:
        listing["siblings"][1]["lfs"]["sha256"] = "not-a-digest"

    hub.patch_listing("org/tiny", bad_lfs)
    refused_hub(hub, tmp_path, r"invalid LFS sha256 for model\.safetensors")


def test_hub_not_found(hub: HubServer, tmp_path: Path) -> None:
    hub.add_repo("org/tiny", TINY)
    refused_hub(
        hub,
        tmp_path,
        rf"repo org/nope not found at {hub.url}/api/models/org/nope/.*\(HTTP 404\)",
        repo="org/nope",
    )
    refused_hub(
        hub, tmp_path, r"revision 'v9' not found in repo org/tiny .*\(HTTP 404\)", revision="v9"
    )


def test_hub_auth_errors(hub: HubServer, tmp_path: Path) -> None:
    hub.add_repo("org/tiny", TINY, token="hf_right")
    error = refused_hub(hub, tmp_path, r"repo org/tiny needs authentication .*\(HTTP 401\)")
    refused_hub(hub, tmp_path, r"not accessible with this token .*\(HTTP 403\)", token="hf_wrong")
    assert "hf_" not in str(error)


def test_hub_server_error_mid_download(hub: HubServer, tmp_path: Path) -> None:
    hub.add_repo("org/tiny", TINY)
    hub.fail(500, "vocab.txt")  # the last file: the two before it were written, then removed
    refused_hub(hub, tmp_path, r"sub/vocab\.txt failed on the server at .*\(HTTP 500\)")
    assert any("/resolve/" in r.path and "config.json" in r.path for r in hub.requests)


def test_hub_redirect_rules(hub: HubServer, tmp_path: Path) -> None:
    hub.add_repo("org/tiny", TINY)
    hub.redirect("file:///etc/passwd", "config.json")
    refused_hub(hub, tmp_path, r"config\.json: refused redirect .* to non-HTTP file:///etc/passwd")
    hub.redirect("/loop", "/")  # every path contains "/": a redirect loop
    refused_hub(hub, tmp_path, r"repo org/tiny: more than 5 redirects")


def test_hub_unreachable(tmp_path: Path) -> None:
    with HubServer() as gone:
        url = gone.url
    staging = tmp_path / "s"
    refused(
        r"repo org/tiny: cannot reach http://127\.0\.0\.1",
        stage_huggingface,
        url,
        "org/tiny",
        staging=staging,
    )


@pytest.mark.parametrize(
    ("fault", "match"),
    [
        ("delay", r"repo org/tiny: no answer from .* within 0\.2 s"),  # before any header
        ("stall", r"downloading config\.json: no answer from .* within 0\.2 s"),  # mid-body
    ],
)
def test_hub_timeouts(hub: HubServer, tmp_path: Path, fault: str, match: str) -> None:
    hub.add_repo("org/tiny", TINY)
    setattr(hub, fault, 1.0)
    refused_hub(hub, tmp_path, match, limits=SourceLimits(timeout=0.2))


def test_hub_staging_link_is_not_written_through(hub: HubServer, tmp_path: Path) -> None:
    hub.add_repo("org/tiny", TINY)
    outside = tmp_path / "outside"
    outside.mkdir()
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "sub").symlink_to(outside, target_is_directory=True)
    refused(
        r"cannot stage sub/vocab\.txt: .*sub exists and is not a folder",
        stage_huggingface,
        hub.url,
        "org/tiny",
        staging=staging,
    )
    assert list(outside.iterdir()) == []
    assert [p.name for p in staging.iterdir()] == ["sub"]  # only what was there before


def test_redirect_from_https_to_http_refused() -> None:
    from mlgate.registry.sources import _http

    refused(
        r"refused redirect from HTTPS", _http._redirect_target, "https://hub/a", "http://cdn/b", "x"
    )


@pytest.mark.parametrize(
    ("endpoint", "repo", "revision", "match"),
    [
        ("ftp://127.0.0.1", "org/m", "main", r"must be an http:// or https:// URL"),
        ("http://user:pw@127.0.0.1", "org/m", "main", r"must not carry credentials"),
        ("http://127.0.0.1", "../m", "main", r"invalid repo id"),
        ("http://127.0.0.1", "org/m/extra", "main", r"invalid repo id"),
        ("http://127.0.0.1", "org/m", "ma\nin", r"invalid revision"),
    ],
)
def test_hub_bad_arguments(
    tmp_path: Path, endpoint: str, repo: str, revision: str, match: str
) -> None:
    refused(match, stage_huggingface, endpoint, repo, revision, staging=tmp_path / "s")


# -- the fake hub is faithful: the real client downloads the same files from it ----------------


@pytest.mark.parametrize("cdn_host", ["second origin", "same origin"])
def test_hubserver_serves_the_real_huggingface_hub_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cdn_host: str
) -> None:
    huggingface_hub = pytest.importorskip("huggingface_hub")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with HubServer() as cdn, HubServer(cdn=cdn if cdn_host == "second origin" else None) as hub:
        commit = hub.add_repo("org/tiny", TINY, tags=("v1",), token="hf_tok")
        snapshot = Path(
            huggingface_hub.snapshot_download(
                "org/tiny",
                revision="v1",
                endpoint=hub.url,
                cache_dir=tmp_path / "cache",
                token="hf_tok",
            )
        )
        staged = stage_huggingface(
            hub.url, "org/tiny", "v1", staging=tmp_path / "s", token="hf_tok"
        )
    assert snapshot.name == staged.revision == commit
    theirs = {
        p.relative_to(snapshot).as_posix(): p.read_bytes()
        for p in snapshot.rglob("*")
        if p.is_file()
    }
    assert theirs == contents(staged)


# -- parse_source -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            "hf://org/name@v1.0",
            ("huggingface", {"repo_id": "org/name", "revision": "v1.0", "repo_type": "model"}),
        ),
        (
            "hf://gpt2",
            ("huggingface", {"repo_id": "gpt2", "revision": "main", "repo_type": "model"}),
        ),
        (
            "hf://datasets/org/d@refs/pr/1",
            ("huggingface", {"repo_id": "org/d", "revision": "refs/pr/1", "repo_type": "dataset"}),
        ),
        ("./models/bert", ("local", {"path": "./models/bert"})),
    ],
)
def test_parse_source(spec: str, expected: tuple[str, dict[str, str]]) -> None:
    assert parse_source(spec) == expected


@pytest.mark.parametrize("spec", ["hf://", "hf://org/name@"])
def test_parse_source_refuses(spec: str) -> None:
    refused(r"invalid hub source", parse_source, spec)
