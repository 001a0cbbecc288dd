"""Planning and writing one safetensors file from a reconstructed checkpoint.

Nested containers are flattened to dotted names; tensors that are the same view of the same
storage (tied weights) are written once, the other names recorded in the metadata as
Hugging Face's ``save_pretrained`` would drop them; plain non-tensor data goes to
``__metadata__`` as JSON. Tensors are ordered by element size, largest first, so each is
aligned to its element size, as the reference writer does. The file is written under a
temporary name in the destination folder and renamed only when complete.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import struct
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlgate.convert.errors import ConversionError
from mlgate.convert.layout import Reader, View, plan, write_all
from mlgate.convert.reconstruct import iter_tensors
from mlgate.convert.refs import ByteSource, Checkpoint, Node, TensorRef

MAX_HEADER = 100_000_000  # the reference loader rejects larger headers
MIN_ALLOWANCE = 4 << 30
MAX_EXPANSION = 16  # output may exceed the source by this factor (compressed .npz members)
META_TIED = "mlgate.tied"
META_DATA = "mlgate.data"
JsonValue = None | bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"]


@dataclass(frozen=True)
class Entry:
    """One tensor to write: its name, what it views and where the storage's bytes are."""

    name: str
    ref: TensorRef
    view: View
    source: ByteSource


@dataclass(frozen=True)
class FilePlan:
    """Everything needed to write one safetensors file; no tensor bytes are held."""

    entries: tuple[Entry, ...]
    aliases: Mapping[str, str]  # dropped name -> the name written
    header: bytes
    data_bytes: int

    @property
    def size(self) -> int:
        return 8 + len(self.header) + self.data_bytes


def plan_file(ckpt: Checkpoint, source_size: int) -> FilePlan:
    """Flatten, deduplicate and check every view against its storage."""
    tensors: dict[str, TensorRef] = {}
    data: dict[str, JsonValue] = {}
    _flatten(ckpt.tree, "", tensors, data)
    kept: dict[TensorRef, str] = {}
    aliases: dict[str, str] = {}
    entries: list[Entry] = []
    for name, ref in tensors.items():
        if ref in kept:
            aliases[name] = kept[ref]
            continue
        kept[ref] = name
        source = ckpt.storages.get(ref.storage)
        if source is None:
            raise ConversionError(f"{ckpt.path}: storage {ref.storage!r} of {name} has no data")
        try:
            view = plan(ref, source.length)
        except ConversionError as e:
            raise ConversionError(f"{ckpt.path}: {name}: {e}") from None
        entries.append(Entry(name, ref, view, source))
    entries.sort(key=lambda e: -e.ref.dtype.itemsize)
    total = sum(e.view.nbytes for e in entries)
    allowance = max(MIN_ALLOWANCE, MAX_EXPANSION * source_size)
    if total > allowance:
        raise ConversionError(
            f"{ckpt.path}: the tensors' views add up to {total} bytes, more than {allowance} "
            "(views repeating the same elements?); refusing to write them"
        )
    metadata = {"format": "pt"}
    if aliases:
        metadata[META_TIED] = json.dumps(aliases, ensure_ascii=False)
    if data:
        metadata[META_DATA] = json.dumps(data, ensure_ascii=False)
    return FilePlan(tuple(entries), aliases, _header(entries, metadata), total)


def _header(entries: list[Entry], metadata: dict[str, str]) -> bytes:
    table: dict[str, object] = {"__metadata__": metadata}
    pos = 0
    for e in entries:
        table[e.name] = {
            "dtype": e.ref.dtype.code,
            "shape": list(e.ref.shape),
            "data_offsets": [pos, pos + e.view.nbytes],
        }
        pos += e.view.nbytes
    try:
        raw = json.dumps(table, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates in a pickled name: not valid UTF-8
        raise ConversionError("a tensor name or value is not valid Unicode text") from None
    raw += b" " * (-len(raw) % 8)
    if len(raw) > MAX_HEADER:
        raise ConversionError(f"the safetensors header would be {len(raw)} bytes, too large")
    return raw


def _flatten(
    node: Node, prefix: str, tensors: dict[str, TensorRef], data: dict[str, JsonValue]
) -> None:
    if isinstance(node, TensorRef):
        name = prefix or "tensor"
        if name in tensors or name in data:
            raise ConversionError(f"two tensors flatten to the same name {name!r}")
        tensors[name] = node
        return
    if isinstance(node, dict | list | tuple) and any(True for _ in iter_tensors(node)):
        pairs = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in pairs:
            text = _key_text(key)
            _flatten(value, f"{prefix}.{text}" if prefix else text, tensors, data)
        return
    name = prefix or "value"
    if name in tensors:
        raise ConversionError(f"a tensor and a value flatten to the same name {name!r}")
    data[name] = _json(node)


def _key_text(key: Node) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key)
    raise ConversionError(f"a container of tensors has a {type(key).__name__} key")


def _json(node: Node) -> JsonValue:
    if isinstance(node, bytes):
        return {"$base64": base64.b64encode(node).decode("ascii")}
    if isinstance(node, list | tuple):
        return [_json(v) for v in node]
    if isinstance(node, dict):
        return {str(k): _json(v) for k, v in node.items()}
    if isinstance(node, TensorRef):  # unreachable: containers with tensors are flattened
        raise ConversionError("a tensor inside plain data")
    return node


def write_file(file_plan: FilePlan, dst: Path) -> None:
    """Write ``file_plan`` to ``dst`` atomically: a temporary file renamed when complete."""
    try:
        fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".part")
    except OSError as e:
        raise ConversionError(f"cannot write in {dst.parent}: {e.strerror or e}") from e
    try:
        try:
            os.fchmod(fd, 0o644)
            write_all(fd, struct.pack("<Q", len(file_plan.header)) + file_plan.header)
            with Reader() as reader:
                for entry in file_plan.entries:
                    reader.copy(entry.source, entry.view, fd)
            written = os.lseek(fd, 0, os.SEEK_CUR)
        finally:
            os.close(fd)
        if written != file_plan.size:
            raise ConversionError(f"wrote {written} bytes to {dst}, expected {file_plan.size}")
        os.replace(tmp, dst)
    except OSError as e:
        _unlink(tmp)
        raise ConversionError(f"cannot write {dst}: {e.strerror or e}") from e
    except BaseException:
        _unlink(tmp)
        raise


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
