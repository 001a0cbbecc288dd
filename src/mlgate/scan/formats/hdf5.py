"""HDF5 files: legacy Keras ``.h5`` models and plain HDF5 (weights, data sets).

h5py reads the structure and attribute values only; nothing is deserialised. A legacy Keras
model keeps its architecture as JSON in the root ``model_config`` attribute (and the compile
settings in ``training_config``), analysed like a ``.keras`` config. Attributes and small
opaque datasets are checked for pickled or marshalled payloads, which some tools store there.
"""

from __future__ import annotations

from typing import Any

import h5py  # type: ignore[import-untyped]
import numpy as np

from mlgate.sandbox.disassemble import disassemble
from mlgate.scan import rules
from mlgate.scan.context import ScanContext
from mlgate.scan.formats.keras import analyse_config
from mlgate.scan.limits import ResourceLimitError
from mlgate.scan.source import Source, bytes_source, seekable

_KERAS_CONFIGS = ("model_config", "training_config")
# Payloads smaller than this cannot do anything worth reporting.
_MIN_PAYLOAD = 4


def scan_keras_h5(source: Source, ctx: ScanContext) -> str:
    """Scan an HDF5 file; a legacy Keras model is recognised by its ``model_config``."""
    with seekable(source) as s:
        try:
            handle = h5py.File(s.open(), "r")
        except (OSError, ValueError, RuntimeError) as e:
            ctx.incomplete(source, f"HDF5 structure could not be read: {e}", rules.MALFORMED)
            return "hdf5"
        with handle:
            try:
                return _scan_file(handle, source, ctx)
            except (KeyError, OSError, ValueError, RuntimeError, TypeError) as e:
                ctx.incomplete(source, f"HDF5 file could not be fully read: {e}", rules.MALFORMED)
                return "hdf5"


def _scan_file(handle: h5py.File, source: Source, ctx: ScanContext) -> str:
    is_keras = "model_config" in handle.attrs
    _scan_objects(handle, source, ctx)
    if is_keras:
        version = _text(_read_attr(handle, "keras_version", source, ctx)) or "unknown"
        ctx.add(
            rules.RECOGNISED,
            source.location,
            f"legacy Keras HDF5 model (keras_version {version}): model_config checked for "
            "Lambda code and unsafe references",
        )
        return "keras-h5"
    ctx.add(
        rules.RECOGNISED,
        source.location,
        "HDF5 file without a Keras model config: attributes and opaque data checked for "
        "serialized payloads",
    )
    return "hdf5"


def _scan_objects(handle: h5py.File, source: Source, ctx: ScanContext) -> None:
    """Visit every group and dataset breadth-first (bounded; links are not followed)."""
    pending: list[tuple[str, h5py.Group | h5py.Dataset]] = [("/", handle)]
    visited = 0
    seen: set[Any] = set()  # hard links can make cycles and share objects
    while pending:
        path, obj = pending.pop()
        if obj.id in seen:
            continue
        seen.add(obj.id)
        visited += 1
        if visited > ctx.limits.max_hdf5_objects:
            ctx.incomplete(
                source,
                f"more than {ctx.limits.max_hdf5_objects} HDF5 objects; the rest not analysed",
                rules.LIMIT_EXCEEDED,
            )
            return
        _scan_attributes(obj, path, source, ctx)
        if isinstance(obj, h5py.Dataset):
            _scan_dataset(obj, path, source, ctx)
            continue
        for name in obj:
            link = obj.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                ctx.add(
                    rules.UNSAFE_REFERENCE,
                    ctx.at(source),
                    f"HDF5 external link {path}{name} -> {link.filename}:{link.path}",
                    str(link.filename),
                )
                continue
            if not isinstance(link, h5py.HardLink):
                continue  # soft links point inside the file, already visited
            child = obj.get(name)
            if isinstance(child, h5py.Group | h5py.Dataset):
                pending.append(
                    (f"{path}{name}/" if isinstance(child, h5py.Group) else f"{path}{name}", child)
                )


