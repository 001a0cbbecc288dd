"""Hostile input: every case is bounded in time and memory and reported, never a crash."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import time
import zipfile
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import pytest
from factories import assert_caught, describe, rules_found, write
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from payloads import b, glob0, os_system, proto, s

import mlgate
from mlgate import Config, Report, Severity
from mlgate.scan.limits import Limits
from mlgate.scan.rules import RECOGNISED


def scan_with(path: Path, **limits: float) -> Report:
    return mlgate.scan(path, config=Config(limits=replace(Limits(), **limits)))


class Compressor(Protocol):
    def compress(self, data: bytes, /) -> bytes: ...
    def flush(self) -> bytes: ...


def zeros_pickle_bomb(path: Path, mib: int, comp: Compressor) -> Path:
    """A compression bomb whose content is one pickle BINBYTES8 argument of ``mib`` MiB of
    zeros (the scanner must skip it, never hold it), compressed chunk by chunk."""
    chunk = bytes(1 << 20)
    with path.open("wb") as f:
        f.write(comp.compress(proto(4) + b"\x8e" + struct.pack("<Q", mib << 20)))
        for _ in range(mib):
            f.write(comp.compress(chunk))
        f.write(comp.flush())
    return path


def _zeros_gzip(path: Path, megabytes: int) -> Path:
    return zeros_pickle_bomb(path, megabytes, zlib.compressobj(9, zlib.DEFLATED, 31))


def test_gzip_bomb_hits_the_ratio_limit(tmp_path: Path) -> None:
    path = _zeros_gzip(tmp_path / "bomb.pkl.gz", 200)
    start = time.monotonic()
    report = scan_with(path, ratio_floor_bytes=16 << 20, max_compression_ratio=100)
    assert time.monotonic() - start < 30
    assert_caught(report, "MLG301")
    assert not all(a.complete for a in report.artifacts)


def test_gzip_bomb_hits_the_size_limit(tmp_path: Path) -> None:
    report = scan_with(_zeros_gzip(tmp_path / "bomb.gz", 64), max_decompressed_bytes=8 << 20)
    assert_caught(report, "MLG301")


def test_zip_member_bomb(tmp_path: Path) -> None:
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("data.pkl", proto(4) + b"\x8e" + struct.pack("<Q", 200 << 20)
                   + bytes(200 << 20) + b".")
    report = scan_with(path, ratio_floor_bytes=16 << 20, max_compression_ratio=100)
    assert_caught(report, "MLG301")


def test_nested_archives_hit_the_depth_limit(tmp_path: Path) -> None:
    data = os_system("deepzip")
    for level in range(20):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr(f"level{level}.bin", data)
        data = buf.getvalue()
    report = mlgate.scan(write(tmp_path / "deep.zip", data), config=Config())
    assert_caught(report, "MLG301")


def test_member_cut_at_the_nesting_limit_is_an_incomplete_artifact(tmp_path: Path) -> None:
    # The scan context lists the cut member itself: its incompleteness must not depend on the
    # caller (the engine's report builder, or any other user of ScanContext) noticing.
    from mlgate.scan.context import ScanContext
    from mlgate.scan.engine import dispatch
    from mlgate.scan.pickle.policy import Policy
    from mlgate.scan.source import file_source

    data, names = pickle.dumps({"w": [1.0, 2.0]}), []
    for level in range(14):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr(f"level{level}.bin", data)
        data = buf.getvalue()
        names.insert(0, f"level{level}.bin")
    path = write(tmp_path / "deep.zip", data)
    ctx = ScanContext(Policy(), Limits(), dispatch)
    ctx.start_deadline()
    ctx.scan(file_source(path))
    innermost = "!".join([str(path), *names[: Limits().max_depth]])
    assert [(a.artifact, a.complete) for a in ctx.artifacts if not a.complete] == [
        (innermost, False)
    ]
    (cut,) = [a for a in mlgate.scan(path, config=Config()).artifacts if not a.complete]
    assert cut.artifact == innermost and cut.size is not None  # listed once, with its size


def test_nested_pickles_hit_the_depth_limit(tmp_path: Path) -> None:
    data = os_system("deeppickle")
    for _ in range(30):
        data = proto(2) + glob0("pickle", "loads") + b(data) + b"\x85R."
    report = mlgate.scan(write(tmp_path / "deep.pkl", data), config=Config())
    assert_caught(report, "MLG301")
    assert report.max_severity is not None and report.max_severity >= Severity.HIGH


def test_deeply_nested_values(tmp_path: Path) -> None:
    depth = 200_000
    data = proto(2) + b")" + b"\x85" * depth + b"." + glob0("os", "system") + b")R."
    start = time.monotonic()
    report = mlgate.scan(write(tmp_path / "deep.pkl", data), config=Config())
    assert time.monotonic() - start < 20
    assert_caught(report, "MLG101")


def test_many_marks(tmp_path: Path) -> None:
    data = b"(" * 1_000_000 + b"N."
    report = mlgate.scan(write(tmp_path / "marks.pkl", data), config=Config())
    assert not report.at_or_above(Severity.HIGH), describe(report)


def test_memo_explosion_renders_within_budget(tmp_path: Path) -> None:
    # Each level is a list holding the previous level twice: 2**200 leaves if expanded.
    levels = b"".join(b"(h\x00h\x00l\x94" if i == 0 else
                      b"(j" + struct.pack("<I", i) + b"j" + struct.pack("<I", i) + b"l\x94"
                      for i in range(200))
    data = (proto(4) + s("leaf") + b"\x94" + levels + glob0("os", "system") + b"j"
            + struct.pack("<I", 200) + b"\x85R.")
    start = time.monotonic()
    report = mlgate.scan(write(tmp_path / "memo.pkl", data), config=Config())
    assert time.monotonic() - start < 10
    hit = [f for f in report.findings if f.rule_id == "MLG101"]
    assert hit and len(hit[0].evidence) < 5000


@pytest.mark.parametrize("opcode", [
    b"\x8e" + struct.pack("<Q", 1 << 60),  # BINBYTES8
    b"\x8d" + struct.pack("<Q", 1 << 60),  # BINUNICODE8
    b"\x96" + struct.pack("<Q", 1 << 60),  # BYTEARRAY8
    b"B" + struct.pack("<I", 0xFFFFFFF0),  # BINBYTES
    b"\x8b" + struct.pack("<i", 1 << 30),  # LONG4
    b"\x95" + struct.pack("<Q", 1 << 62),  # FRAME
])
def test_gigantic_declared_lengths(tmp_path: Path, opcode: bytes) -> None:
    data = os_system("huge")[:-1] + b"0" + proto(4) + opcode + b"."
    report = mlgate.scan(write(tmp_path / "huge.pkl", data), config=Config())
    assert_caught(report, "MLG101")
    assert rules_found(report) & {"MLG201", "MLG301"}


def test_opcode_limit(tmp_path: Path) -> None:
    # Compressed, so the stream's size is unknown: a plain file may run one opcode per byte.
    data = gzip.compress(b"N0" * 200_000 + b"N.")
    report = scan_with(write(tmp_path / "long.pkl.gz", data), max_opcodes=100_000)
    assert_caught(report, "MLG301")


def test_time_budget(tmp_path: Path) -> None:
    data = b"N0" * 300_000 + b"N."
    report = scan_with(write(tmp_path / "slow.pkl", data), file_seconds=1e-9)
    assert_caught(report, "MLG301")


def test_npy_header_too_large(tmp_path: Path) -> None:
    data = b"\x93NUMPY\x02\x00" + struct.pack("<I", 1 << 30) + b"{"
    report = mlgate.scan(write(tmp_path / "x.npy", data), config=Config())
    assert_caught(report, "MLG301")


def test_zip_claiming_too_many_entries(tmp_path: Path) -> None:
    eocd = b"PK\x05\x06" + struct.pack("<4HIIH", 0, 0, 0xFFFE, 0xFFFE, 0, 0, 0)
    report = scan_with(write(tmp_path / "x.zip", b"PK\x03\x04" + eocd), max_archive_members=10)
    assert_caught(report, "MLG302")


def test_truncated_gzip(tmp_path: Path) -> None:
    data = gzip.compress(os_system("truncgz") * 50)[:-30]
    report = mlgate.scan(write(tmp_path / "t.pkl.gz", data), config=Config())
    assert_caught(report, "MLG101")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(blob=st.binary(max_size=400), seed=st.sampled_from([b"", b"\x80\x04", b"PK\x03\x04",
                                                             b"\x93NUMPY\x01\x00", b"\x1f\x8b"]))
def test_random_bytes_never_crash(tmp_path: Path, blob: bytes, seed: bytes) -> None:
    report = mlgate.scan(write(tmp_path / "fuzz.bin", seed + blob), config=Config())
    assert not any("internal error" in f.message for f in report.findings), describe(report)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(cut=st.integers(1, 2000))
def test_every_truncation_of_a_real_checkpoint(tmp_path: Path, cut: int) -> None:
    import torch

    buf = io.BytesIO()
    torch.save({"w": torch.ones(4), "meta": {"step": 3}}, buf)
    data = buf.getvalue()
    report = mlgate.scan(write(tmp_path / "t.pt", data[: len(data) - cut]), config=Config())
    assert not any("internal error" in f.message for f in report.findings), describe(report)
    assert report.findings  # a damaged file is never reported clean


def test_pickle_of_many_protocol_zero_lines(tmp_path: Path) -> None:
    data = pickle.dumps([str(i) for i in range(50_000)], protocol=0)
    report = mlgate.scan(write(tmp_path / "p0.pkl", data), config=Config())
    assert not report.findings


@pytest.mark.parametrize("opcode", [b"]", b"}", b"\x8f", b"N\x85"])
def test_container_flood_hits_the_object_limit(tmp_path: Path, opcode: bytes) -> None:
    # One opcode byte, ~100 bytes of emulator memory each: bounded by objects, not file size.
    data = gzip.compress(proto(4) + opcode * 300_000 + b".")
    report = scan_with(write(tmp_path / "flood.pkl.gz", data), max_objects=100_000)
    assert_caught(report, "MLG301")
    assert not all(a.complete for a in report.artifacts)


@pytest.mark.parametrize("method", ["__mul__", "zfill", "replace", "join"])
def test_string_gadgets_cannot_expand_memory(tmp_path: Path, method: str) -> None:
    text = s("ab" * 50_000)
    if method == "replace":
        call = (glob0("builtins", "getattr") + text + s("replace") + b"\x86R"
                + s("a") + s("x" * 60_000) + b"\x86R")
    elif method == "join":
        call = (glob0("builtins", "getattr") + text + s("join") + b"\x86R"
                + b"]" + b"(" + s("y") * 2000 + b"e" + b"\x85R")
    else:
        call = (glob0("builtins", "getattr") + text + s(method) + b"\x86R"
                + b"J" + struct.pack("<i", 2_000_000_000) + b"\x85R")
    data = proto(4) + glob0("builtins", "exec") + call + b"\x85R."
    start = time.monotonic()
    report = mlgate.scan(write(tmp_path / "m.pkl", data), config=Config())
    assert time.monotonic() - start < 10
    assert_caught(report, "MLG101")


# --- Bomb matrix: each hostile file is scanned in a subprocess that must end within the
# --- budget (seconds, peak RSS of the scan and of its helper processes) with a finding.

_BOUNDED_SCAN = """
import json, resource, sys
from dataclasses import replace
import mlgate
from mlgate.scan.limits import Limits
limits = replace(Limits(), **json.loads(sys.argv[2]))
report = mlgate.scan(sys.argv[1], config=mlgate.Config(limits=limits))
# VmHWM, not RUSAGE_SELF: Linux carries the pre-exec peak (the test process's) into ru_maxrss.
own = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
rss = max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(json.dumps({"rss_mb": rss / 1024,
                  "findings": [[f.rule_id, f.severity.name, f.message] for f in report.findings],
                  "incomplete": [a.artifact for a in report.artifacts if not a.complete]}))
