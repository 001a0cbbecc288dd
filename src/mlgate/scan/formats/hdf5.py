"""HDF5 files: legacy Keras ``.h5`` models and plain HDF5 (weights, data sets).

libhdf5 parses the file in a separate reader process (``_hdf5_worker.py``), started once
per scan and reused: it is C code that fuzzed files can make hang or allocate without
bound, and nothing in-process can interrupt it. The reader is killed after ``hdf5_seconds``
(or at the file's deadline, if sooner) and runs under a memory limit; a hang or crash is a
finding, never a stuck scan.

The reader returns the structure and attribute values only; nothing is deserialised. A
legacy Keras model keeps its architecture as JSON in the root ``model_config`` attribute
(and the compile settings in ``training_config``), analysed like a ``.keras`` config.
Attributes and small opaque datasets are checked for pickled or marshalled payloads, which
some tools store there.
"""

from __future__ import annotations

import base64
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlgate.sandbox.disassemble import disassemble
from mlgate.scan import rules
from mlgate.scan.context import ScanContext
from mlgate.scan.formats.keras import analyse_config
from mlgate.scan.limits import ResourceLimitError
from mlgate.scan.reader_process import ReaderFailed, ReaderProcess
from mlgate.scan.source import Source, bytes_source

WORKER_SCRIPT = Path(__file__).with_name("_hdf5_worker.py")
_KERAS_CONFIGS = ("model_config", "training_config")
# Payloads smaller than this cannot do anything worth reporting.
_MIN_PAYLOAD = 4


def scan_keras_h5(source: Source, ctx: ScanContext) -> str:
    """Scan an HDF5 file; a legacy Keras model is recognised by its ``model_config``."""
    try:
        with _on_disk(source) as (path, offset):
            events = _read(path, offset, source.size, ctx)
    except ReaderFailed as e:
        ctx.incomplete(source, str(e), e.rule)
        return "hdf5"
    return _analyse(events, source, ctx)


@contextmanager
def _on_disk(source: Source) -> Iterator[tuple[Path, int]]:
    """The file (and offset in it) holding the artifact's bytes, for the reader to open:
    where it is stored as it is (a file, a stored member), else a temporary copy."""
    if source.on_disk is not None and source.size is not None:
        yield source.on_disk
        return
    with tempfile.NamedTemporaryFile(prefix="mlgate-h5-") as spool, source.open() as f:
        shutil.copyfileobj(f, spool, 1 << 20)
        spool.flush()
        yield Path(spool.name), 0


def _read(path: Path, offset: int, size: int | None, ctx: ScanContext) -> list[list[Any]]:
    """The reader's events for ``path``; the reader is replaced after a hang or crash."""
    limits = ctx.limits
    worker = ctx.helpers.get("hdf5")
    if not isinstance(worker, ReaderProcess):
        worker = ctx.helpers["hdf5"] = ReaderProcess(
            WORKER_SCRIPT,
            limits.hdf5_worker_memory,
            "HDF5 reader",
            "libhdf5 hang?",
            "file not analysed",
            max_line=2 * limits.max_hdf5_attribute_bytes,
        )
    request = {
        "path": str(path.absolute()),  # not resolve(): /proc/PID/fd/N must stay the pinned file
        "offset": offset,
        "size": size,
        "max_objects": limits.max_hdf5_objects,
        "max_bytes": limits.max_hdf5_attribute_bytes,
    }
    deadline = time.monotonic() + limits.hdf5_seconds
    if ctx.deadline is not None:
        deadline = min(deadline, ctx.deadline)
    try:
        worker.send(request)
        events = worker.next_event(deadline).get("events")
    except ReaderFailed:
        ctx.helpers.pop("hdf5").close()
        raise
    if not isinstance(events, list) or not all(isinstance(e, list) and e for e in events):
        raise ReaderFailed("HDF5 reader gave an invalid answer", rules.UNSUPPORTED)
    return events


def _analyse(events: list[list[Any]], source: Source, ctx: ScanContext) -> str:
    root = {e[2]: e[3] for e in events if e[0] == "attr" and e[1] == "/"}
    malformed = False
    for kind, *args in events:
        if kind == "attr":
            _attribute(args[0], args[1], args[2], args[3], source, ctx)
        elif kind == "dataset":
            _blobs(args[0], args[1], source, ctx)
        elif kind == "external":
            ctx.add(
                rules.UNSAFE_REFERENCE,
                ctx.at(source),
                f"HDF5 external link {args[0]} -> {args[1]}:{args[2]}",
                str(args[1]),
            )
        elif kind == "limit":
            ctx.incomplete(source, f"{args[0]}; not analysed", rules.LIMIT_EXCEEDED)
        else:
            malformed = True
            ctx.incomplete(source, str(args[0]), rules.MALFORMED)
    if malformed:
        return "hdf5"
    if "model_config" in root:
        version = root.get("keras_version") or "unknown"
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


def _attribute(
    path: str, name: str, text: str | None, blobs: list[str], source: Source, ctx: ScanContext
) -> None:
    if path == "/" and name in _KERAS_CONFIGS:
        if text is None:
            ctx.incomplete(source, f"Keras {name} is not text; not analysed", rules.MALFORMED)
        else:
            analyse_config(text, source, ctx, name)
        return
    _blobs(f"{path}@{name}", blobs, source, ctx)


def _blobs(where: str, blobs: list[str], source: Source, ctx: ScanContext) -> None:
    for i, blob in enumerate(blobs):
        _check_blob(base64.b64decode(blob), where if i == 0 else f"{where}[{i}]", source, ctx)


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
