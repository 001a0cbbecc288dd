"""The 7-Zip decoder, run as a separate process: py7zr's decoders (pyppmd, inflate64, pybcj,
brotli) are C code that corrupt input can make loop forever (py7zr issues #255, #417: PPMd
on exhausted input), and py7zr's own loops that feed them never reach the scan's deadline
checks. Nothing in-process can interrupt them; the parent kills this process instead.

Run as a plain script (``python -I _7z_worker.py MEMORY``), not through the ``mlgate``
package, so it starts in the time py7zr takes to import; the parent reuses it for every 7z
file of a scan until it hangs or crashes. It caps its address space (RLIMIT_AS); per archive,
its CPU time (RLIMIT_CPU, to the archive's deadline) and the size of any file it writes
(RLIMIT_FSIZE), and it counts the bytes it writes over all members against ``max_bytes``
(the archive's remaining decompression budget).

Protocol, one JSON object per line:
- in ``{"path": str, "folder": str, "max_bytes": int, "seconds": int}`` (one archive)
- out ``{"members": [[name, declared size | null, is directory, is symlink], ...]}``
- in ``{"extract": [name, ...]}`` (the members the parent accepted; may be none)
- out ``{"member": name, "file": n}`` per member decompressed, as soon as it is complete, into
  ``folder/n`` (a number: member names are attacker text and never become paths)
- out ``{"end": true}``, or ``{"error": message}`` (corrupt archive) or ``{"limit": message}``
  (bytes or memory budget) as the archive's last line; the worker then awaits the next one.
"""

from __future__ import annotations

import json
import math
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import py7zr
from py7zr.io import Py7zIO, WriterFactory

# Test hook: "hang" or "crash", optionally ":K" (at the K-th member decompressed, from 0),
# stands in for a decoder that loops forever or faults.
FAULT = "MLGATE_TEST_7Z_WORKER_FAULT"
# What py7zr and its decoders raise on archives they cannot read.
_ARCHIVE_ERRORS = (
    py7zr.Bad7zFile,
    py7zr.exceptions.ArchiveError,
    py7zr.exceptions.UnsupportedCompressionMethodError,
    EOFError,
    OSError,
    ValueError,
    KeyError,
    IndexError,
)


def _say(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


class _OverBudget(Exception):
    """More bytes decompressed than the parent's remaining budget allows."""


class _Members(WriterFactory):
    """Numbers each member py7zr decompresses and bounds the bytes over the archive."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.total = 0
        self.count = 0
        kind, _, at = os.environ.get(FAULT, "").partition(":")
        self.fault = (kind, int(at or 0))

    def create(self, filename: str) -> Py7zIO:
        n = self.count
        self.count += 1
        if self.fault == ("hang", n):
            time.sleep(3600)
        if self.fault == ("crash", n):
            os.abort()
        return _Member(self, filename, n)

    def charge(self, n: int) -> None:
        self.total += n
        if self.total > self.max_bytes:
            raise _OverBudget(
                f"7z decoder stopped at {self.max_bytes} bytes, the archive's decompression "
                "budget (decompression bomb?)"
            )


class _Member(Py7zIO):
    """One member written to ``FOLDER/n``, reported when py7zr closes it."""

    def __init__(self, members: _Members, name: str, n: int) -> None:
        self._members = members
        self._name = name
        self._n = n
        self._file = (members.folder / str(n)).open("w+b")

    def write(self, s: bytes | bytearray) -> int:
        self._members.charge(len(s))
        return self._file.write(s)

    def read(self, size: int | None = None) -> bytes:
        return self._file.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def flush(self) -> None:
        self._file.flush()

    def size(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        self._file.close()
        _say({"member": self._name, "file": self._n})


def _listing(archive: py7zr.SevenZipFile) -> list[list[Any]]:
    return [[m.filename, m.uncompressed, m.is_directory, m.is_symlink] for m in archive.files]


def _run(path: str, folder: Path, max_bytes: int) -> None:
    with open(path, "rb") as f:  # a file object: py7zr then decodes in this thread only
        try:
            archive = py7zr.SevenZipFile(f, mode="r")
            members = _listing(archive)
        except _ARCHIVE_ERRORS as e:
            _say({"error": str(e)})
            return
        with archive:
            _say({"members": members})
            targets = json.loads(sys.stdin.readline() or "{}").get("extract") or []
            try:
                if targets:
                    archive.extract(targets=targets, factory=_Members(folder, max_bytes))
            except _OverBudget as e:
                _say({"limit": str(e)})
                return
            except _ARCHIVE_ERRORS as e:
                _say({"error": str(e)})
                return
    _say({"end": True})


def _limit(kind: int, soft: int) -> None:
    """Set the soft limit only: the hard one stays where it was, so the next archive can
    have its own (the limits guard against runaway decoders, not against this code)."""
    resource.setrlimit(kind, (soft, resource.getrlimit(kind)[1]))


def main() -> None:
    memory = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    while line := sys.stdin.readline():
        request = json.loads(line)
        used = resource.getrusage(resource.RUSAGE_SELF)
        _limit(resource.RLIMIT_CPU, math.ceil(used.ru_utime + used.ru_stime) + request["seconds"])
        # A backstop to the count in _Members: no file may outgrow the archive's budget.
        _limit(resource.RLIMIT_FSIZE, request["max_bytes"] + 1)
        try:
            _run(request["path"], Path(request["folder"]), request["max_bytes"])
        except MemoryError:
            _say({"limit": "7z decoder ran out of its memory limit"})


if __name__ == "__main__":
    main()
