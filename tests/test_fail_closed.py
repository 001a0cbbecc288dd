"""The scan driver fails closed (issue 10): nothing it could not read, list or understand
passes; an incomplete analysis exits 2 in every command and says so in JSON and SARIF.

Permission tests run the real CLI as an unprivileged user: root ignores permission bits, so
as root the command is started through ``setpriv`` with uid/gid 65534 (nobody); as any other
user it runs directly. Either way the folder really is unreadable to the scanner.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from factories import describe, rules_found, scan, write
from payloads import benign_state_dict, os_system

import mlgate
from mlgate.bom import build_cyclonedx
from mlgate.cli import main
from mlgate.convert.errors import ConversionError
from mlgate.convert.model import convert_model
from mlgate.errors import ExitCode, UnreadableInputError
from mlgate.findings import Severity
from mlgate.scan import engine, rules
from mlgate.scan.engine import scan_paths
from mlgate.scan.limits import Limits
from mlgate.scan.pickle.policy import Policy
from mlgate.scan.source import file_source

SRC = Path(mlgate.__file__).resolve().parents[1]
SARIF_SCHEMA = Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"
DEEP_JSON = b'{"a":' * 100_000 + b"1" + b"}" * 100_000  # json.loads: RecursionError
LFS_POINTER = (
    b"version https://git-lfs.github.com/spec/v1\n"
    b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    b"size 133466304\n"
)


# --- helpers ----------------------------------------------------------------------------------


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder the unprivileged user can reach (pytest's tmp_path is private to root)."""
    with tempfile.TemporaryDirectory(prefix="mlgate-fail-closed-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        try:
            yield root
        finally:
            for folder, dirs, _ in os.walk(root):
                for name in dirs:
                    (Path(folder) / name).chmod(0o755)


def run_unprivileged(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m mlgate ARGS`` as a user that permission bits apply to."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "running as root: setpriv (util-linux) is needed to drop privileges"
        prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    env = {**os.environ, "PYTHONPATH": str(SRC), "HOME": str(cwd)}
    return subprocess.run(
        [*prefix, sys.executable, "-m", "mlgate", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``python -m mlgate ARGS`` in a child process: a scan that blocks times out."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run(
        [sys.executable, "-m", "mlgate", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def model_with_locked_folder(root: Path, name: str) -> tuple[Path, Path]:
    """A model folder with a clean pickle and a subfolder (mode 000) holding a malicious one."""
    model = root / "model"
    write(model / "clean.pkl", benign_state_dict())
    locked = model / "extra"
    write(locked / "evil.pkl", os_system(name))
    locked.chmod(0)
    return model, locked


def nested_zip(depth: int, payload: bytes) -> bytes:
    """``payload`` zipped ``depth`` times: deeper than the nesting limit, so cut short."""
    data = payload
    for level in range(depth):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr(f"level{level}.zip" if level else "weights.pkl", data)
        data = buffer.getvalue()
    return data


def incomplete_model(folder: Path) -> Path:
    """A folder whose only file cannot be fully analysed under the default limits."""
    depth = Limits().max_depth + 2
    write(folder / "model.zip", nested_zip(depth, pickle.dumps({"w": [1.0]})))
    return folder


# --- 1. unreadable folders and files ---------------------------------------------------------


def test_unreadable_subfolder_is_not_skipped_and_exits_2(shared_dir: Path) -> None:
    model, locked = model_with_locked_folder(shared_dir, "fc-locked-folder")

    run = run_unprivileged("scan", model, "--format", "json", cwd=shared_dir)

    assert run.returncode == ExitCode.ERROR, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    report = json.loads(run.stdout)
    assert report["complete"] is False and report["summary"]["complete"] is False
    assert report["summary"]["passed"] is False
    unreadable = [f for f in report["findings"] if f["rule_id"] == rules.UNREADABLE.id]
    assert [f["location"]["path"] for f in unreadable] == [str(locked)], report["findings"]
    assert unreadable[0]["severity"] == "HIGH"


def test_file_inside_unreadable_folder_exits_2_without_traceback(shared_dir: Path) -> None:
    _, locked = model_with_locked_folder(shared_dir, "fc-locked-file")

    run = run_unprivileged("scan", locked / "evil.pkl", cwd=shared_dir)

    assert run.returncode == ExitCode.ERROR, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert rules.UNREADABLE.id in run.stdout
    assert "not fully analysed" in run.stderr


def test_admit_refuses_a_model_with_an_unreadable_subfolder(shared_dir: Path) -> None:
    model, _ = model_with_locked_folder(shared_dir, "fc-locked-admit")

    run = run_unprivileged(
        "admit", model, "--no-registry",
        "--skip", "digests", "--skip", "signature", "--skip", "registry",
        cwd=shared_dir,
    )

    assert run.returncode == ExitCode.UNSAFE, run.stdout + run.stderr
    assert "FAIL scan" in run.stdout and "not fully analysed" in run.stdout
    assert "REFUSED" in run.stdout


def test_folder_replaced_by_a_file_during_the_walk_is_a_finding(tmp_path: Path) -> None:
    """The os.walk error path, without permissions: a subfolder listed by the walk is swapped
    for a file before the walk reaches it (as root, too)."""
    model = tmp_path / "model"
    write(model / "a.pkl", benign_state_dict())
    write(model / "sub" / "evil.pkl", os_system("fc-swapped-folder"))

    def swap_folder(*_: object) -> None:
        if (model / "sub").is_dir():
            shutil.rmtree(model / "sub")
            (model / "sub").write_bytes(b"")

    report = scan_paths([model], Policy(), Limits(), observer=swap_folder)

    assert not report.complete
    hits = [f for f in report.findings if f.rule_id == rules.UNREADABLE.id]
    assert [f.location.path for f in hits] == [str(model / "sub")], describe(report)


def test_fifo_swapped_in_after_the_check_does_not_block_the_scan(tmp_path: Path) -> None:
    """Time-of-check gap: the entry was a regular file when looked at, a FIFO when opened.
    A plain open() of a FIFO waits for a writer forever."""
    path = write(tmp_path / "model.bin", benign_state_dict())
    source = file_source(path)
    path.unlink()
    os.mkfifo(path)
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            source.head(16)
        except OSError as e:
            outcome.append(e)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=10)

    assert not reader.is_alive(), "opening the swapped-in FIFO blocked"
    assert outcome and "not a regular file" in str(outcome[0])


def test_file_swapped_between_reads_is_not_what_gets_analysed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Time-of-check gap inside one scan: the sniff read one file, then the name was given to
    another before the handler (or a reader process) opened it again. A file scanned for
    itself is opened once; every reading, the HDF5 and 7z reader processes included (through
    /proc/PID/fd), sees that file, so the report describes one file, never a mix of two."""
    model = tmp_path / "model"
    path = write(model / "pytorch_model.bin", benign_state_dict())
    swapped = write(tmp_path / "swap.bin", os_system("swap-between-reads"))
    real_sniff = engine.sniff

    def sniff_then_swap(head: bytes, name: str) -> object:
        os.replace(swapped, path)  # a new file under the same name
        return real_sniff(head, name)

    monkeypatch.setattr(engine, "sniff", sniff_then_swap)
    report = scan(model)

    assert not report.at_or_above(Severity.HIGH), describe(report)
    assert report.complete and [a.format for a in report.artifacts] == ["pickle"]
    # The name now holds the swapped-in pickle: the next scan (or admit) sees that file.
    monkeypatch.setattr(engine, "sniff", real_sniff)
    assert "MLG101" in rules_found(scan(model))


# --- 2. nothing to analyse is not a pass -----------------------------------------------------


def test_empty_folder_is_not_a_clean_scan(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()

    report = scan(tmp_path / "model")

    assert rules_found(report, Severity.HIGH) == {rules.NOTHING_SCANNED.id}, describe(report)
    assert main(["scan", str(tmp_path / "model")]) == ExitCode.UNSAFE


def test_fifo_and_socket_are_reported_never_opened(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    os.mkfifo(model / "pytorch_model.bin")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(model / "model.safetensors"))

        run = run_cli("scan", model, "--format", "json")  # a FIFO opened would block: timeout

    assert run.returncode == ExitCode.ERROR, run.stdout + run.stderr
    report = json.loads(run.stdout)
    assert report["complete"] is False
    kinds = {a["artifact"]: (a["format"], a["complete"]) for a in report["artifacts"]}
    assert kinds == {
        str(model / "model.safetensors"): ("socket", False),
        str(model / "pytorch_model.bin"): ("fifo", False),
    }
    assert {f["rule_id"] for f in report["findings"]} == {rules.NOT_REGULAR_FILE.id}


def test_empty_model_file_fails_the_gate(tmp_path: Path) -> None:
    write(tmp_path / "model" / "pytorch_model.bin", b"")
    write(tmp_path / "model" / "__init__.py", b"")

    report = scan(tmp_path / "model")

    empty = {Path(f.location.path).name: f.severity for f in report.findings
             if f.rule_id == rules.EMPTY_FILE.id}
    assert empty == {"pytorch_model.bin": Severity.HIGH, "__init__.py": Severity.LOW}
    assert main(["scan", str(tmp_path / "model")]) == ExitCode.UNSAFE


def test_git_lfs_pointer_in_place_of_weights_fails_the_gate(tmp_path: Path) -> None:
    write(tmp_path / "model" / "config.json", b'{"model_type": "bert"}')
    pointer = write(tmp_path / "model" / "model.safetensors", LFS_POINTER)

    report = scan(tmp_path / "model")

    hits = [f for f in report.findings if f.rule_id == rules.LFS_POINTER.id]
    assert [(f.location.path, f.severity) for f in hits] == [(str(pointer), Severity.HIGH)]
    assert main(["scan", str(tmp_path / "model")]) == ExitCode.UNSAFE


def test_top_level_link_to_a_malicious_pickle_is_scanned(tmp_path: Path) -> None:
    """A path given by name is followed, like a loader does (Hugging Face cache snapshots are
    links into blobs/): it used to be skipped as "a link inside the scanned folder"."""
    blob = write(tmp_path / "blobs" / "3f2a", os_system("fc-linked-blob"))
    link = tmp_path / "snapshot" / "pytorch_model.bin"
    link.parent.mkdir()
    link.symlink_to(blob)

    report = scan(link)

    assert rules.CODE_EXECUTION.id in rules_found(report), describe(report)


# --- 3. incomplete means exit 2, everywhere --------------------------------------------------


def test_incomplete_scan_exits_2_and_says_so_in_json(tmp_path: Path) -> None:
    model = incomplete_model(tmp_path / "model")

    run = run_cli("scan", model, "--format", "json")

    assert run.returncode == ExitCode.ERROR, run.stdout + run.stderr
    report = json.loads(run.stdout)
    assert report["complete"] is False and report["exit_code"] == ExitCode.ERROR
    assert report["summary"]["passed"] is False
    assert rules.LIMIT_EXCEEDED.id in {f["rule_id"] for f in report["findings"]}
    assert any(not a["complete"] for a in report["artifacts"])


def test_incomplete_text_report_never_says_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The text headline of an incomplete scan with nothing at or above the threshold used to
    read "PASS: 0 findings at or above CRITICAL" while the scan exited 2."""
    model = incomplete_model(tmp_path / "model")

    assert main(["scan", str(model), "--fail-on", "CRITICAL"]) == ExitCode.ERROR

    out, err = capsys.readouterr()
    assert "PASS" not in out
    assert out.splitlines()[-1].startswith("INCOMPLETE: 0 findings at or above CRITICAL; 1 ")
    assert "not fully analysed" in err and "(s)" not in err


def test_incomplete_scan_is_an_unsuccessful_sarif_invocation(tmp_path: Path) -> None:
    model = incomplete_model(tmp_path / "model")
    out = tmp_path / "report.sarif"

    assert main(["scan", str(model), "--format", "sarif", "-o", str(out)]) == ExitCode.ERROR

    log: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    jsonschema.validators.validator_for(schema)(schema).validate(log)
    (invocation,) = log["runs"][0]["invocations"]
    assert invocation["executionSuccessful"] is False
    notes = invocation["toolExecutionNotifications"]
    assert notes and all(n["level"] == "error" for n in notes)


def test_complete_scan_is_a_successful_sarif_invocation(tmp_path: Path) -> None:
    path = write(tmp_path / "clean.pkl", benign_state_dict())
    out = tmp_path / "report.sarif"

    assert main(["scan", str(path), "--format", "sarif", "-o", str(out)]) == ExitCode.CLEAN

    (invocation,) = json.loads(out.read_text(encoding="utf-8"))["runs"][0]["invocations"]
    assert invocation == {"executionSuccessful": True}


def test_limit_finding_marks_its_artifact_incomplete(tmp_path: Path) -> None:
    """A handler that reports a limit without marking the artifact (nesting cut at the depth
    limit used to leave every listed artifact complete) still yields complete: false."""
    report = scan(incomplete_model(tmp_path / "model"))

    assert rules.LIMIT_EXCEEDED.id in rules_found(report), describe(report)
    assert not report.complete
    assert report.exit_code(Severity.CRITICAL) == ExitCode.ERROR


def test_ingest_of_an_incomplete_model_never_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from registry_models import init_cli

    cli = init_cli(tmp_path, capsys, monkeypatch)
    model = incomplete_model(tmp_path / "model")

    assert cli("ingest", model, "--name", "org/deep", actor="pat") == ExitCode.UNSAFE
    assert "rejected (risk: incomplete" in cli.out

    policy = write(tmp_path / "policy.toml", b'[registry]\nauto-reject-at = "off"\n')
    assert cli("registry", "policy", "--set", policy) == ExitCode.CLEAN
    assert cli("ingest", model, "--name", "org/deep2", actor="pat") == ExitCode.ERROR
    assert "risk: incomplete" in cli.out


# --- 4. version-control folders are scanned --------------------------------------------------


@pytest.mark.parametrize("hidden", [".git/objects/evil.pkl", "sub/.git/x.bin", ".hg/store/y.pt"])
def test_pickle_under_a_version_control_folder_is_scanned(tmp_path: Path, hidden: str) -> None:
    write(tmp_path / "model" / "clean.pkl", benign_state_dict())
    write(tmp_path / "model" / hidden, os_system("fc-vcs-folder"))

    report = scan(tmp_path / "model")

    hits = [f for f in report.findings if f.rule_id == rules.CODE_EXECUTION.id]
    assert [f.location.path for f in hits] == [str(tmp_path / "model" / hidden)], describe(report)


# --- 5. parser exceptions never escape a public entry point ----------------------------------


def safetensors_with_header(header: bytes) -> bytes:
    return struct.pack("<Q", len(header)) + header


def test_folder_nested_a_thousand_deep_is_walked_not_a_recursion_error(tmp_path: Path) -> None:
    """os.walk recursed once per level: 1200 nested folders raised RecursionError out of
    ``mlgate.scan`` (a traceback at the CLI), and the pickle at the bottom went unseen."""
    root = folder = tmp_path / "model"
    root.mkdir()
    for _ in range(1200):  # one level at a time: mkdir(parents=True) recurses too
        folder = folder / "a"
        folder.mkdir()
    write(folder / "evil.pkl", os_system("fc-deep-folder"))
    try:
        report = scan(root)
        code = main(["scan", str(root)])
    finally:
        while folder != tmp_path:  # iteratively: shutil.rmtree recurses as deep
            shutil.rmtree(folder)
            folder = folder.parent

    assert rules.CODE_EXECUTION.id in rules_found(report), describe(report)
    assert code == ExitCode.UNSAFE


def test_7z_with_a_broken_crc_is_incomplete_and_exits_2(tmp_path: Path) -> None:
    """py7zr raises on corrupt data: a finding on the archive, the scan incomplete, exit 2."""
    import py7zr

    payload = write(tmp_path / "data.pkl", pickle.dumps({"w": list(range(1000))}))
    archive = tmp_path / "model" / "model.7z"
    archive.parent.mkdir()
    with py7zr.SevenZipFile(archive, "w") as seven:
        seven.write(payload, "data.pkl")
    data = bytearray(archive.read_bytes())
    data[40] ^= 0xFF  # inside the packed stream
    archive.write_bytes(bytes(data))

    report = scan(archive.parent)

    assert not report.complete, describe(report)
    assert rules.UNSUPPORTED.id in rules_found(report, Severity.HIGH)
    assert main(["scan", str(archive.parent)]) == ExitCode.ERROR


def test_load_of_a_deeply_nested_safetensors_header_raises_a_conversion_error(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "model.safetensors", safetensors_with_header(DEEP_JSON))

    with pytest.raises(ConversionError, match="nested too deeply") as caught:
        mlgate.load(path, framework="numpy")

    assert str(path) in str(caught.value)


def test_convert_of_a_deeply_nested_index_exits_2_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model"
    write(model / "pytorch_model.bin.index.json", DEEP_JSON)
    write(model / "config.json", b'{"model_type": "bert"}')

    with pytest.raises(ConversionError, match="nested too deeply"):
        convert_model(model, tmp_path / "out1")
    code = main(["convert", str(model), str(tmp_path / "out2")])

    assert code == ExitCode.ERROR
    assert "nested too deeply" in capsys.readouterr().err
    assert not (tmp_path / "out2").exists()


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("config.json", DEEP_JSON),
        ("README.md", b"---\n" + b"[" * 1000 + b"\n---\n"),  # YAML front matter
        ("model.safetensors", safetensors_with_header(DEEP_JSON)),  # parameter count
    ],
)
def test_bom_of_deeply_nested_metadata_exits_2_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: bytes
) -> None:
    model = tmp_path / "model"
    write(model / "weights.safetensors", safetensors_with_header(b"{}"))
    write(model / name, content)

    with pytest.raises(UnreadableInputError, match="nested too deeply"):
        build_cyclonedx(model)
    code = main(["bom", str(model), "--spdx"])

    assert code == ExitCode.ERROR
    assert "nested too deeply" in capsys.readouterr().err
