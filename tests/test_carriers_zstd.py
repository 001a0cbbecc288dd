"""zstd carriers: pandas' compression="infer" (.zst), tar.zst and joblib/torch users' .zst files
are decompressed (bounded) and their content analysed like gzip's."""

from __future__ import annotations

import os
import pickle
import struct
import sys
from pathlib import Path

from factories import Reduce, assert_benign, assert_caught, describe, scan, write
from payloads import shell
from test_hostile import assert_bounded, bounded_scan, zeros_pickle_bomb

from mlgate import Severity

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd


def _malicious(name: str) -> bytes:
    return pickle.dumps({"weights": [1.0, 2.0], "x": Reduce(os.system, shell(name))}, protocol=4)


def _skippable(payload: bytes, nibble: int = 0) -> bytes:
    """A zstd skippable frame (RFC 8878 section 3.1.2): user data any decoder passes over."""
    return struct.pack("<II", 0x184D2A50 | nibble, len(payload)) + payload


def test_zstd_compressed_malicious_pickle_is_analysed(tmp_path: Path) -> None:
    report = scan(write(tmp_path / "model.pkl.zst", zstd.compress(_malicious("zstd"))))
    assert_caught(report, at_least=Severity.CRITICAL)
    assert any(a.format == "zstd" for a in report.artifacts), report.artifacts


def test_skippable_frame_does_not_hide_a_zstd_pickle(tmp_path: Path) -> None:
    data = _skippable(b"not a model " * 100, 7) + zstd.compress(_malicious("zstdskip"))
    report = scan(write(tmp_path / "model.bin", data))
    assert_caught(report, at_least=Severity.CRITICAL)


def test_skippable_frame_before_an_lz4_frame_is_read_as_lz4(tmp_path: Path) -> None:
    # LZ4 frames share zstd's skippable frames: what follows decides the codec.
    import lz4.frame

    data = _skippable(b"meta") + lz4.frame.compress(_malicious("lz4skip"))
    report = scan(write(tmp_path / "model.bin", data))
    assert_caught(report, at_least=Severity.CRITICAL)
    assert all(a.complete for a in report.artifacts), describe(report)


def test_benign_zstd_pickle_passes_complete(tmp_path: Path) -> None:
    data = zstd.compress(pickle.dumps({"lr": 0.01, "layers": [64, 32], "name": "mlp"}))
    report = scan(write(tmp_path / "config.pkl.zst", data))
    assert_benign(report)
    assert not report.findings, describe(report)


def test_truncated_zstd_frame_is_incomplete_with_what_was_read(tmp_path: Path) -> None:
    # Several pickles, so the malicious one is decoded before the cut.
    plain = _malicious("zstdcut") + pickle.dumps(list(range(50_000)))
    data = zstd.compress(plain)[: -len(plain) // 40]
    report = scan(write(tmp_path / "cut.pkl.zst", data))
    assert_caught(report, at_least=Severity.CRITICAL)
    assert not all(a.complete for a in report.artifacts), describe(report)


def test_corrupt_zstd_frame_is_incomplete_not_a_crash(tmp_path: Path) -> None:
    data = bytearray(zstd.compress(pickle.dumps(list(range(50_000)))))
    data[20:60] = b"\xff" * 40
    report = scan(write(tmp_path / "corrupt.pkl.zst", bytes(data)))
    assert_caught(report)
    assert not all(a.complete for a in report.artifacts), describe(report)
    assert not any("internal error" in f.message for f in report.findings), describe(report)


def test_zstd_frame_declaring_a_huge_window_is_refused(tmp_path: Path) -> None:
    # Frame header (RFC 8878 section 3.1.1.1): descriptor 0 (a window descriptor follows, no
    # content size), then window log 10 + exponent 21 = 31: a 2 GiB window, allocated up front.
    header = b"\x28\xb5\x2f\xfd" + b"\x00" + bytes([21 << 3])
    report = scan(write(tmp_path / "window.zst", header + bytes(64)))
    assert_caught(report)
    assert not all(a.complete for a in report.artifacts), describe(report)


def zeros_zstd(path: Path, mib: int = 2048) -> Path:
    """2 GiB of zeros in one frame (64 KB on disk)."""
    return zeros_pickle_bomb(path, mib, zstd.ZstdCompressor())


def test_zstd_bomb_hits_the_ratio_limit(tmp_path: Path) -> None:
    assert_bounded(bounded_scan(zeros_zstd(tmp_path / "bomb.pkl.zst")))


def test_flood_of_empty_skippable_frames_ends_at_the_deadline(tmp_path: Path) -> None:
    # Empty frames inflate nothing, so only the file's deadline stops them.
    data = _skippable(b"") * 4_000_000 + zstd.compress(pickle.dumps({}))
    assert_bounded(bounded_scan(write(tmp_path / "flood.zst", data), file_seconds=1.0))