def _scan_attributes(obj: Any, path: str, source: Source, ctx: ScanContext) -> None:
    for name in obj.attrs:
        value = _read_attr(obj, name, source, ctx)
        if value is None:
            continue
        where = f"{path}@{name}"
        if path == "/" and name in _KERAS_CONFIGS:
            text = _text(value)
            if text is None:
                ctx.incomplete(source, f"Keras {name} is not text; not analysed", rules.MALFORMED)
            else:
                analyse_config(text, source, ctx, name)
            continue
        for i, data in enumerate(_blobs(value)):
            _check_blob(data, where if i == 0 else f"{where}[{i}]", source, ctx)


def _read_attr(obj: Any, name: str, source: Source, ctx: ScanContext) -> object:
    """An attribute's value, or None when it is too large or unreadable (reported)."""
    try:
        size = _attr_size(obj, name)
        if size > ctx.limits.max_hdf5_attribute_bytes:
            ctx.incomplete(
                source,
                f"HDF5 attribute {name!r} is {size} bytes; not analysed",
                rules.LIMIT_EXCEEDED,
            )
            return None
        return obj.attrs[name]
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as e:
        ctx.incomplete(source, f"HDF5 attribute {name!r} could not be read: {e}", rules.MALFORMED)
        return None


def _attr_size(obj: Any, name: str) -> int:
    """Bytes the attribute occupies in the file (the file's size bounds variable-length data)."""
    try:
        return int(obj.attrs.get_id(name).get_storage_size())
    except (OSError, RuntimeError):
        return 0  # HDF5 reports an error for empty attributes


def _scan_dataset(ds: h5py.Dataset, path: str, source: Source, ctx: ScanContext) -> None:
    """Numeric tensors cannot carry code; opaque, byte and string data sets might."""
    if ds.dtype.kind not in "VOS" or ds.shape is None:
        return
    # Compressed chunks expand on reading: bound the nominal size too.
    nominal = ds.size * ds.dtype.itemsize
    if max(ds.id.get_storage_size(), nominal) > ctx.limits.max_hdf5_attribute_bytes:
        ctx.incomplete(
            source, f"HDF5 dataset {path} too large to check for payloads", rules.LIMIT_EXCEEDED
        )
        return
    for i, data in enumerate(_blobs(ds[()])):
        _check_blob(data, path if i == 0 else f"{path}[{i}]", source, ctx)


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray) and value.size == 1:
        return _text(value.reshape(-1)[0])
    return None


def _blobs(value: object) -> list[bytes]:
    """The byte strings an attribute or dataset value holds (opaque, bytes, str)."""
    if isinstance(value, np.void):
        return [value.tobytes()]
    if isinstance(value, bytes):
        return [value]
    if isinstance(value, str):
        return [value.encode("utf-8", "surrogateescape")]
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "V":
            return [value.tobytes()]
        if value.dtype.kind in "OS":
            out: list[bytes] = []
            for item in value.reshape(-1)[:1024]:
                out.extend(_blobs(item))
            return out
    return []


def _check_blob(data: bytes, where: str, source: Source, ctx: ScanContext) -> None:
    if len(data) < _MIN_PAYLOAD:
        return
    if _looks_like_pickle(data):
        try:
            ctx.scan(bytes_source(source, where, data).with_format("pickle"))
        except ResourceLimitError as e:
            ctx.incomplete(source, f"payload in {where}: {e}", rules.LIMIT_EXCEEDED)
    elif _looks_like_marshal(data):
        listing = disassemble(data)
        if listing is not None:
            ctx.add(
                rules.LAMBDA_CODE,
                ctx.at(source),
                f"marshalled Python code object stored in HDF5 {where}",
                listing[:4000],
            )


def _looks_like_pickle(data: bytes) -> bool:
    """Protocol 2+ header, or a protocol-0/1 stream that starts by importing a global."""
    if data[0] == 0x80 and data[1] <= 5:
        return True
    return data[:1] == b"c" and b"\n" in data[:256] and data.rstrip().endswith(b".")


def _looks_like_marshal(data: bytes) -> bool:
    """Marshal's code-object type byte (with or without the reference flag)."""
    return data[0] in (0x63, 0xE3)
