"""Containers found by content, read the way the real loaders read them."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from factories import Reduce, assert_benign, assert_caught, describe, rules_found, scan, write
from payloads import os_system, shell

from mlgate import Severity

CRIT = Severity.CRITICAL




def _evil_checkpoint(name: str) -> bytes:
    buf = io.BytesIO()
    torch.save({"w": torch.ones(2), "x": Reduce(os.system, shell(name))}, buf)
    return buf.getvalue()


def _patch_all(data: bytes, old: bytes, new: bytes) -> bytes:
    assert old in data
    return data.replace(old, new)


def _entry_offsets(data: bytes, name: bytes) -> tuple[int, int]:
    """(local header offset, central header offset) of the entry called ``name``."""
    offsets = []
    for sig, name_at in ((b"PK\x03\x04", 30), (b"PK\x01\x02", 46)):
        pos = data.find(sig)
        while pos >= 0 and data[pos + name_at:pos + name_at + len(name)] != name:
            pos = data.find(sig, pos + 4)
        assert pos >= 0, f"{name!r} not found"
        offsets.append(pos)
    return offsets[0], offsets[1]


def test_torch_zip_payload(tmp_path: Path) -> None:
    report = scan(write(tmp_path / "m.pt", _evil_checkpoint("zip")))
    assert_caught(report, "MLG101", CRIT)
    assert any("data.pkl" in f.location.artifact for f in report.findings)


def test_torch_zip_bad_crc_cve_2025_10156(tmp_path: Path) -> None:
    data = bytearray(_evil_checkpoint("crc"))
    local, central = _entry_offsets(bytes(data), b"archive/data.pkl")
    for crc_at in (local + 14, central + 16):
        data[crc_at:crc_at + 4] = b"\xde\xad\xbe\xef"
    path = write(tmp_path / "m.pt", bytes(data))
    with zipfile.ZipFile(path) as z, pytest.raises(zipfile.BadZipFile):
        z.read("archive/data.pkl")  # what zipfile-based scanners hit
    report = scan(path)
    assert_caught(report, "MLG101", CRIT)
    assert "MLG204" in rules_found(report)


def test_torch_zip_flag_bits_cve_2025_1945(tmp_path: Path) -> None:
    data = bytearray(_evil_checkpoint("flags"))
    local, _ = _entry_offsets(bytes(data), b"archive/data.pkl")
    data[local + 6:local + 8] = struct.pack("<H", 0x0001)  # "encrypted" in the local header only
    report = scan(write(tmp_path / "m.pt", bytes(data)))
    assert_caught(report, "MLG101", CRIT)
    assert "MLG204" in rules_found(report)


def test_local_header_name_mismatch_cve_2025_1944(tmp_path: Path) -> None:
    data = bytearray(_evil_checkpoint("name"))
    local, _ = _entry_offsets(bytes(data), b"archive/data.pkl")
    name_at = local + 30
    data[name_at:name_at + 16] = b"archive/data.txt"  # zipfile raises on the mismatch
    path = write(tmp_path / "m.pt", bytes(data))
    with zipfile.ZipFile(path) as z, pytest.raises(zipfile.BadZipFile):
        z.read("archive/data.pkl")
    report = scan(path)
    assert_caught(report, "MLG101", CRIT)
    assert "MLG204" in rules_found(report)


def test_duplicate_entry_names_both_analysed(tmp_path: Path) -> None:
    evil = os_system("dup")
    benign = pickle.dumps({"w": 1}, protocol=2)
    path = tmp_path / "m.pt"
    with zipfile.ZipFile(path, "w") as z, pytest.warns(UserWarning):
        z.writestr("archive/data.pkl", evil)  # PyTorch reads the first
        z.writestr("archive/data.pkl", benign)  # zipfile reads the last
        z.writestr("archive/version", "3\n")
    report = scan(path)
    assert_caught(report, "MLG101", CRIT)
    assert "MLG204" in rules_found(report)


def test_odd_inner_folder_and_member_name(tmp_path: Path) -> None:
    path = tmp_path / "weights.bin"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("totally-not-torch/data.pkl", os_system("folder"))
        z.writestr("totally-not-torch/extra/blob.dat", os_system("member"))
    report = scan(path)
    hits = [f for f in report.findings if f.rule_id == "MLG101"]
    assert {f.location.members[-1] for f in hits} == {"totally-not-torch/data.pkl",
                                                       "totally-not-torch/extra/blob.dat"}


def test_pickle_zip_polyglot(tmp_path: Path) -> None:
    benign_zip = io.BytesIO()
    torch.save({"w": torch.ones(2)}, benign_zip)
    # torch.load sees a pickle (no PK header at the start); zip readers see the archive.
    data = os_system("polyglot")[:-1] + b"0N." + benign_zip.getvalue()
    report = scan(write(tmp_path / "m.pt", data))
    assert_caught(report, "MLG101", CRIT)
    assert "MLG205" in rules_found(report)


def test_torch_legacy_every_pickle(tmp_path: Path) -> None:
    path = tmp_path / "legacy.pt"
    torch.save({"x": Reduce(os.system, shell("legacy"))}, path,
               _use_new_zipfile_serialization=False)
    report = scan(path)
    assert_caught(report, "MLG101", CRIT)


def test_torchscript_archive_reports_code(tmp_path: Path) -> None:
    class Net(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2

    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(Net()), str(path))
    report = scan(path)
    assert_benign(report)
    assert rules_found(report) == {"MLG401"}, describe(report)


@pytest.mark.parametrize("compress", [0, 3, "gzip", "bz2", "xz", "lzma", "lz4"])
def test_joblib_object_array_payload(tmp_path: Path, compress: object) -> None:
    path = tmp_path / "m.joblib"
    arr = np.array([Reduce(os.system, shell("jobobj")), 1], dtype=object)
    joblib.dump({"a": np.arange(10), "obj": arr}, path, compress=compress)
    assert_caught(scan(path), "MLG101", CRIT)


def _unaligned_joblib(array_bytes: bytes) -> bytes:
    """A joblib stream in the pre-1.2 layout: raw array bytes right after the wrapper."""
    buf = io.BytesIO()
    joblib.dump({"a": np.frombuffer(array_bytes, dtype=np.uint8)}, buf)
    data = buf.getvalue()
    pair = b"\x8c\x1bnumpy_array_alignment_bytes\x94K\x10"
    start = data.index(pair)
    data = data[:start] + data[start + len(pair):]
    wrapper_end = data.index(b"ub", start) + 2
    pad = data[wrapper_end]
    data = data[:wrapper_end] + data[wrapper_end + 1 + pad:]
    frame = struct.unpack_from("<Q", data, 3)[0] - len(pair)
    return data[:3] + struct.pack("<Q", frame) + data[11:]


def test_joblib_array_bytes_read_by_plain_pickle(tmp_path: Path) -> None:
    # joblib.load skips the raw array bytes; pickle.load runs them as opcodes.
    path = write(tmp_path / "m.joblib", _unaligned_joblib(os_system("plainread")))
    report = scan(path)
    assert "MLG205" in rules_found(report), describe(report)
    assert_caught(report, "MLG101", CRIT)


def test_joblib_aligned_array_bytes_are_not_code(tmp_path: Path) -> None:
    # joblib >= 1.2 writes a padding-length byte first: no pickle opcode, pickle.load stops.
    path = tmp_path / "m.joblib"
    joblib.dump({"a": np.frombuffer(os_system("aligned"), dtype=np.uint8)}, path, compress=3)
    assert not scan(path).findings


def test_npy_object_array(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.array([Reduce(os.system, shell("npy"))], dtype=object),
            allow_pickle=True)
    np.savez(tmp_path / "y.npz", a=np.ones(2),
             b=np.array([Reduce(os.system, shell("npz"))], dtype=object))
    report = scan(tmp_path)
    hits = {f.location.path.rsplit("/", 1)[-1] for f in report.findings if f.rule_id == "MLG101"}
    assert hits == {"x.npy", "y.npz"}


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_tar_archives(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "bundle.tar"
    with tarfile.open(path, mode) as tar:
        for name, data in (("model/evil.pkl", os_system("tar")),
                           ("model/ok.pkl", pickle.dumps([1]))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    report = scan(path)
    hit = [f for f in report.findings if f.rule_id == "MLG101"]
    assert hit and hit[0].location.members[-1] == "model/evil.pkl", describe(report)


def test_tar_traversal_and_links(tmp_path: Path) -> None:
    path = tmp_path / "bad.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("../../etc/evil.pkl")
        data = pickle.dumps(1)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("model.pkl")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    report = scan(path)
    assert len([f for f in report.findings if f.rule_id == "MLG206"]) == 2


def test_seven_zip(tmp_path: Path) -> None:
    import py7zr

    path = tmp_path / "m.7z"
    with py7zr.SevenZipFile(path, "w") as z:
        z.writestr(os_system("sevenzip"), "inner/model.ckpt")
    report = scan(path)
    assert_caught(report, "MLG101", CRIT)


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_seven_zip_inside_a_zip_is_copied_for_the_decoder(tmp_path: Path, method: int) -> None:
    # The decoder process opens a file of its own: a nested 7z is copied out of its parent.
    import py7zr

    inner = tmp_path / "m.7z"
    with py7zr.SevenZipFile(inner, "w") as z:
        z.writestr(os_system("nested-sevenzip"), "model.ckpt")
    path = tmp_path / "m.zip"
    with zipfile.ZipFile(path, "w", method) as outer:
        outer.write(inner, "pad/m.7z")
    report = scan(path)
    assert_caught(report, "MLG101", CRIT)
    assert report.complete, describe(report)


def test_seven_zip_inside_a_seven_zip(tmp_path: Path) -> None:
    # The inner archive is decoded while the outer one's worker is still mid-archive.
    import py7zr

    inner = tmp_path / "inner.7z"
    with py7zr.SevenZipFile(inner, "w") as z:
        z.writestr(os_system("7z-in-7z"), "model.ckpt")
    path = tmp_path / "outer.7z"
    with py7zr.SevenZipFile(path, "w") as z:
        z.write(inner, "inner.7z")
        z.writestr(os_system("7z-after-7z"), "last.pkl")
    report = scan(path)
    assert len(report.at_or_above(CRIT)) == 2, describe(report)
    assert report.complete, describe(report)


def test_gzip_wrapped_pickle(tmp_path: Path) -> None:
    report = scan(write(tmp_path / "m.pkl.gz", gzip.compress(os_system("gz"))))
    assert_caught(report, "MLG101", CRIT)


@pytest.mark.parametrize("name", ["model.safetensors", "config.json", "notes.txt", "noext"])
def test_misleading_names(tmp_path: Path, name: str) -> None:
    report = scan(write(tmp_path / name, os_system("ext")))
    assert_caught(report, "MLG101", CRIT)
    if name != "noext":
        assert "MLG207" in rules_found(report)


def test_directory_recursion_and_unrecognised_files(tmp_path: Path) -> None:
    write(tmp_path / "a" / "b" / "c" / "deep.bin", os_system("deep"))
    write(tmp_path / "README.md", b"# hello\nThis is a model card.\n")
    report = scan(tmp_path)
    assert_caught(report, "MLG101", CRIT)
    assert any(f.rule_id == "MLG303" and f.location.path.endswith("README.md")
               for f in report.findings)


def test_symlink_out_of_the_folder(tmp_path: Path) -> None:
    outside = write(tmp_path / "outside.pkl", os_system("link"))
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.pkl").symlink_to(outside)
    report = scan(tmp_path / "model")
    assert "MLG206" in rules_found(report)


def test_safetensors_valid_and_invalid(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_file({"w": torch.ones(2, 3)}, tmp_path / "ok.safetensors")
    assert rules_found(scan(tmp_path / "ok.safetensors")) == {"MLG304"}
    data = bytearray((tmp_path / "ok.safetensors").read_bytes())
    bad = write(tmp_path / "bad.safetensors", bytes(data[:-4]))
    assert "MLG201" in rules_found(scan(bad))


def test_zip_inside_a_compressed_stream(tmp_path: Path) -> None:
    report = scan(write(tmp_path / "m.pt.gz", gzip.compress(_evil_checkpoint("zipgz"))))
    assert_caught(report, "MLG101", CRIT)
    assert all(a.complete for a in report.artifacts), describe(report)


@pytest.mark.parametrize("header", [
    b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
    b'"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',  # duplicate key
    b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}',  # shape x dtype != range
    b'{"a":{"dtype":"X9","shape":[1],"data_offsets":[0,4]}}',  # unknown dtype
    b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
    b'"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}',  # overlap
    b'{"__metadata__":{"k":1},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
])
def test_safetensors_header_violations(tmp_path: Path, header: bytes) -> None:
    body = b"\x00" * 8
    data = struct.pack("<Q", len(header)) + header + body
    report = scan(write(tmp_path / "bad.safetensors", data))
    assert "MLG201" in rules_found(report), describe(report)
    assert "MLG304" not in rules_found(report)


def test_seven_zip_symlink_member(tmp_path: Path) -> None:
    import py7zr

    folder = tmp_path / "d"
    folder.mkdir()
    write(folder / "model.pkl", pickle.dumps([1]))
    (folder / "link").symlink_to("/etc/passwd")
    with py7zr.SevenZipFile(tmp_path / "m.7z", "w") as z:
        z.writeall(folder, "d")
    report = scan(tmp_path / "m.7z")
    assert any(f.rule_id == "MLG206" and "link" in f.message for f in report.findings)
