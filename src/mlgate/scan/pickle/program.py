"""What one emulated pickle does: its calls, globals, anomalies and how it ended."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlgate.scan.pickle.values import Call, Global, Value


class StreamError(Exception):
    """The real unpickler would raise here."""


class LimitError(Exception):
    """A configured resource limit was reached."""


class NotFollowedError(Exception):
    """The real loader goes on, but mlgate cannot tell how (fail closed: incomplete)."""


@dataclass(frozen=True)
class VMLimits:
    """Bounds on one emulation run."""

    max_opcodes: int = 20_000_000
    max_objects: int = 4_000_000
    max_inline_bytes: int = 1 << 20  # larger arguments become Blobs (kept on disk)
    deadline: float | None = None  # time.monotonic() value


@dataclass
class Anomaly:
    """Something a reviewer must know about the stream's structure."""

    kind: str  # "frame", "extension", "trailing"
    message: str
    offset: int
    index: int


@dataclass
class Program:
    """Everything one pickle (STOP-terminated stream) would do when loaded."""

    number: int
    start: int
    protocol: int = 0
    opcodes: int = 0
    end: int | None = None
    result: Value = None
    globals: list[Global] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    anomalies: list[Anomaly] = field(default_factory=list)
    error: str | None = None
    error_offset: int | None = None
    limit: str | None = None
    failure: str | None = None  # mlgate could not follow the stream (or an emulator defect)
    nested: list[Program] = field(default_factory=list)  # joblib object-array pickles
    joblib_arrays: int = 0  # raw joblib array payloads skipped

    @property
    def complete(self) -> bool:
        return self.end is not None
