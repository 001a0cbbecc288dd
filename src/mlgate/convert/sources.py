"""Reading a checkpoint file of any supported format, by content (never by extension)."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from mlgate.convert.errors import ConversionError
from mlgate.convert.numpy_src import MAGIC as NPY_MAGIC
from mlgate.convert.numpy_src import read_npy, read_npz
from mlgate.convert.reconstruct import reconstruct
from mlgate.convert.refs import Checkpoint
from mlgate.convert.torch_ckpt import LEGACY_MAGIC, read_torch_legacy, read_torch_zip, zip_members
from mlgate.findings import Location
from mlgate.scan.pickle.program import VMLimits
from mlgate.scan.pickle.vm import PickleVM
from mlgate.scan.reader import ByteReader

ZIP_MAGIC = b"PK\x03\x04"
# joblib's compressors (zlib, gzip, bz2, xz, lzma) and lz4: the arrays are not stored as-is.
COMPRESSED = (b"\x78", b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"\x5d\x00\x00", b"\x04\x22\x4d\x18")


def read_checkpoint(path: Path) -> Checkpoint:
    """Read ``path`` without running anything; raise ConversionRefused/ConversionError."""
    try:
        with path.open("rb") as f:
            size = path.stat().st_size
            return _read(path, f, size)
    except OSError as e:
        raise ConversionError(f"cannot read {path}: {e.strerror or e}") from e


def _read(path: Path, f: BinaryIO, size: int) -> Checkpoint:
    head = f.read(16)
    if head.startswith(ZIP_MAGIC):
        members = zip_members(path, f, size)
        if any(name.endswith("/data.pkl") for name in members):
            return read_torch_zip(path, f, members)
        if members and all(n.endswith((".npy", "/")) for n in members):
            return read_npz(path, f, members)
        raise ConversionError(
            f"{path}: a zip archive that is neither a PyTorch checkpoint nor .npz"
        )
    if head.startswith(NPY_MAGIC):
        return read_npy(path, f, size)
    if looks_like_safetensors(head, size):
        raise ConversionError(f"{path} is already a safetensors file")
    if head.startswith(COMPRESSED):
        raise ConversionError(
            f"{path} is compressed (joblib compress=...); decompress it or re-save it with "
            "compress=0 before converting"
        )
    return _read_pickle(path, f, size)


def _read_pickle(path: Path, f: BinaryIO, size: int) -> Checkpoint:
    reader = ByteReader(f, 0, size)
    first = PickleVM(reader, 1, VMLimits(), joblib=True).run()
    if first.complete and first.result == LEGACY_MAGIC:
        return read_torch_legacy(path, f, reader, first)
    rec = reconstruct(first, Location(str(path)), path)
    if not reader.at_eof():
        raise ConversionError(
            f"{path}: {size - reader.tell()} bytes follow the pickle; refusing an ambiguous file"
        )
    kind = "joblib" if first.joblib_arrays else "pickle"
    return Checkpoint(path, kind, rec.tree, rec.sources)


def looks_like_safetensors(head: bytes, size: int) -> bool:
    """An 8-byte little-endian header length followed by a JSON object."""
    if len(head) < 9 or head[8:9] != b"{":
        return False
    length = int.from_bytes(head[:8], "little")
    return 0 < length <= size - 8