"""
MAX_SECONDS, MAX_RSS_MB = 10.0, 256.0


def bounded_scan(path: Path, **limits: float) -> dict[str, object]:
    """Scan ``path`` in a fresh interpreter; returns findings, incomplete artifacts, seconds
    and peak RSS (MB), and fails if the scan overruns the per-case budget."""
    import json
    import subprocess
    import sys

    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", _BOUNDED_SCAN, str(path), json.dumps(limits)],
                          capture_output=True, text=True, timeout=120, check=True)
    result: dict[str, object] = json.loads(done.stdout)
    result["seconds"] = time.monotonic() - start
    print(f"{path.name}: {result['seconds']:.1f} s, {result['rss_mb']:.0f} MB RSS")
    return result


def assert_bounded(result: dict[str, object], rule_id: str = "MLG301") -> None:
    assert result["seconds"] < MAX_SECONDS and result["rss_mb"] < MAX_RSS_MB, result
    findings = result["findings"]
    assert isinstance(findings, list) and any(f[0] == rule_id for f in findings), findings
    assert result["incomplete"], "a bounded scan must mark the artifact incomplete"


def many_empty_members_tgz(path: Path, members: int = 100_000) -> Path:
    """A tiny tar.gz whose cost is all in per-member overhead (ustar headers by hand:
    tarfile takes seconds to write this many)."""
    out = bytearray()
    for i in range(members):
        head = bytearray(512)
        name = f"m/{i}".encode()
        head[: len(name)] = name
        head[100:157] = b"0000644\x000000000\x000000000\x0000000000000\x0000000000000\x00        0"
        head[257:265] = b"ustar\x0000"
        head[148:156] = b"%06o\x00 " % sum(head)
        out += head
    return write(path, gzip.compress(bytes(out + bytes(1024)), 6))


def _local_header(name: bytes, csize: int, usize: int) -> bytes:
    return b"PK\x03\x04" + struct.pack("<5H3I2H", 20, 0, 8, 0, 0, 0, csize, usize,
                                       len(name), 0) + name


def _central_directory(entries: list[tuple[bytes, int, int, int]], at: int) -> bytes:
    """Central entries (name, compressed size, size, local header offset) and the end record."""
    cdir = b"".join(b"PK\x01\x02" + struct.pack("<6H3I5H2I", 20, 20, 0, 8, 0, 0, 0, csize,
                                                 usize, len(name), 0, 0, 0, 0, 0, offset) + name
                    for name, csize, usize, offset in entries)
    return cdir + b"PK\x05\x06" + struct.pack("<4H2IH", 0, 0, len(entries), len(entries),
                                              len(cdir), at, 0)


def overlapping_zip(path: Path, files: int = 2000, kernel_mib: int = 32) -> Path:
    """Fifield's "A better zip bomb" (2019): every file's deflate data quotes the next
    file's local header in a stored block and ends in one shared kernel of zeros."""
    kernel = zlib.compress(bytes(kernel_mib << 20), 9)[2:-4]  # raw deflate, final block
    names = [f"f{i:05d}".encode() for i in range(files)]
    csize, usize = [0] * files, [0] * files
    csize[-1], usize[-1] = len(kernel), kernel_mib << 20
    for i in range(files - 2, -1, -1):
        quoted = 30 + len(names[i + 1])
        csize[i], usize[i] = 5 + quoted + csize[i + 1], quoted + usize[i + 1]
    body, entries = bytearray(), []
    for i, name in enumerate(names):
        entries.append((name, csize[i], usize[i], len(body)))
        body += _local_header(name, csize[i], usize[i])
        if i + 1 < files:
            quoted = 30 + len(names[i + 1])
            body += b"\x00" + struct.pack("<HH", quoted, quoted ^ 0xFFFF)  # stored block
    body += kernel
    return write(path, bytes(body) + _central_directory(entries, len(body)))


