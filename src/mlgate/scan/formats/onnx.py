"""ONNX ModelProto, decoded from the wire format without the onnx package.

What can make loading or running an ONNX model reach outside the file:

* external data (``TensorProto.external_data``): the loader opens ``location`` relative to
  the model's folder, so ``..``, absolute paths and symlinks read arbitrary files;
* operators outside the standard domains: they need a custom-op library (native code) or
  an ONNX Runtime extension to be registered by the host.

Standard domains are "", "ai.onnx", "ai.onnx.ml", "ai.onnx.training" and
"ai.onnx.preview.training". Microsoft's contrib domains ("com.microsoft" ...) ship inside
ONNX Runtime itself, so they are reported as evidence only; any other domain is a custom
op (MEDIUM) unless the model defines the function itself (ModelProto.functions).
Subgraphs (If/Loop/Scan attributes), training graphs and local functions are all walked.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path, PurePosixPath

from mlgate.findings import Location, Severity
from mlgate.scan import rules
from mlgate.scan.context import ScanContext
from mlgate.scan.protowire import LEN, VARINT, Buffer, Field, ProtoError, fields, text
from mlgate.scan.source import Source

STANDARD_DOMAINS = frozenset(
    {"", "ai.onnx", "ai.onnx.ml", "ai.onnx.training", "ai.onnx.preview.training"}
)
RUNTIME_DOMAINS = frozenset(
    {"com.microsoft", "com.microsoft.nchwc", "com.microsoft.experimental", "com.ms.internal.nhwc"}
)
EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL
_DRIVE = re.compile(r"^[A-Za-z]:")


class _Stop(Exception):
    """A limit was reached; the finding has already been recorded."""


class OnnxWalker:
    """Walks one ModelProto, collecting operators and external data references."""

    def __init__(self, buf: Buffer, source: Source, ctx: ScanContext) -> None:
        self.buf, self.source, self.ctx = buf, source, ctx
        self.ops: Counter[tuple[str, str]] = Counter()
        self.functions: set[tuple[str, str]] = set()
        self.opsets: dict[str, int] = {}
        self.external: dict[str, int] = {}  # location -> first offset
        self.nodes = 0
        self.ir_version = 0

    def model(self, start: int, end: int) -> None:
        """Walk the top-level ModelProto in ``buf[start:end]``."""
        for f in fields(self.buf, start, end):
            if f.number == 1 and f.wire == VARINT:
                self.ir_version = f.value
            elif f.number == 8 and f.wire == LEN:
                self._opset(f)
            elif f.number == 7 and f.wire == LEN:
                self.graph(f, 0)
            elif f.number == 20 and f.wire == LEN:  # TrainingInfoProto
                for g in fields(self.buf, f.start, f.end):
                    if g.number in (1, 2) and g.wire == LEN:
                        self.graph(g, 1)
            elif f.number == 25 and f.wire == LEN:
                self._function(f)

    def _opset(self, f: Field) -> None:
        domain, version = "", 0
        for g in fields(self.buf, f.start, f.end):
            if g.number == 1 and g.wire == LEN:
                domain = text(self.buf, g, 256)
            elif g.number == 2 and g.wire == VARINT:
                version = g.value
        self.opsets[domain] = version

    def _function(self, f: Field) -> None:
        name = domain = ""
        for g in fields(self.buf, f.start, f.end):
            if g.number == 1 and g.wire == LEN:
                name = text(self.buf, g, 512)
            elif g.number == 10 and g.wire == LEN:
                domain = text(self.buf, g, 256)
            elif g.number == 7 and g.wire == LEN:
                self.node(g, 1)
        self.functions.add((domain, name))

    def graph(self, f: Field, depth: int) -> None:
        """Walk a GraphProto: nodes, initializers and sparse initializers."""
        limit = self.ctx.limits.max_graph_depth
        if depth > limit:
            self.ctx.incomplete(
                self.source,
                f"ONNX subgraphs nested deeper than {limit} levels; not analysed",
                rules.LIMIT_EXCEEDED,
            )
            raise _Stop
        for g in fields(self.buf, f.start, f.end):
            if g.wire != LEN:
                continue
            if g.number == 1:
                self.node(g, depth)
            elif g.number == 5:
                self.tensor(g)
            elif g.number == 15:
                self._sparse(g)

    def node(self, f: Field, depth: int) -> None:
        """Record a NodeProto's operator and walk its attributes (subgraphs, tensors)."""
        self.nodes += 1
        if self.nodes > self.ctx.limits.max_graph_nodes or self.ctx.out_of_time():
            self.ctx.incomplete(
                self.source,
                f"more than {self.ctx.limits.max_graph_nodes} ONNX nodes or out of time; "
                "the rest of the graph was not analysed",
                rules.LIMIT_EXCEEDED,
            )
            raise _Stop
        op = domain = ""
        for g in fields(self.buf, f.start, f.end):
            if g.wire != LEN:
                continue
            if g.number == 4:
                op = text(self.buf, g, 512)
            elif g.number == 7:
                domain = text(self.buf, g, 256)
            elif g.number == 5:
                self._attribute(g, depth)
        self.ops[(domain, op)] += 1

    def _attribute(self, f: Field, depth: int) -> None:
        for g in fields(self.buf, f.start, f.end):
            if g.wire != LEN:
                continue
            if g.number in (5, 10):  # t, tensors
                self.tensor(g)
            elif g.number in (6, 11):  # g, graphs: If/Loop/Scan bodies
                self.graph(g, depth + 1)
            elif g.number in (22, 23):  # sparse_tensor(s)
                self._sparse(g)

    def _sparse(self, f: Field) -> None:
        for g in fields(self.buf, f.start, f.end):
            if g.number in (1, 2) and g.wire == LEN:
                self.tensor(g)

    def tensor(self, f: Field) -> None:
        """Note a TensorProto's external data location; raw_data is skipped by length."""
        location: str | None = None
        external = False
        for g in fields(self.buf, f.start, f.end):
            if g.number == 14 and g.wire == VARINT:
                external = g.value == EXTERNAL
            elif g.number == 13 and g.wire == LEN:
                external = True
                key = value = ""
                for h in fields(self.buf, g.start, g.end):
                    if h.number == 1 and h.wire == LEN:
                        key = text(self.buf, h, 64)
                    elif h.number == 2 and h.wire == LEN:
                        value = text(self.buf, h, 4096)
                if key == "location":
                    location = value
        if external:
            self.external.setdefault(location or "", f.start)


