"""PyTorch checkpoints: the zip format (``torch.save`` since 1.6) and the legacy stacked format.

Both are read with mlgate's own readers (ZIP reader, pickle VM): the pickle is reconstructed
under the restricted rules of :mod:`mlgate.convert.reconstruct`, and each storage the pickle
names is located in the file and checked to hold at least the bytes the pickle declares.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

from mlgate.convert.errors import ConversionError, ConversionRefused
from mlgate.convert.reconstruct import Reconstruction, reconstruct
from mlgate.convert.refs import ByteSource, Checkpoint, FileRange
from mlgate.findings import Finding, Location, Severity
from mlgate.scan import rules
from mlgate.scan.pickle.program import Program, VMLimits
from mlgate.scan.pickle.vm import PickleVM
from mlgate.scan.reader import ByteReader
from mlgate.scan.ziputil import ZipEntry, ZipFormatError, read_directory

MAX_ZIP_ENTRIES = 1_000_000
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
STORED = 0


def zip_members(path: Path, f: BinaryIO, size: int) -> dict[str, ZipEntry]:
    """The archive's members by name, refusing anything PyTorch and zipfile would disagree on."""
    try:
        directory = read_directory(f, size, MAX_ZIP_ENTRIES)
    except (ZipFormatError, struct.error) as e:
        raise ConversionError(f"{path}: not a readable zip archive: {e}") from e
    problems = list(directory.problems)
    members: dict[str, ZipEntry] = {}
    for entry in directory.entries:
        problems += [f"{entry.name}: {p}" for p in entry.problems]
        if entry.name in members:
            problems.append(f"{entry.name}: duplicate member name")
        members.setdefault(entry.name, entry)
    if problems:
        raise ConversionError(f"{path}: damaged or ambiguous zip archive: {'; '.join(problems)}")
    return members


def read_torch_zip(path: Path, f: BinaryIO, members: dict[str, ZipEntry]) -> Checkpoint:
    """A ``torch.save`` zip: ``<prefix>/data.pkl`` plus one record per storage."""
    pickles = [n for n in members if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
        raise ConversionError(f"{path}: expected one <archive>/data.pkl, found {len(pickles)}")
    prefix = pickles[0].removesuffix("data.pkl")
    if f"{prefix}constants.pkl" in members or any(n.startswith(f"{prefix}code/") for n in members):
        where = Location(str(path), (f"{prefix}code/",))
        finding = Finding(
            rules.CONVERSION_REFUSED.id,
            Severity.HIGH,
            "a TorchScript archive: it carries code that torch.jit.load compiles and runs",
            where,
        )
        raise ConversionRefused(f"{path}: TorchScript archive refused", [finding])
    order = members.get(f"{prefix}byteorder")
    if order is not None and _member_bytes(f, order, 16) != b"little":
        raise ConversionError(f"{path}: big-endian checkpoints are not supported")
    entry = members[pickles[0]]
    _require_stored(path, entry)
    reader = ByteReader(f, entry.data_offset, entry.data_offset + entry.size)
    prog = PickleVM(reader, 1, VMLimits(), joblib=False).run()
    rec = reconstruct(prog, Location(str(path), (entry.name,)), path)
    sources: dict[str, ByteSource] = dict(rec.sources)
    for key, decl in rec.storages.items():
        if key in sources:
            continue
        record = members.get(f"{prefix}data/{key}")
        if record is None:
            raise ConversionError(f"{path}: storage record {prefix}data/{key} is missing")
        _require_stored(path, record)
        if record.size < decl.nbytes:
            raise ConversionError(
                f"{path}: storage record {record.name} holds {record.size} bytes, "
                f"the pickle declares {decl.nbytes}"
            )
        sources[key] = FileRange(path, record.data_offset, decl.nbytes)
    return Checkpoint(path, "pytorch-zip", rec.tree, sources)


def _require_stored(path: Path, entry: ZipEntry) -> None:
    # torch.save always stores members uncompressed; anything else was not written by it.
    if entry.method != STORED or entry.compressed_size != entry.size:
        raise ConversionError(f"{path}: member {entry.name} is compressed (method {entry.method})")


def _member_bytes(f: BinaryIO, entry: ZipEntry, limit: int) -> bytes:
    f.seek(entry.data_offset)
    return f.read(min(entry.size, limit))


def read_torch_legacy(path: Path, f: BinaryIO, reader: ByteReader, first: Program) -> Checkpoint:
    """The pre-1.6 format: magic, protocol, system info, data and storage keys pickles, then
    each storage as an 8-byte element count followed by its bytes, in the keys' order."""
    where = Location(str(path))
    programs = [first]
    while len(programs) < 5 and programs[-1].complete:
        programs.append(PickleVM(reader, len(programs) + 1, VMLimits(), joblib=False).run())
    recs = [reconstruct(p, where, path) for p in programs]
    if len(recs) != 5:
        raise ConversionError(f"{path}: legacy checkpoint with {len(recs)} of its 5 pickles")
    protocol, info, keys = recs[1].tree, recs[2].tree, recs[4].tree
    if protocol != LEGACY_PROTOCOL:
        raise ConversionError(f"{path}: legacy protocol {protocol!r} is not supported")
    if not isinstance(info, dict) or info.get("little_endian") is not True:
        raise ConversionError(f"{path}: big-endian or unknown legacy system information")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ConversionError(f"{path}: the legacy storage key list is malformed")
    end = reader.size or 0
    sources = _legacy_storages(path, f, (reader.tell(), end), recs[3], [str(k) for k in keys])
    return Checkpoint(path, "pytorch-legacy", recs[3].tree, sources)


def _legacy_storages(
    path: Path, f: BinaryIO, span: tuple[int, int], rec: Reconstruction, keys: list[str]
) -> dict[str, ByteSource]:
    pos, size = span
    sources: dict[str, ByteSource] = {}
    for key in keys:
        decl = rec.storages.get(key)
        if decl is None or key in sources:
            raise ConversionError(f"{path}: storage key {key!r} is unknown or repeated")
        f.seek(pos)
        head = f.read(8)
        if len(head) < 8:
            raise ConversionError(f"{path}: truncated before storage {key!r}")
        numel = struct.unpack("<q", head)[0]
        itemsize = decl.dtype.itemsize if decl.dtype else 1
        if numel < 0 or numel * itemsize != decl.nbytes or pos + 8 + decl.nbytes > size:
            raise ConversionError(
                f"{path}: storage {key!r} record ({numel} elements) disagrees with the pickle "
                f"or runs past the end of the file"
            )
        sources[key] = FileRange(path, pos + 8, decl.nbytes)
        pos += 8 + decl.nbytes
    missing = set(rec.storages) - set(sources)
    if missing:
        raise ConversionError(f"{path}: storages {sorted(missing)[:5]} have no data record")
    return sources
