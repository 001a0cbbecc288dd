"""Plain pickle streams of any protocol, legacy PyTorch files and joblib files.

All pickles in a file are analysed, not only the first: several may be concatenated, the
legacy PyTorch format stacks five, and a loader may call ``pickle.load`` repeatedly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from mlgate.scan import rules
from mlgate.scan.context import ScanContext
from mlgate.scan.formats.recognised import recognise
from mlgate.scan.pickle.analysis import PickleAnalysis
from mlgate.scan.pickle.program import Program, VMLimits
from mlgate.scan.pickle.values import Global
from mlgate.scan.pickle.vm import PickleVM
from mlgate.scan.reader import ByteReader
from mlgate.scan.source import Source
from mlgate.scan.streams import decompressing

TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
ZF_HEADER = 2 + 19  # "ZF" and the data length in hex, padded to len(hex(2**64))
TORCH_LEGACY_PICKLES = 5  # magic, protocol version, sys info, data, storage keys


@dataclass
class Reading:
    """The pickles found in a stream and how the stream ended."""

    programs: list[Program]
    label: str
    is_pickle: bool
    trailing_offset: int | None = None
    trailing_bytes: int = 0
    joblib_arrays: bool = False


def scan_pickle(source: Source, ctx: ScanContext) -> str:
    """Analyse every pickle in ``source``; report it unrecognised if it is not a pickle."""
    reading = Reading([], "pickle", is_pickle=True)
    try:
        read_programs(source, ctx, joblib=True, reading=reading)
    except Exception:
        # The stream failed between two pickles (decompression bomb, truncated gzip...): the
        # engine reports the failure, the pickles read before it are still analysed.
        if reading.is_pickle:
            PickleAnalysis(ctx, source).run(reading.programs)
        raise
    if not reading.is_pickle and source.forced_format is None:
        zfile_data = _zfile_data_start(source)
        if zfile_data is not None:
            return _scan_zfile(source, ctx, zfile_data)
        return recognise(source, ctx)  # reports UNRECOGNISED only when nothing matches
    PickleAnalysis(ctx, source).run(reading.programs)
    if ctx.observer is not None:
        ctx.observer(source, reading.programs)
    if reading.trailing_offset is not None:
        ctx.add(
            rules.TRAILING_DATA,
            ctx.at(source, reading.trailing_offset),
            f"{reading.trailing_bytes} bytes after the last pickle are not a pickle",
        )
    if reading.joblib_arrays:
        _plain_reading(source, ctx, reading)
    return reading.label


def read_programs(
    source: Source, ctx: ScanContext, joblib: bool, reading: Reading | None = None
) -> Reading:
    """Emulate every pickle in ``source`` from its first byte (into ``reading`` if given,
    so that a caller keeps the pickles read before the stream fails)."""
    limits = VMLimits(
        ctx.limits.max_opcodes, ctx.limits.max_objects, ctx.limits.max_inline_bytes, ctx.deadline
    )
    if reading is None:
        reading = Reading([], "pickle", is_pickle=True)
    programs = reading.programs
    with source.open() as f:
        reader = ByteReader(f, 0, source.size)
        while not reader.at_eof():
            if len(programs) >= ctx.limits.max_pickles_per_file:
                ctx.incomplete(
                    source,
                    f"more than {ctx.limits.max_pickles_per_file} pickles "
                    "in one file; the rest was not analysed",
                    rules.LIMIT_EXCEEDED,
                )
                break
            start = reader.tell()
            prog = PickleVM(reader, len(programs) + 1, limits, joblib).run()
            if not _looks_like_pickle(prog):
                if programs:
                    reading.trailing_offset = start
                    reading.trailing_bytes = (source.size or reader.tell()) - start
                else:
                    reading.is_pickle = False
                    programs.append(prog)
                break
            programs.append(prog)
            reading.joblib_arrays |= bool(prog.nested) or prog.joblib_arrays > 0
            if not prog.complete:
                break
            if _is_torch_legacy(programs) and len(programs) == TORCH_LEGACY_PICKLES:
                reading.label = "pytorch-legacy"
                break  # raw storage bytes follow: never read as code by any loader
    if reading.joblib_arrays:
        reading.label = "joblib"
    elif _is_torch_legacy(programs):
        reading.label = "pytorch-legacy"
    return reading


def _zfile_data_start(source: Source) -> int | None:
    """Where the zlib data of a joblib < 0.10 "ZF" file starts, if ``source`` is one.

    joblib.numpy_pickle_compat.write_zfile: "ZF", the length in hex left-justified to
    len(hex(2**64)) bytes, one more space with joblib <= 0.8.4, then zlib data (whose first
    byte is never a space, RFC 6713). joblib.load still reads the main pickle and the
    ZNDArrayWrapper array files in this container.
    """
    head = source.head(ZF_HEADER + 1)
    if not head.startswith(b"ZF") or len(head) <= ZF_HEADER:
        return None
    try:
        int(head[2:ZF_HEADER].decode("ascii"), 16)
    except ValueError:  # UnicodeDecodeError included
        return None
    return ZF_HEADER + 1 if head[ZF_HEADER:] == b" " else ZF_HEADER


def _scan_zfile(source: Source, ctx: ScanContext, start: int) -> str:
    """The decompressed content as an artifact of its own, with the decompression limits."""
    limits = ctx.limits

    def opener() -> BinaryIO:
        raw = source.open()
        raw.read(start)
        return decompressing(
            raw,
            "zlib",
            limits.max_decompressed_bytes,
            limits.max_compression_ratio,
            limits.ratio_floor_bytes,
        )

    ctx.scan(source.child("<joblib zfile>", opener, None, False))
    return "joblib"


def _looks_like_pickle(prog: Program) -> bool:
    return bool(prog.complete or prog.globals or prog.calls or prog.protocol or prog.opcodes >= 8)


def _is_torch_legacy(programs: list[Program]) -> bool:
    return bool(programs) and programs[0].result == TORCH_LEGACY_MAGIC


def _plain_reading(source: Source, ctx: ScanContext, joblib_reading: Reading) -> None:
    """A joblib file read by plain ``pickle.load`` parses the raw array bytes as opcodes.

    An attacker can place a second program there that only a non-joblib loader runs; if that
    reading imports anything the joblib reading does not, it is analysed as well.
    """
    plain = read_programs(source, ctx, joblib=False)
    known = {(g.module, g.name) for p in joblib_reading.programs for g in _all_globals(p)}
    extra = sorted(
        {
            f"{g.module}.{g.name}"
            for p in plain.programs
            for g in _all_globals(p)
            if (g.module, g.name) not in known
        }
    )
    if not extra:
        return
    ctx.add(
        rules.POLYGLOT,
        source.location,
        "read with pickle.load instead of joblib.load, the array bytes form a second "
        f"program importing: {', '.join(extra[:10])}",
    )
    PickleAnalysis(
        ctx, source.child("<read by pickle.load>", source.opener, source.size, source.seekable)
    ).run(plain.programs)


def _all_globals(prog: Program) -> list[Global]:
    out = list(prog.globals)
    for sub in prog.nested:
        out.extend(_all_globals(sub))
    return out