def shared_stream_zip(path: Path, entries: int = 5000, mib: int = 64) -> Path:
    """Every central entry points at one local header: one deflate stream read N times."""
    data = zlib.compress(bytes(mib << 20), 9)[2:-4]
    head = _local_header(b"data.bin", len(data), mib << 20)
    cdir = [(f"m{i}".encode(), len(data), mib << 20, 0) for i in range(entries)]
    return write(path, head + data + _central_directory(cdir, len(head) + len(data)))


def zeros_7z(path: Path, mib: int = 2048) -> Path:
    """A solid LZMA2 7z holding ``mib`` MiB of zeros (~150 KB per GiB), from a sparse file."""
    import py7zr

    sparse = path.with_suffix(".bin")
    with sparse.open("wb") as f:
        f.truncate(mib << 20)
    with py7zr.SevenZipFile(path, "w") as z:
        z.write(sparse, "zeros.bin")
    sparse.unlink()
    return path


def test_tar_of_many_empty_members_hits_the_member_limit(tmp_path: Path) -> None:
    assert_bounded(bounded_scan(many_empty_members_tgz(tmp_path / "many.tar.gz")))


def test_overlapping_entry_zip_bomb_is_refused(tmp_path: Path) -> None:
    result = bounded_scan(overlapping_zip(tmp_path / "overlap.zip"))
    assert_bounded(result)
    assert any("overlap" in f[2] for f in result["findings"])  # type: ignore[union-attr]