def scan_onnx(source: Source, buf: Buffer, ctx: ScanContext) -> str:
    """Analyse an ONNX ModelProto held in ``buf`` (the whole artifact)."""
    walker = OnnxWalker(buf, source, ctx)
    try:
        walker.model(0, len(buf))
    except ProtoError as e:
        ctx.add(rules.MALFORMED, source.location, f"ONNX protobuf is invalid: {e}")
    except RecursionError:
        ctx.incomplete(source, "ONNX graph nesting too deep to analyse", rules.LIMIT_EXCEEDED)
    except _Stop:
        pass
    _report_ops(walker, source, ctx)
    for location, offset in list(walker.external.items())[:100]:
        _check_external(location, ctx, source, offset)
    return "onnx"


def _report_ops(w: OnnxWalker, source: Source, ctx: ScanContext) -> None:
    custom: Counter[str] = Counter()
    runtime: Counter[str] = Counter()
    for (domain, op), n in w.ops.items():
        if domain in STANDARD_DOMAINS or (domain, op) in w.functions:
            continue
        (runtime if domain in RUNTIME_DOMAINS else custom)[f"{domain}::{op}"] += n
    for name, n in sorted(custom.items())[:50]:
        ctx.add(
            rules.CUSTOM_OP,
            source.location,
            f"ONNX operator {name} is outside the standard domains; it needs a custom-op "
            "library registered by the host",
            f"{n} node(s)",
        )
    top = ", ".join(f"{op or '?'}x{n}" for (_, op), n in w.ops.most_common(15))
    opsets = ", ".join(f"{d or 'ai.onnx'}={v}" for d, v in sorted(w.opsets.items()))
    extra = f"; ONNX Runtime contrib ops: {', '.join(sorted(runtime))[:500]}" if runtime else ""
    ctx.add(
        rules.RECOGNISED,
        source.location,
        f"ONNX model (ir_version {w.ir_version}, opsets: {opsets or 'none'}): "
        f"{w.nodes} nodes, {len(w.ops)} operator types, {len(w.functions)} local functions, "
        f"{len(w.external)} external data files; ONNX carries no Python code",
        f"ops: {top}{extra}",
    )


def _check_external(location: str, ctx: ScanContext, source: Source, offset: int) -> None:
    where = ctx.at(source, offset)
    if not location:
        ctx.add(rules.MALFORMED, where, "external tensor data without a location")
        return
    parts = PurePosixPath(location.replace("\\", "/")).parts
    if (
        location.startswith(("/", "\\"))
        or _DRIVE.match(location)
        or ".." in parts
        or "\0" in location  # C++ loaders stop at NUL: another file than the one checked
    ):
        ctx.add(
            rules.EXTERNAL_DATA,
            where,
            f"external data location {location!r} escapes the model's folder",
            location,
        )
        return
    folder = source.folder
    if folder is None or source.location.members:
        ctx.add(
            rules.EXTERNAL_DATA,
            where,
            f"external data file {location!r} could not be checked (model not on disk)",
            location,
            Severity.LOW,
        )
        return
    _check_on_disk(folder, location, where, ctx)


def _check_on_disk(folder: Path, location: str, where: Location, ctx: ScanContext) -> None:
    path = folder / location
    base = folder.resolve()
    # Only links below the model's folder matter: the folder's own path may well contain one.
    parts = PurePosixPath(location.replace("\\", "/")).parts
    steps = [folder.joinpath(*parts[: i + 1]) for i in range(len(parts))]
    try:
        crossed = [p for p in steps if p.is_symlink()]
        resolved = path.resolve()
    except (OSError, RuntimeError, ValueError):
        crossed, resolved = [path], path
    if crossed or not resolved.is_relative_to(base):
        ctx.add(
            rules.EXTERNAL_DATA,
            where,
            f"external data {location!r} is reached through a symlink or leaves the folder",
            f"{location} -> {resolved}",
        )
    elif not resolved.is_file():
        ctx.add(
            rules.MALFORMED,
            where,
            f"external data file {location!r} is missing; the model cannot be loaded",
        )
