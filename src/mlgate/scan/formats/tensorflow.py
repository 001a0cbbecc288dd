"""TensorFlow SavedModel (``saved_model.pb``) and frozen GraphDef ``.pb``, without TensorFlow.

A TF graph carries no Python code, but some of its ops reach the host when the graph runs:
files (ReadFile, WriteFile, MatchingFiles, file readers and dataset sources/sinks,
summary writers, ImmutableConst mapping a named file), Python callbacks registered in the
serving process (PyFunc, EagerPyFunc) and debug ops that stream tensors to file:// or
grpc:// URLs. Those are HIGH. Checkpoint ops (SaveV2, RestoreV2, MergeV2Checkpoints,
ShardedFilename) are present in every SavedModel's saver graph, so they are evidence only;
a vocabulary-file table initialiser is LOW. Every function of the graph's library is walked
as well as the main graph, since serving signatures run through them.
"""

from __future__ import annotations

from collections import Counter
from pathlib import PurePosixPath

from mlgate.findings import Severity
from mlgate.scan import rules
from mlgate.scan.context import ScanContext
from mlgate.scan.formats.keras import analyse_saved_metadata
from mlgate.scan.protowire import LEN, Buffer, Field, ProtoError, fields, submessages, text
from mlgate.scan.source import Source

_FILES = "reads or lists files on the host"
_WRITES = "writes files on the host"
_PYTHON = "calls a Python function of the serving process"
_DEBUG = "streams tensors to debug URLs (file:// or grpc://)"
HIGH_OPS: dict[str, str] = {
    "ReadFile": _FILES,
    "MatchingFiles": _FILES,
    "WriteFile": _WRITES,
    "PyFunc": _PYTHON,
    "PyFuncStateless": _PYTHON,
    "EagerPyFunc": _PYTHON,
    "ImmutableConst": "memory-maps a file named by an attribute",
    "RecordInput": _FILES,
    "LoadAndRemapMatrix": _FILES,
    "CreateSummaryFileWriter": _WRITES,
    "CreateSummaryDbWriter": _WRITES,
    "DebugIdentity": _DEBUG,
    "DebugIdentityV2": _DEBUG,
    "DebugIdentityV3": _DEBUG,
    "DebugNanCount": _DEBUG,
    "DebugNumericSummary": _DEBUG,
}
for _name in (
    "WholeFileReader TFRecordReader TextLineReader FixedLengthRecordReader LMDBReader "
    "TFRecordDataset TextLineDataset FixedLengthRecordDataset CSVDataset LMDBDataset "
    "SqlDataset LoadDataset MatchingFilesDataset"
).split():
    for _variant in (_name, f"{_name}V2", f"Experimental{_name}"):
        HIGH_OPS[_variant] = _FILES
for _name in ("SaveDataset", "SaveDatasetV2", "DatasetToTFRecord", "ExperimentalDatasetToTFRecord"):
    HIGH_OPS[_name] = _WRITES
CHECKPOINT_OPS = frozenset(
    "Save SaveSlices SaveV2 Restore RestoreSlice RestoreV2 MergeV2Checkpoints "
    "ShardedFilename ShardedFilespec".split()
)
LOW_OPS = {
    "InitializeTableFromTextFile": "reads a vocabulary file (normally a SavedModel asset)",
    "InitializeTableFromTextFileV2": "reads a vocabulary file (normally a SavedModel asset)",
    "GenerateVocabRemapping": "reads vocabulary files",
}
# Ops that are harmless unless a string attribute points them at a file.
FILE_ATTRS = {"PrintV2": "output_stream", "DecodeProtoV2": "descriptor_source"}
FILE_ATTRS["EncodeProto"] = "descriptor_source"
SAFE_ATTR_PREFIXES = ("stderr", "stdout", "log(", "local://", "bytes://")


def op_risk(op: str, attr: str = "") -> tuple[Severity, str] | None:
    """Severity and reason for a TF op (``attr``: its file-selecting attribute, if any)."""
    if op in HIGH_OPS:
        return Severity.HIGH, HIGH_OPS[op]
    if op in FILE_ATTRS and attr and not attr.startswith(SAFE_ATTR_PREFIXES):
        return Severity.HIGH, f"{FILE_ATTRS[op]}={attr[:200]!r} sends data to a file"
    if op in LOW_OPS:
        return Severity.LOW, LOW_OPS[op]
    return None


class _Stop(Exception):
    """A limit was reached; the finding has already been recorded."""