def test_zip_entries_sharing_one_deflate_stream_are_refused(tmp_path: Path) -> None:
    assert_bounded(bounded_scan(shared_stream_zip(tmp_path / "shared.zip")))


def test_7z_declaring_a_bomb_is_not_extracted(tmp_path: Path) -> None:
    # 16 MiB of zeros in ~3 KB, over 1000:1 past a 1 MiB floor (the default floor, 64 MiB,
    # takes py7zr minutes to compress; the 2 GiB original is refused the same way).
    bomb = zeros_7z(tmp_path / "zeros.7z", 16)
    assert_bounded(bounded_scan(bomb, ratio_floor_bytes=1 << 20))


FOLDING_BOMBS = {
    "doubling": '{% set a = "ab" %}' + "{% set a = a + a %}" * 40 + "{{ a }}",
    "replace": '{% set a = "' + "x" * 300 + '" %}' + '{% set a = a|replace("x", a) %}' * 3,
}


@pytest.mark.parametrize("template", FOLDING_BOMBS.values(), ids=FOLDING_BOMBS.keys())
def test_gguf_template_folding_is_bounded(tmp_path: Path, template: str) -> None:
    from test_format_gguf import write_gguf

    assert_bounded(bounded_scan(write_gguf(tmp_path / "t.gguf", template)))


