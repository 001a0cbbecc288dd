"""Reading a checkpoint file of any supported format, by content (never by extension)."""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import BinaryIO

from mlgate.convert.errors import ConversionError
from mlgate.convert.joblib_src import compression_of, decompress
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


def read_checkpoint(
    path: Path, cleanup: ExitStack | None = None, scratch: Path | None = None
) -> Checkpoint:
    """Read ``path`` without running anything; raise ConversionRefused/ConversionError.

    A compressed joblib file is decompressed into a temporary file in ``scratch`` (default:
    the system's temporary folder) that ``cleanup`` deletes when it closes; the checkpoint's
    byte sources refer to that file, so it must stay open while they are read. Without
    ``cleanup`` compressed files are a ConversionError.
    """
    try:
        with path.open("rb") as f:
            size = path.stat().st_size
            return _read(path, f, size, cleanup, scratch)
    except OSError as e:
        raise ConversionError(f"cannot read {path}: {e.strerror or e}") from e


def _read(
    path: Path, f: BinaryIO, size: int, cleanup: ExitStack | None, scratch: Path | None
) -> Checkpoint:
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
    codec = compression_of(head)
    if codec is not None:
        if cleanup is None:
            raise ConversionError(f"{path} is compressed ({codec}); no scratch folder given")
        return _read_compressed(path, codec, cleanup, scratch)
    return _read_pickle(path, f, size)


def _read_compressed(
    path: Path, codec: str, cleanup: ExitStack, scratch: Path | None
) -> Checkpoint:
    """A joblib file written with ``compress=...``: decompressed first, then read in place."""
    temp = decompress(path, codec, scratch if scratch is not None else Path(tempfile.gettempdir()))
    cleanup.callback(_unlink, temp)
    with temp.open("rb") as f:
        size = temp.stat().st_size
        ckpt = _read_pickle(path, f, size, temp)
    return dataclasses.replace(ckpt, expanded_size=size)


def _read_pickle(path: Path, f: BinaryIO, size: int, data: Path | None = None) -> Checkpoint:
    """``data``: the file holding the pickle when it is not ``path`` (decompressed copy)."""
    reader = ByteReader(f, 0, size)
    first = PickleVM(reader, 1, VMLimits(), joblib=True).run()
    if first.complete and first.result == LEGACY_MAGIC:
        return read_torch_legacy(data or path, f, reader, first)
    rec = reconstruct(first, Location(str(path)), data or path)
    if not reader.at_eof():
        raise ConversionError(
            f"{path}: {size - reader.tell()} bytes follow the pickle; refusing an ambiguous file"
        )
    kind = "joblib" if first.joblib_arrays else "pickle"
    return Checkpoint(path, kind, rec.tree, rec.sources)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def looks_like_safetensors(head: bytes, size: int) -> bool:
    """An 8-byte little-endian header length followed by a JSON object."""
    if len(head) < 9 or head[8:9] != b"{":
        return False
    length = int.from_bytes(head[:8], "little")
    return 0 < length <= size - 8
