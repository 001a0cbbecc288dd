"""Registry reliability: concurrent writers, SIGKILL at any point of an ingest, hostile folders.

Concurrency runs on SQLite and PostgreSQL with several OS processes; crash safety kills a real
``mlgate ingest`` process at points spread over a measured full ingest; bad input must be
refused naming the offending path and leave nothing stored.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pytest
from registry_support import as_user
from sqlalchemy import func, select

from mlgate.registry import schema as t
from mlgate.registry.check import check_registry
from mlgate.registry.errors import IngestRefused
from mlgate.registry.lifecycle import State
from mlgate.registry.sources import SourceLimits

WORKERS = 4
BUSY = "org/busy"
SERVED = "org/served"


def _model(folder: Path, tag: str, size: int = 1024) -> Path:
    """A small benign model folder whose content depends only on ``tag``."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "tag": tag}))
    (folder / "weights.bin").write_bytes(tag.encode() * (size // max(len(tag), 1)))
    return folder


def _url(registry) -> str | None:  # type: ignore[no-untyped-def]
    if registry.engine.url.get_backend_name() == "sqlite":
        return None
    return str(registry.engine.url.render_as_string(hide_password=False))


def _stored_blobs(data_dir: Path) -> list[Path]:
    return sorted(p for p in (data_dir / "blobs" / "sha256").rglob("*") if p.is_file())


def _temporaries(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "blobs" / "tmp").glob("*"))


# -- concurrency ------------------------------------------------------------------------------


def _worker(data_dir: Path, url: str | None, index: int, root: Path) -> list[int]:
    """One process: ingest a shared and an own model into the same name, pull twice."""
    from mlgate.registry import open_registry

    pat = open_registry(data_dir, url, "pat")
    rob = open_registry(data_dir, url, "rob")
    numbers = []
    for n, tag in enumerate(("shared", f"own-{index}")):
        folder = _model(root / f"src-{index}-{n}", tag)
        numbers.append(pat.ingest(folder, name=BUSY, scan=n == 0).number)
        rob.pull(f"{SERVED}@1", root / f"pulled-{index}-{n}")
    pat.engine.dispose()
    rob.engine.dispose()
    return numbers


def _audit_actions(registry) -> Counter[str]:  # type: ignore[no-untyped-def]
    from mlgate.registry import audit, database

    with database.read_transaction(registry.engine) as conn:
        return Counter(e.action for e in audit.read_entries(conn))


def test_concurrent_ingests_and_pulls_lose_nothing(registry, tmp_path: Path) -> None:
    pat, rita = as_user(registry, "pat"), as_user(registry, "rita")
    pat.ingest(_model(tmp_path / "served", "served"), name=SERVED)
    rita.approve(f"{SERVED}@1", "fine")
    pat.publish(f"{SERVED}@1")
    before = _audit_actions(registry)

    context = get_context("spawn")
    with ProcessPoolExecutor(WORKERS, mp_context=context) as pool:
        futures = [
            pool.submit(_worker, registry.data_dir, _url(registry), i, tmp_path)
            for i in range(WORKERS)
        ]
        numbers = sorted(n for f in futures for n in f.result())

    total = 2 * WORKERS
    assert numbers == list(range(1, total + 1))  # unique, gap-free
    versions = {v.number: v for v in registry.models()[0].versions}
    assert sorted(versions) == numbers
    shared = [v for v in versions.values() if v.state is State.SCANNED]
    assert len(shared) == WORKERS and len({v.content_digest for v in shared}) == 1
    assert {v.state for v in versions.values()} == {State.SCANNED, State.QUARANTINED}

    report = check_registry(registry, deep=True)
    assert report.consistent, report.problems
    assert report.orphans == []
    with registry.engine.connect() as conn:
        referenced = set(conn.execute(select(t.files.c.digest)).scalars())
        blob_rows = conn.execute(select(func.count()).select_from(t.blobs)).scalar()
        downloads = conn.execute(select(func.count()).select_from(t.downloads)).scalar()
    stored = _stored_blobs(registry.data_dir)
    assert sorted(p.name for p in stored) == sorted(referenced)  # each blob stored once
    assert blob_rows == len(referenced)
    # every pull writes the served version's 2 files
    assert downloads == WORKERS * 2 * 2

    delta = _audit_actions(registry) - before
    assert delta == Counter({"ingest": total, "scan": WORKERS, "download": WORKERS * 2})
    verification = registry.audit_verify()
    assert verification.ok, verification.problems
    for i in range(WORKERS):
        for n in range(2):
            assert (tmp_path / f"pulled-{i}-{n}" / "mlgate.sig").is_file()


# -- crash safety -----------------------------------------------------------------------------

_KILL_POINTS = 7  # per mode, 0% .. 100% of a measured full ingest


def _crash_model(folder: Path, seed: int) -> Path:
    """config.json and three 3 MiB safetensors shards of fresh random weights, so every
    ingest writes new blobs and the scan finds plain tensors (never random "pickles")."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "seed": seed}))
    size = 3 * 1024 * 1024
    header = json.dumps({"w": {"dtype": "U8", "shape": [size], "data_offsets": [0, size]}})
    encoded = header.encode() + b" " * (-len(header) % 8)
    for i in range(3):
        data = struct.pack("<Q", len(encoded)) + encoded + os.urandom(size)
        (folder / f"shard-{i}.safetensors").write_bytes(data)
    return folder


def _ingest_process(folder: Path, data_dir: Path, scan: bool) -> subprocess.Popen[bytes]:
    args = [
        sys.executable,
        "-m",
        "mlgate",
        "ingest",
        str(folder),
        "--data-dir",
        str(data_dir),
        "--as",
        "pat",
        "--name",
        "org/crash",
    ]
    return subprocess.Popen(
        [*args] if scan else [*args, "--no-scan"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _assert_versions_complete(registry) -> int:  # type: ignore[no-untyped-def]
    """Every recorded version is whole: all files recorded, every blob present and intact."""
    summaries = registry.models()
    if not summaries:
        return 0
    for summary in summaries:
        for v in summary.versions:
            version = registry.show(v.ref)
            assert version.state in {State.QUARANTINED, State.SCANNED}
            assert len(version.files) == 4
            for f in version.files:
                assert registry.blobs.exists(f.digest) and registry.blobs.verify(f.digest)
    return sum(len(s.versions) for s in summaries)


@pytest.mark.parametrize("registry_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("scan", [False, True], ids=["no-scan", "scan"])
def test_sigkill_during_ingest_leaves_nothing_or_a_complete_version(
    registry, tmp_path: Path, scan: bool
) -> None:
    data_dir = registry.data_dir
    started = time.monotonic()
    assert _ingest_process(_crash_model(tmp_path / "m0", 0), data_dir, scan).wait() == 0
    full = time.monotonic() - started
    expected = _assert_versions_complete(registry)
    assert expected == 1

    outcomes = []
    for point in range(_KILL_POINTS):
        folder = _crash_model(tmp_path / f"m{point + 1}", point + 1)
        process = _ingest_process(folder, data_dir, scan)
        time.sleep(full * point / (_KILL_POINTS - 1))
        process.send_signal(signal.SIGKILL)
        process.wait()
        recorded = _assert_versions_complete(registry)
        assert recorded in {expected, expected + 1}  # nothing, or one whole version
        outcomes.append(
            f"{point / (_KILL_POINTS - 1):.0%}:{'version' if recorded > expected else 'none'}"
        )
        expected = recorded
        report = check_registry(registry, deep=True)
        assert report.consistent, (point, report.problems)

    print(f"full ingest {full:.2f}s; killed at {', '.join(outcomes)}")
    check_registry(registry, repair=True, grace_seconds=0)
    after = check_registry(registry, deep=True)
    assert after.consistent and after.orphans == []
    assert _temporaries(data_dir) == []
    assert not any((data_dir / "tmp").glob("*")), "view scratch folders left behind"
    assert _assert_versions_complete(registry) == expected


@pytest.mark.parametrize("registry_url", ["sqlite"], indirect=True)
def test_check_reports_and_repairs_leftovers_of_a_killed_view_build(
    registry, tmp_path: Path
) -> None:
    version = as_user(registry, "pat").ingest(_model(tmp_path / "m", "x"), name="org/m", scan=False)
    data_dir = registry.data_dir
    scratch = data_dir / "tmp" / "killed-view"
    orphan_view = data_dir / "views" / ("0" * 64)
    for folder in (scratch, orphan_view):
        registry.blobs.link_view(version.files[0].digest, folder / "config.json")
    report = check_registry(registry)
    assert report.consistent
    assert report.orphans == [
        "leftover tmp/killed-view (interrupted ingest, scan or publish)",
        f"leftover views/{'0' * 64} (interrupted ingest, scan or publish)",
    ]
    assert check_registry(registry, repair=True).repaired == []  # within the grace period
    repaired = check_registry(registry, repair=True, grace_seconds=0).repaired
    assert len(repaired) == 2 and not scratch.exists() and not orphan_view.exists()
    assert (data_dir / "views" / version.content_digest).is_dir()  # a recorded view stays
    assert check_registry(registry).orphans == []


@pytest.mark.parametrize("registry_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("damage", ["delete", "corrupt"])
def test_check_reports_a_damaged_blob(registry, tmp_path: Path, damage: str) -> None:
    from mlgate.cli import main

    version = as_user(registry, "pat").ingest(_model(tmp_path / "m", "x"), name="org/m", scan=False)
    target = next(f for f in version.files if f.path == "weights.bin")
    blob = registry.blobs.path(target.digest)
    if damage == "delete":
        blob.unlink()
    else:
        blob.chmod(0o600)
        blob.write_bytes(b"tampered" + blob.read_bytes()[8:])
    deep = damage == "corrupt"
    report = check_registry(registry, deep=deep)
    word = "missing" if damage == "delete" else "corrupt"
    assert report.problems == [f"org/m@1: blob of weights.bin is {word} ({target.digest[:16]})"]
    if damage == "corrupt":
        assert check_registry(registry).consistent  # only a deep check re-hashes
    args = ["registry", "check", "--data-dir", str(registry.data_dir), "--as", "rob"]
    assert main([*args, "--deep"] if deep else args) == 1


# -- bad input --------------------------------------------------------------------------------


def _hostile(folder: Path, kind: str, outside: Path) -> str:
    """Make ``folder`` hostile in one way; return a pattern of the expected error."""
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    if kind == "symlink-out":
        outside.write_text("secret")
        (folder / "leak.bin").symlink_to(outside)
        return "leak.bin is a symbolic link escaping the model folder"
    if kind == "fifo":
        os.mkfifo(folder / "pipe.bin")
        return r"pipe\.bin is not a regular file"
    if kind == "case-duplicate":
        (folder / "Model.bin").write_bytes(b"a")
        (folder / "model.bin").write_bytes(b"b")
        return "duplicate file name '[Mm]odel.bin': collides with '[Mm]odel.bin'"
    if kind == "backslash":
        (folder / "..\\..\\evil.bin").write_bytes(b"x")
        return r"unsafe file name .*evil\.bin.*: backslash"
    if kind == "too-many-files":
        for i in range(60):
            (folder / f"f{i:03}.bin").write_bytes(b"")
        return r"too many files: more than 50 \(refused at 'f0\d\d\.bin'\)"
    raise AssertionError(kind)


@pytest.mark.parametrize("registry_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "kind", ["symlink-out", "fifo", "case-duplicate", "backslash", "too-many-files"]
)
def test_hostile_folder_is_refused_and_nothing_stored(registry, tmp_path: Path, kind: str) -> None:
    folder = tmp_path / "model"
    expected = _hostile(folder, kind, tmp_path / "secret.txt")
    pat = as_user(registry, "pat")
    with pytest.raises(IngestRefused, match=expected):
        pat.ingest(folder, name="org/hostile", limits=SourceLimits(max_files=50))
    _assert_nothing_stored(registry)


@pytest.mark.parametrize("registry_url", ["sqlite"], indirect=True)
def test_enormous_file_count_is_refused_early(registry, tmp_path: Path) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    limit = 2_000  # the default (10_000) works the same; creating the files is the slow part
    for i in range(limit * 2):
        (folder / f"{i:06}").touch()
    started = time.monotonic()
    with pytest.raises(IngestRefused, match=f"too many files: more than {limit} \\(refused at"):
        as_user(registry, "pat").ingest(folder, name="org/many", limits=SourceLimits(limit))
    assert time.monotonic() - started < 2
    _assert_nothing_stored(registry)


def _assert_nothing_stored(registry) -> None:  # type: ignore[no-untyped-def]
    with registry.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.versions)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(t.blobs)).scalar() == 0
    assert _stored_blobs(registry.data_dir) == []
    assert _temporaries(registry.data_dir) == []