def _h5(path: Path) -> Path:
    import h5py
    import numpy as np

    with h5py.File(path, "w") as f:
        f.create_dataset("w", data=np.ones(4))
        f.attrs["note"] = "weights"
    return path


HDF5_READER_FAULTS = {
    # libhdf5 looping forever on a fuzzed file: the reader never answers.
    "hang": "import sys, time\nsys.stdin.readline()\ntime.sleep(600)\n",
    # libhdf5 faulting (or the reader dying out of memory) before it answers.
    "crash": "import os, sys\nsys.stdin.readline()\nos.abort()\n",
}


@pytest.mark.parametrize("fault", HDF5_READER_FAULTS.values(), ids=HDF5_READER_FAULTS.keys())
def test_hdf5_reader_hang_or_crash_is_a_finding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    from mlgate.scan.formats import hdf5

    monkeypatch.setattr(hdf5, "WORKER_SCRIPT", write(tmp_path / "reader.py", fault.encode()))
    path = _h5(tmp_path / "w.h5")
    start = time.monotonic()
    report = scan_with(path, file_seconds=2)
    assert time.monotonic() - start < MAX_SECONDS
    assert_caught(report)
    assert not all(a.complete for a in report.artifacts)


def test_hdf5_reader_runs_under_its_memory_limit(tmp_path: Path) -> None:
    # 64 MiB of address space cannot even import h5py: the real reader dies, is reported.
    report = scan_with(_h5(tmp_path / "w.h5"), hdf5_worker_memory=64 << 20)
    assert_caught(report, "MLG302")
    assert not all(a.complete for a in report.artifacts)


def test_real_hdf5_files_are_read_out_of_process(tmp_path: Path) -> None:
    for i in range(3):
        _h5(tmp_path / f"w{i}.h5")
    result = bounded_scan(tmp_path)
    assert not result["incomplete"] and result["seconds"] < MAX_SECONDS, result
    assert [f[0] for f in result["findings"]] == [RECOGNISED.id] * 3  # type: ignore[union-attr]


def test_crc_pass_is_charged_to_the_file_budget(tmp_path: Path) -> None:
    # The member is sniffed from its first MiB (unknown bytes); the CRC pass inflates it all.
    path = tmp_path / "one.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("blob.bin", b"\x01" * (8 << 20))
    report = scan_with(path, max_file_decompressed_bytes=4 << 20)
    assert [(a.artifact == str(path), a.complete) for a in report.artifacts] == [
        (False, True), (True, False)], describe(report)
    assert_caught(report, "MLG301")