class TfWalker:
    """Collects the ops of GraphDefs and their function libraries."""

    def __init__(self, buf: Buffer, source: Source, ctx: ScanContext) -> None:
        self.buf, self.source, self.ctx = buf, source, ctx
        self.ops: Counter[str] = Counter()
        self.risky: dict[tuple[str, str], tuple[Severity, str, str]] = {}
        self.functions = 0
        self.nodes = 0
        self.assets: list[str] = []
        self.keras_metadata: list[tuple[int, Field]] = []

    def saved_model(self, start: int, end: int) -> None:
        """SavedModel: every MetaGraphDef's graph and asset file names."""
        for f in fields(self.buf, start, end):
            if f.number == 2 and f.wire == LEN:
                for g in fields(self.buf, f.start, f.end):
                    if g.number == 2 and g.wire == LEN:
                        self.graph_def(g.start, g.end)
                    elif g.number == 6 and g.wire == LEN:
                        self._asset(g)
                    elif g.number == 7 and g.wire == LEN:
                        self._object_graph(g)

    def _object_graph(self, f: Field) -> None:
        """SavedObjectGraph.nodes (1) -> SavedObject.user_object (4) -> metadata (3): the
        Keras config tf-keras falls back to when keras_metadata.pb is absent (pre-2.5
        SavedModels), so a Lambda hidden there still runs on load."""
        for index, node in enumerate(submessages(self.buf, f.start, f.end, 1)):
            for user in submessages(self.buf, node.start, node.end, 4):
                for g in fields(self.buf, user.start, user.end):
                    if g.number == 3 and g.wire == LEN and g.end > g.start:
                        self.keras_metadata.append((index, g))

    def _asset(self, f: Field) -> None:
        for g in fields(self.buf, f.start, f.end):
            if g.number == 2 and g.wire == LEN:
                self.assets.append(text(self.buf, g, 1024))

    def graph_def(self, start: int, end: int) -> None:
        """GraphDef: nodes (field 1) and library functions (field 2 -> 1 -> node_def 3)."""
        for f in fields(self.buf, start, end):
            if f.number == 1 and f.wire == LEN:
                self.node(f, "")
            elif f.number == 2 and f.wire == LEN:
                for g in fields(self.buf, f.start, f.end):
                    if g.number == 1 and g.wire == LEN:
                        self._function(g)

    def _function(self, f: Field) -> None:
        self.functions += 1
        name = ""
        for g in fields(self.buf, f.start, f.end):
            if g.number == 1 and g.wire == LEN:  # OpDef signature: its name
                for h in fields(self.buf, g.start, g.end):
                    if h.number == 1 and h.wire == LEN:
                        name = text(self.buf, h, 512)
                        break
            elif g.number == 3 and g.wire == LEN:
                self.node(g, name)

    def node(self, f: Field, function: str) -> None:
        """Record a NodeDef's op; read the file-selecting attribute of the ops that have one."""
        self.nodes += 1
        if self.nodes > self.ctx.limits.max_graph_nodes or self.ctx.out_of_time():
            self.ctx.incomplete(
                self.source,
                f"more than {self.ctx.limits.max_graph_nodes} TF nodes or out of time; "
                "the rest of the graph was not analysed",
                rules.LIMIT_EXCEEDED,
            )
            raise _Stop
        name = op = ""
        attrs: list[Field] = []
        for g in fields(self.buf, f.start, f.end):
            if g.wire != LEN:
                continue
            if g.number == 1:
                name = text(self.buf, g, 512)
            elif g.number == 2:
                op = text(self.buf, g, 512)
            elif g.number == 5:
                attrs.append(g)
        self.ops[op] += 1
        attr = self._attr(attrs, FILE_ATTRS[op]) if op in FILE_ATTRS else ""
        risk = op_risk(op, attr)
        if risk and (op, attr) not in self.risky:
            where = f"{function}/{name}" if function else name
            self.risky[(op, attr)] = (risk[0], risk[1], where)

    def _attr(self, entries: list[Field], wanted: str) -> str:
        """The string value (AttrValue.s) of map entry ``wanted``."""
        for entry in entries:
            key, value = "", None
            for g in fields(self.buf, entry.start, entry.end):
                if g.number == 1 and g.wire == LEN:
                    key = text(self.buf, g, 256)
                elif g.number == 2 and g.wire == LEN:
                    value = g
            if key == wanted and value is not None:
                for h in fields(self.buf, value.start, value.end):
                    if h.number == 2 and h.wire == LEN:
                        return text(self.buf, h, 1024)
        return ""


def scan_tf(source: Source, buf: Buffer, ctx: ScanContext, kind: str) -> str:
    """Analyse a SavedModel (``kind`` "tf-savedmodel") or a GraphDef ("tf-graphdef")."""
    walker = TfWalker(buf, source, ctx)
    try:
        if kind == "tf-savedmodel":
            walker.saved_model(0, len(buf))
        else:
            walker.graph_def(0, len(buf))
    except ProtoError as e:
        ctx.incomplete(source, f"TensorFlow protobuf is invalid: {e}", rules.MALFORMED)
    except _Stop:
        pass
    for index, meta in walker.keras_metadata:
        if ctx.out_of_time():  # each Lambda found costs a disassembler process
            ctx.incomplete(
                source, "out of time; Keras object metadata not analysed", rules.LIMIT_EXCEEDED
            )
            break
        label = f"SavedModel object {index} Keras metadata"
        analyse_saved_metadata(buf, meta, source, ctx, label)
    for (op, _), (severity, reason, where) in list(walker.risky.items())[:100]:
        ctx.add(
            rules.DANGEROUS_OP,
            source.location,
            f"TensorFlow op {op} {reason}",
            f"node {where}; {walker.ops[op]} node(s)",
            severity,
        )
    for asset in walker.assets[:100]:
        parts = PurePosixPath(asset.replace("\\", "/")).parts
        if asset.startswith(("/", "\\")) or ".." in parts or asset[1:2] == ":":
            ctx.add(
                rules.PATH_TRAVERSAL,
                source.location,
                f"SavedModel asset file name {asset!r} escapes the assets folder",
            )
    checkpoint = sorted(op for op in walker.ops if op in CHECKPOINT_OPS)
    top = ", ".join(f"{op}x{n}" for op, n in walker.ops.most_common(20))
    ctx.add(
        rules.RECOGNISED,
        source.location,
        f"TensorFlow {kind[3:]}: {walker.nodes} nodes, {len(walker.ops)} op "
        f"types, {walker.functions} library functions; a graph carries no Python code",
        f"ops: {top}; checkpoint ops: {', '.join(checkpoint) or 'none'}",
    )
    return kind
