"""`mlgate scan -j N`: files analysed in worker processes give the single-process report, and
a worker that dies or hangs leaves its files incomplete (exit 2), never dropped."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from factories import write
from payloads import benign_state_dict, glob0, os_system, proto, s

from mlgate.findings import ArtifactResult, Report, Severity
from mlgate.scan.engine import scan_paths
from mlgate.scan.limits import Limits
from mlgate.scan.pickle.policy import Policy


def _mixed_folder(root: Path) -> Path:
    """Benign and malicious files, nested, plus two pickles chaining the same third one (a
    chained artifact is analysed at its first mention only, whichever worker meets it)."""
    for i in range(6):
        write(root / f"benign{i}.pkl", benign_state_dict())
        write(root / "sub" / f"evil{i}.bin", os_system(f"jobs{i}"))
    write(root / "stage2.pkl", os_system("stage2"))
    loader = proto(2) + glob0("pickle", "load") + glob0("builtins", "open") + s("stage2.pkl")
    for name in ("stage1a.pkl", "stage1b.pkl"):
        write(root / name, loader + b"\x85R\x85R.")
    write(root / "weights.safetensors", b'\x08\x00\x00\x00\x00\x00\x00\x00{"a":1} ')
    write(root / "empty.bin", b"")
    with zipfile.ZipFile(root / "sub" / "model.pt", "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"w": [1, 2]}, protocol=2))
    (root / "out.pkl").symlink_to("/etc/hostname")
    return root


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlgate", "scan", "--format", "json", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_two_jobs_give_the_single_process_report(tmp_path: Path) -> None:
    folder = _mixed_folder(tmp_path / "models")
    one, two = _cli(str(folder), "-j", "1"), _cli(str(folder), "-j", "2")
    assert one.returncode == 1, one.stderr
    assert (two.returncode, two.stdout, two.stderr) == (one.returncode, one.stdout, one.stderr)
    assert '"MLG109"' in one.stdout and "stage2.pkl" in one.stdout


def test_every_core_and_several_targets(tmp_path: Path) -> None:
    folder = _mixed_folder(tmp_path / "models")
    targets = [folder / "sub", folder / "empty.bin", folder / "benign0.pkl"]
    one = scan_paths(targets, Policy(), Limits())
    assert scan_paths(targets, Policy(), Limits(), jobs=3) == one
    assert _cli(str(folder / "sub"), "-j", "0").returncode == 1


def _scan_while(action: Callable[[int], None], limits: Limits, folder: Path) -> Report:
    """Scan ``folder`` with two workers while ``action`` is applied to each worker's pid."""
    result: list[Report] = []
    scanning = threading.Thread(
        target=lambda: result.append(scan_paths([folder], Policy(), limits, jobs=2))
    )
    scanning.start()
    seen: set[int] = set()
    while scanning.is_alive():
        for child in multiprocessing.active_children():
            if child.pid is not None and child.pid not in seen:
                seen.add(child.pid)
                action(child.pid)
        time.sleep(0.01)
    scanning.join()
    assert seen, "no worker process was started"
    return result[0]


def _assert_all_listed_incomplete(report: Report, folder: Path) -> None:
    files = sorted(str(p) for p in folder.rglob("*") if p.is_file())
    assert sorted(a.artifact for a in report.artifacts) == files
    assert all(a == ArtifactResult(a.artifact, "unknown", False) for a in report.artifacts)
    assert report.exit_code(Severity.CRITICAL) == 2


def test_a_killed_worker_leaves_its_files_incomplete(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    for i in range(8):
        write(folder / f"m{i}.pkl", benign_state_dict())
    report = _scan_while(lambda pid: os.kill(pid, signal.SIGKILL), Limits(), folder)
    _assert_all_listed_incomplete(report, folder)
    assert all("worker process failed" in f.message for f in report.findings)


def test_a_hung_worker_is_killed_at_the_file_budget(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    for i in range(3):
        write(folder / f"m{i}.pkl", benign_state_dict())
    started = time.monotonic()
    report = _scan_while(lambda pid: os.kill(pid, signal.SIGSTOP), Limits(file_seconds=1), folder)
    assert time.monotonic() - started < 15
    _assert_all_listed_incomplete(report, folder)
    assert any("still busy after 2 s" in f.message for f in report.findings)