def test_scan_budget_spans_every_file(tmp_path: Path) -> None:
    for i in range(2):
        write(tmp_path / f"p{i}.pkl", pickle.dumps(i))
    report = scan_with(tmp_path, scan_seconds=1e-9)
    assert_caught(report, "MLG301")
    assert not any(a.complete for a in report.artifacts)


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_hdf5_member_of_an_archive_is_read_in_place_or_copied(tmp_path: Path,
                                                              method: int) -> None:
    # Stored: the reader opens the archive at the member's offset; deflated: a copy.
    import h5py
    import numpy as np

    inner = tmp_path / "w.h5"
    with h5py.File(inner, "w") as f:
        f.create_dataset("w", data=np.ones(4))
        f["w"].attrs["meta"] = np.void(os_system("h5-in-zip"))
    path = tmp_path / "m.zip"
    with zipfile.ZipFile(path, "w", method) as z:
        z.write(inner, "model/w.h5")
    report = mlgate.scan(path, config=Config())
    assert_caught(report, "MLG101")
    assert all(a.complete for a in report.artifacts), describe(report)


def _seven_zip(path: Path, members: dict[str, bytes]) -> Path:
    import py7zr

    with py7zr.SevenZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(data, name)
    return path


SEVEN_ZIP_FAULTS = {"hang": "MLG301", "crash": "MLG302"}


@pytest.mark.parametrize("fault", SEVEN_ZIP_FAULTS, ids=SEVEN_ZIP_FAULTS)
def test_7z_decoder_hang_or_crash_is_a_finding_and_the_scan_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    # A PPMd/BCJ decoder looping forever (py7zr #255, #417) or faulting: the worker stands in.
    monkeypatch.setenv("MLGATE_TEST_7Z_WORKER_FAULT", fault)
    archive = _seven_zip(tmp_path / "a.7z", {"model.pkl": pickle.dumps([1])})
    write(tmp_path / "b.pkl", os_system("after-7z"))
    start = time.monotonic()
    report = scan_with(tmp_path, file_seconds=2)
    seconds = time.monotonic() - start
    print(f"{fault}: {seconds:.1f} s")
    assert seconds < MAX_SECONDS
    assert_caught(report, SEVEN_ZIP_FAULTS[fault])
    assert_caught(report, "MLG101", Severity.CRITICAL)  # the next file was scanned
    assert [a.artifact for a in report.artifacts if not a.complete] == [str(archive)]


def test_silent_7z_decoder_is_killed_long_before_the_file_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A decoder looping inside C reports nothing: with the default 600 s file budget the scan
    still ends once the archive's decoding allowance is spent, not at the file deadline."""
    monkeypatch.setenv("MLGATE_TEST_7Z_WORKER_FAULT", "hang")
    archive = _seven_zip(tmp_path / "a.7z", {"model.pkl": pickle.dumps([1])})
    start = time.monotonic()
    report = scan_with(archive, sevenzip_idle_seconds=1)
    assert time.monotonic() - start < MAX_SECONDS
    assert_caught(report, "MLG301")
    assert not report.complete


def test_7z_decoding_allowance_grows_with_the_declared_size(tmp_path: Path) -> None:
    """The other side of that limit: a member that takes longer to decode (96 MiB, about
    0.8 s of LZMA2 here) than the fixed part of the allowance (0.3 s) is given the time its
    declared size needs, and is scanned complete."""
    import py7zr

    archive = tmp_path / "big.7z"
    with py7zr.SevenZipFile(archive, "w", filters=[{"id": py7zr.FILTER_LZMA2, "preset": 1}]) as z:
        z.writestr(os.urandom(1 << 20) * 96, "blob.bin")
    report = scan_with(archive, sevenzip_idle_seconds=0.3)
    assert report.complete, describe(report)


def test_7z_member_before_a_hanging_decoder_is_still_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLGATE_TEST_7Z_WORKER_FAULT", "hang:1")
    archive = _seven_zip(
        tmp_path / "m.7z", {"evil.pkl": os_system("first-7z-member"), "w.pkl": pickle.dumps([1])}
    )
    report = scan_with(archive, file_seconds=2)
    assert_caught(report, "MLG101", Severity.CRITICAL)
    assert_caught(report, "MLG301")
    assert not report.complete, describe(report)


def test_7z_inflating_past_the_file_budget_is_stopped_in_the_decoder(tmp_path: Path) -> None:
    # Honest headers under every per-member limit; the file's budget is spent while decoding.
    result = bounded_scan(zeros_7z(tmp_path / "zeros.7z", 16),
                          max_file_decompressed_bytes=4 << 20)
    assert_bounded(result)
    findings = result["findings"]
    assert any("decoder stopped at 4194304 bytes" in f[2] for f in findings), findings  # type: ignore[union-attr]


