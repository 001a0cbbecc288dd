"""The HDF5 reader, run as a separate process: libhdf5 is C code that hostile files can
make loop forever or allocate without bound, and no deadline can interrupt it in-process.

Run as a plain script (``python -I _hdf5_worker.py MEMORY``), not through the ``mlgate``
package, so it starts in the time h5py takes to import. It caps its own address space
(RLIMIT_AS), then answers one JSON line per request on stdin with one JSON line on stdout:
what the file holds that can carry a payload (attributes, opaque and string data sets,
external links) and what could not be read. Nothing is deserialised here; the parent
process analyses the bytes.

Request: ``{"path": str, "offset": int, "size": int | null, "max_objects": int,
"max_bytes": int}`` (the HDF5 file is ``size`` bytes of ``path`` from ``offset``).
Response: ``{"events": [...]}``, each event one of
``["attr", path, name, text | null, [base64 blob...]]``, ``["dataset", path, [base64 blob...]]``,
``["external", path, file, target]``, ``["limit", message]``, ``["malformed", message]``.
"""

from __future__ import annotations

import base64
import io
import json
import os
import resource
import sys
from typing import Any

import h5py  # type: ignore[import-untyped]
import numpy as np

Event = list[Any]
# Data set elements whose bytes are checked (the rest of a huge string array is not).
_MAX_ITEMS = 1024


class _Reader:
    """Visits one file breadth-first, bounded in objects and in bytes returned."""

    def __init__(self, max_objects: int, max_bytes: int) -> None:
        self.max_objects = max_objects
        self.max_bytes = max_bytes
        self.returned = 0
        self.events: list[Event] = []

    def read(self, path: str, offset: int, size: int | None) -> list[Event]:
        try:
            with open(path, "rb") as f:
                whole = offset == 0 and size in (None, os.fstat(f.fileno()).st_size)
                source = path if whole else io.BufferedReader(_Window(f, offset, size or 0))
                with h5py.File(source, "r") as handle:
                    self._objects(handle)
        except (OSError, KeyError, ValueError, RuntimeError, TypeError) as e:
            self.events.append(["malformed", f"HDF5 file could not be fully read: {e}"])
        except MemoryError:
            self.events.append(["limit", "HDF5 parser ran out of its memory limit"])
        return self.events

    def _objects(self, handle: h5py.File) -> None:
        pending: list[tuple[str, h5py.Group | h5py.Dataset]] = [("/", handle)]
        seen: set[Any] = set()  # hard links can make cycles and share objects
        while pending:
            path, obj = pending.pop()
            if obj.id in seen:
                continue
            seen.add(obj.id)
            if len(seen) > self.max_objects:
                self.events.append(["limit", f"more than {self.max_objects} HDF5 objects"])
                return
            self._attributes(obj, path)
            if isinstance(obj, h5py.Dataset):
                self._dataset(obj, path)
                continue
            for name in obj:
                link = obj.get(name, getlink=True)
                if isinstance(link, h5py.ExternalLink):
                    self.events.append(
                        ["external", f"{path}{name}", str(link.filename), str(link.path)]
                    )
                elif isinstance(link, h5py.HardLink):  # soft links point inside the file
                    child = obj.get(name)
                    if isinstance(child, h5py.Group):
                        pending.append((f"{path}{name}/", child))
                    elif isinstance(child, h5py.Dataset):
                        pending.append((f"{path}{name}", child))

    def _attributes(self, obj: Any, path: str) -> None:
        for name in obj.attrs:
            try:
                size = _attr_size(obj, name)
                if size > self.max_bytes:
                    self.events.append(["limit", f"HDF5 attribute {name!r} is {size} bytes"])
                    continue
                value = obj.attrs[name]
            except (OSError, KeyError, ValueError, TypeError, RuntimeError) as e:
                self.events.append(["malformed", f"HDF5 attribute {name!r} could not be read: {e}"])
                continue
            text = _text(value) if path == "/" else None  # model_config, keras_version
            blobs = self._charge(_blobs(value), len(text or ""))
            if blobs is not None:
                self.events.append(["attr", path, name, text, blobs])

    def _dataset(self, ds: h5py.Dataset, path: str) -> None:
        """Numeric tensors cannot carry code; opaque, byte and string data sets might."""
        if ds.dtype.kind not in "VOS" or ds.shape is None:
            return
        # Compressed chunks expand on reading: bound the nominal size too.
        nominal = ds.size * ds.dtype.itemsize
        if max(ds.id.get_storage_size(), nominal) > self.max_bytes:
            self.events.append(["limit", f"HDF5 dataset {path} too large to check for payloads"])
            return
        blobs = self._charge(_blobs(ds[()]))
        if blobs is not None:
            self.events.append(["dataset", path, blobs])

    def _charge(self, blobs: list[bytes], extra: int = 0) -> list[str] | None:
        """The blobs encoded for the parent, or None past the bytes budget (reported)."""
        self.returned += sum(map(len, blobs)) + extra
        if self.returned > self.max_bytes:
            self.events.append(["limit", f"more than {self.max_bytes} bytes of HDF5 attributes"])
            return None
        return [base64.b64encode(b).decode("ascii") for b in blobs]


class _Window(io.RawIOBase):
    """``size`` bytes of ``f`` from ``offset``: an HDF5 file stored in an archive as it is."""

    def __init__(self, f: io.BufferedReader, offset: int, size: int) -> None:
        super().__init__()
        self._f, self._offset, self._size, self._pos = f, offset, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def readinto(self, b: Any) -> int:
        n = max(0, min(len(b), self._size - self._pos))
        data = os.pread(self._f.fileno(), n, self._offset + self._pos)
        b[: len(data)] = data
        self._pos += len(data)
        return len(data)


def _attr_size(obj: Any, name: str) -> int:
    """Bytes the attribute occupies in the file (the file's size bounds variable-length data)."""
    try:
        return int(obj.attrs.get_id(name).get_storage_size())
    except (OSError, RuntimeError):
        return 0  # HDF5 reports an error for empty attributes


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
            for item in value.reshape(-1)[:_MAX_ITEMS]:
                out.extend(_blobs(item))
            return out
    return []


def main() -> None:
    memory = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    for line in sys.stdin:
        request = json.loads(line)
        reader = _Reader(request["max_objects"], request["max_bytes"])
        events = reader.read(request["path"], request["offset"], request["size"])
        sys.stdout.write(json.dumps({"events": events}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
