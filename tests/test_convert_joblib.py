"""Compressed joblib files (``compress=...``) convert without being loaded or executed."""

from __future__ import annotations

import gzip
import io
import struct
import time
import zlib
from pathlib import Path

import joblib
import numpy as np
import payloads
import pytest
from safetensors.numpy import load_file

import mlgate
from mlgate.cli import main
from mlgate.convert import ConversionError, ConversionRefused, convert_model

COMPRESSORS = ["zlib", "gzip", "bz2", "lzma", "xz", "lz4"]


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "f32": rng.standard_normal((5, 7)).astype(np.float32),
        "i64": np.arange(-50, 50, dtype=np.int64).reshape(10, 10),
        "flags": rng.integers(0, 2, 33).astype(bool),
        "fortran": np.asfortranarray(rng.standard_normal((6, 4))),
    }


def _same(path: Path, arrays: dict[str, np.ndarray]) -> None:
    got = load_file(path)
    assert set(got) == set(arrays)
    for name, want in arrays.items():
        assert got[name].dtype == want.dtype, name
        assert got[name].shape == want.shape, name
        assert got[name].tobytes() == np.ascontiguousarray(want).tobytes(), name


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("method", COMPRESSORS)
def test_compressed_joblib_converts_bit_for_bit(tmp_path: Path, method: str) -> None:
    arrays = _arrays()
    src = tmp_path / f"model-{method}.joblib"
    joblib.dump(arrays, src, compress=(method, 3))
    assert src.read_bytes()[:2] != b"\x80\x04"  # really compressed
    out = tmp_path / "out"
    out.mkdir()
    result = convert_model(src, out / "model.safetensors")
    assert result.converted[0].kind == "joblib"
    assert result.tensors == len(arrays)
    _same(out / "model.safetensors", arrays)
    assert _leftovers(out) == []


def test_compress_level_only_is_zlib(tmp_path: Path) -> None:
    arrays = _arrays()
    src = tmp_path / "m.joblib"
    joblib.dump(arrays, src, compress=3)
    assert src.read_bytes()[:1] == b"\x78"
    convert_model(src, tmp_path / "m.safetensors")
    _same(tmp_path / "m.safetensors", arrays)


def test_zf_container(tmp_path: Path) -> None:
    arrays = _arrays()
    raw = io.BytesIO()
    joblib.dump(arrays, raw)
    data = raw.getvalue()
    src = tmp_path / "old.joblib"
    src.write_bytes(b"ZF" + hex(len(data)).encode().ljust(19) + zlib.compress(data))
    convert_model(src, tmp_path / "old.safetensors")
    _same(tmp_path / "old.safetensors", arrays)
    lying = tmp_path / "lying.joblib"
    lying.write_bytes(b"ZF" + hex(len(data) + 1).encode().ljust(19) + zlib.compress(data))
    with pytest.raises(ConversionError, match="declares"):
        convert_model(lying, tmp_path / "lying.safetensors")
    assert not (tmp_path / "lying.safetensors").exists()


def test_load_compressed_joblib(tmp_path: Path) -> None:
    arrays = _arrays()
    src = tmp_path / "m.joblib"
    joblib.dump(arrays, src, compress=("gzip", 1))
    got = mlgate.load(src, framework="numpy")
    for name, want in arrays.items():
        assert np.array_equal(got[name], want) and got[name].dtype == want.dtype


def test_folder_with_compressed_joblib(tmp_path: Path) -> None:
    arrays = _arrays()
    src = tmp_path / "model"
    src.mkdir()
    joblib.dump(arrays, src / "weights.joblib", compress=("bz2", 2))
    (src / "config.json").write_text("{}")
    convert_model(src, tmp_path / "safe")
    _same(tmp_path / "safe" / "weights.safetensors", arrays)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("method", ["gzip", "zlib", "lz4"])
def test_malicious_compressed_joblib_refused(tmp_path: Path, method: str) -> None:
    evil = payloads.os_system("convert-joblib-compressed")
    src = tmp_path / "evil.joblib"
    if method == "gzip":
        src.write_bytes(gzip.compress(evil))
    elif method == "zlib":
        src.write_bytes(zlib.compress(evil))
    else:
        import lz4.frame

        src.write_bytes(lz4.frame.compress(evil))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ConversionRefused) as info:
        convert_model(src, out / "evil.safetensors")
    assert info.value.findings
    assert all(f.location.path == str(src) for f in info.value.findings)
    assert list(out.iterdir()) == []


def test_cli_refuses_compressed_payload(tmp_path: Path) -> None:
    src = tmp_path / "evil.joblib"
    src.write_bytes(gzip.compress(payloads.os_system("convert-joblib-cli")))
    assert main(["convert", str(src), str(tmp_path / "evil.safetensors")]) == 1
    assert not (tmp_path / "evil.safetensors").exists()
    assert _leftovers(tmp_path) == []


def _gzip_bomb(path: Path, total: int) -> None:
    """gzip of ``total`` zero bytes, cheaply: after a full flush the compressor's output for
    the same 1 MiB of zeros repeats, so one segment is compressed and written many times."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    first = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
    segment = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
    assert comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH) == segment
    crc = zlib.crc32(zeros)
    with path.open("wb") as f:
        f.write(first)
        for _ in range((total >> 20) - 1):
            f.write(segment)
            crc = zlib.crc32(zeros, crc)
        # an empty final block with fixed codes, then the gzip trailer (CRC-32, size mod 2**32)
        f.write(b"\x03\x00" + struct.pack("<II", crc, total & 0xFFFFFFFF))


def test_bomb_builder_is_valid_gzip(tmp_path: Path) -> None:
    _gzip_bomb(tmp_path / "small.gz", 8 << 20)
    assert gzip.decompress((tmp_path / "small.gz").read_bytes()) == bytes(8 << 20)


def test_decompression_bomb(tmp_path: Path) -> None:
    src = tmp_path / "bomb.joblib"
    _gzip_bomb(src, 2 << 30)
    assert src.stat().st_size < 8 << 20
    out = tmp_path / "out"
    out.mkdir()
    start = time.monotonic()
    with pytest.raises(ConversionError, match="decompression bomb"):
        convert_model(src, out / "bomb.safetensors")
    assert time.monotonic() - start < 30
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("method", COMPRESSORS)
def test_truncated_compressed_joblib(tmp_path: Path, method: str) -> None:
    src = tmp_path / "m.joblib"
    joblib.dump(_arrays(), src, compress=(method, 3))
    data = src.read_bytes()
    src.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ConversionError):
        convert_model(src, out / "m.safetensors")
    assert list(out.iterdir()) == []


def test_damaged_compressed_joblib(tmp_path: Path) -> None:
    src = tmp_path / "m.joblib"
    joblib.dump(_arrays(), src, compress=("gzip", 3))
    data = bytearray(src.read_bytes())
    data[20:40] = b"\xff" * 20
    src.write_bytes(bytes(data))
    with pytest.raises(ConversionError):
        convert_model(src, tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()
    assert _leftovers(tmp_path) == []


def test_cli_converts_compressed_joblib(tmp_path: Path) -> None:
    arrays = _arrays()
    src = tmp_path / "x.joblib"
    joblib.dump(arrays, src, compress=("xz", 3))
    assert main(["convert", str(src), str(tmp_path / "out.safetensors")]) == 0
    _same(tmp_path / "out.safetensors", arrays)