def _segfaulting_ppmd_7z(path: Path) -> Path:
    """pyppmd dereferences corrupt model state: 16 zero bytes into a PPMd stream are a SIGSEGV."""
    import py7zr

    with py7zr.SevenZipFile(path, "w", filters=[{"id": py7zr.FILTER_PPMD}]) as z:
        z.writestr(pickle.dumps({"w": list(range(20000))}), "data.pkl")
    data = bytearray(path.read_bytes())
    data[1000:1016] = bytes(16)  # inside the packed stream (the headers are at the end)
    return write(path, bytes(data))


def test_corrupt_ppmd_7z_crashing_its_decoder_is_a_finding(tmp_path: Path) -> None:
    # In-process, the segfault took the whole scanner down (exit 139, no report at all).
    archive = _segfaulting_ppmd_7z(tmp_path / "a.7z")
    write(tmp_path / "b.pkl", os_system("after-ppmd"))
    report = scan_with(tmp_path)
    assert any(f.rule_id == "MLG302" and "signal 11" in f.message for f in report.findings), (
        describe(report))
    assert_caught(report, "MLG101", Severity.CRITICAL)
    assert [a.artifact for a in report.artifacts if not a.complete] == [str(archive)]


def test_7z_decoder_is_reused_across_archives_and_replaced_after_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlgate.scan.formats import sevenzip

    started: list[object] = []
    real_new_worker = sevenzip._new_worker

    def counting_new_worker(memory: int) -> object:
        started.append(memory)
        return real_new_worker(memory)

    monkeypatch.setattr(sevenzip, "_new_worker", counting_new_worker)
    _seven_zip(tmp_path / "a.7z", {"a.pkl": os_system("7z-a")})
    _segfaulting_ppmd_7z(tmp_path / "b.7z")
    for name in ("c", "d"):
        _seven_zip(tmp_path / f"{name}.7z", {f"{name}.pkl": os_system(f"7z-{name}")})
    report = scan_with(tmp_path)
    assert len(report.at_or_above(Severity.CRITICAL)) == 3, describe(report)
    assert [a.artifact for a in report.artifacts if not a.complete] == [str(tmp_path / "b.7z")]
    assert len(started) == 2  # a and b share one worker; b's crash replaces it for c and d


def test_7z_decoder_runs_under_its_memory_limit(tmp_path: Path) -> None:
    # LZMA2 preset 9 declares a 64 MiB dictionary, which liblzma allocates before decoding
    # (a hostile header may declare 1.5 GiB): past the worker's address space, a finding.
    import py7zr

    path = tmp_path / "big-dict.7z"
    with py7zr.SevenZipFile(path, "w", filters=[{"id": py7zr.FILTER_LZMA2, "preset": 9}]) as z:
        z.writestr(pickle.dumps([1]), "a.pkl")
    report = scan_with(path, sevenzip_worker_memory=64 << 20)
    assert any("memory limit" in f.message for f in report.findings), describe(report)
    assert_caught(report, "MLG301")
    assert not report.complete
    assert scan_with(path).complete  # the default limit decodes it


SEVEN_ZIP_CODECS = ["FILTER_PPMD", "FILTER_LZMA2", "FILTER_BZIP2", "FILTER_DEFLATE",
                    "FILTER_BROTLI"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(codec=st.sampled_from(SEVEN_ZIP_CODECS), flips=st.lists(
    st.tuples(st.integers(32, 600), st.integers(0, 255)), min_size=1, max_size=8))
def test_mutated_7z_streams_end_in_a_report(tmp_path: Path, codec: str,
                                            flips: list[tuple[int, int]]) -> None:
    # Every C decoder py7zr uses, fed corrupt streams: crash, hang or garbage, the scan reports.
    import py7zr

    path = tmp_path / f"{codec}.7z"
    with py7zr.SevenZipFile(path, "w", filters=[{"id": getattr(py7zr, codec)}]) as z:
        z.writestr(pickle.dumps({"w": list(range(3000))}), "data.pkl")
    data = bytearray(path.read_bytes())
    for at, value in flips:
        data[at % (len(data) - 128)] = value  # the packed stream; the headers are at the end
    report = scan_with(write(path, bytes(data)), file_seconds=5)
    assert report.complete or rules_found(report, Severity.HIGH), describe(report)
