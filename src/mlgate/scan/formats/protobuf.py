"""Protobuf model files: decide by structure which message a file is, then analyse it.

Protobuf has no magic bytes, and a protocol-0 pickle can look like one, so a file that is
none of the known messages (ONNX ModelProto, TF SavedModel, GraphDef, Keras SavedMetadata,
SavedModel fingerprint) is read as a pickle: no pickle is ever skipped.
"""

from __future__ import annotations

from mlgate.scan import rules
from mlgate.scan.context import ScanContext
from mlgate.scan.formats.keras import analyse_saved_metadata
from mlgate.scan.formats.onnx import scan_onnx
from mlgate.scan.formats.pickle import read_programs, scan_pickle
from mlgate.scan.formats.recognised import protobuf_hint
from mlgate.scan.formats.tensorflow import scan_tf
from mlgate.scan.protowire import (
    LEN,
    VARINT,
    Buffer,
    Field,
    ProtoError,
    TooLarge,
    fields,
    is_message,
    mapped,
    text,
)
from mlgate.scan.source import Source

ONNX_FIELDS = frozenset({1, 2, 3, 4, 5, 6, 7, 8, 14, 20, 25, 26})
PROTO_SUFFIXES = (".onnx", ".pb")
PROBE = 256  # top-level fields inspected to classify
BY_NAME = {"saved_model.pb": "tf-savedmodel", "keras_metadata.pb": "keras-metadata"}


def scan_protobuf(source: Source, ctx: ScanContext) -> str:
    """Classify the message and hand it to its reader; fall back to the pickle reading."""
    hint = protobuf_hint(source.name)
    if hint is not None:  # CoreML / Paddle programs: schemas mlgate does not decode yet
        ctx.add(rules.RECOGNISED, source.location, hint)
        _also_pickle(source, ctx, "protobuf")
        return "protobuf"
    try:
        with mapped(source, ctx.limits.max_proto_memory) as buf:
            label = _dispatch(source, buf, ctx)
    except TooLarge as e:
        ctx.incomplete(source, f"protobuf {e}; not analysed", rules.LIMIT_EXCEEDED)
        return "protobuf"
    except OSError as e:
        ctx.incomplete(source, f"protobuf could not be read: {e}")
        return "protobuf"
    if label is not None:
        _also_pickle(source, ctx, label)
        return label
    if source.name.lower().endswith(PROTO_SUFFIXES):  # named a model, read as none: fail closed
        ctx.incomplete(
            source, f"{source.name} is not a valid ONNX or TensorFlow protobuf", rules.MALFORMED
        )
    return scan_pickle(source, ctx)


def _also_pickle(source: Source, ctx: ScanContext, label: str) -> None:
    """A file can be a valid message and a pickle at once: read the pickle too."""
    if read_programs(source, ctx, joblib=False).is_pickle:
        ctx.add(rules.POLYGLOT, source.location, f"{label} protobuf that is also a pickle")
        scan_pickle(source, ctx)


def _dispatch(source: Source, buf: Buffer, ctx: ScanContext) -> str | None:
    kind = classify(buf, source.name)
    if kind == "onnx":
        return scan_onnx(source, buf, ctx)
    if kind in ("tf-savedmodel", "tf-graphdef"):
        return scan_tf(source, buf, ctx, kind)
    if kind == "keras-metadata":
        return _keras_metadata(source, buf, ctx)
    if kind == "tf-fingerprint":
        ctx.add(rules.RECOGNISED, source.location, "SavedModel fingerprint (hashes only)")
        return kind
    return None


def classify(buf: Buffer, name: str) -> str | None:
    """Which known message ``buf`` holds, judged by its top-level fields; None if none."""
    top = _probe(buf, 0, len(buf))
    numbers = {f.number for f in top}
    wires = {f.number: f.wire for f in top}
    if not top:  # broken from the first field: the reader of the file's name says where
        return BY_NAME.get(name)
    if _is_fingerprint(buf, top):
        return "tf-fingerprint"
    if (
        wires.get(1) == VARINT
        and (wires.get(7) == LEN or wires.get(8) == LEN or name.lower().endswith(".onnx"))
        and numbers <= ONNX_FIELDS
    ):
        return "onnx"
    if numbers <= {1, 2} and wires.get(1, VARINT) == VARINT:
        second = next((f for f in top if f.number == 2 and f.wire == LEN), None)
        if name == "saved_model.pb" or (second and _is_meta_graph(buf, second)):
            return "tf-savedmodel"
    if numbers == {1} and wires[1] == LEN and _is_keras_metadata(buf, top[0], name):
        return "keras-metadata"
    if (
        numbers <= {1, 2, 3, 4}
        and all(
            (f.number in (1, 2, 4) and f.wire == LEN) or (f.number == 3 and f.wire == VARINT)
            for f in top
        )
        and all(is_message(buf, f.start, f.end) for f in top if f.wire == LEN)
    ):
        return "tf-graphdef"
    # Loaders pick these files by name and skip unknown fields: so does the scanner.
    return BY_NAME.get(name)


def _is_fingerprint(buf: Buffer, top: list[Field]) -> bool:
    """FingerprintDef (tensorflow/core/protobuf/fingerprint.proto): five uint64 hashes (1-5),
    VersionDef version (6) and, since TF 2.15, a decimal uuid string (7).

    Checked before ONNX, whose ModelProto shares field numbers (7 is its graph): all five
    hashes are required as varints and field 7 must be digits, so a file that passes carries
    no ONNX graph of substance (a digit byte is never a node, initializer or opset tag).
    """
    numbers = [f.number for f in top]
    by_number = {f.number: f for f in top}
    uuid = by_number.get(7)
    return (
        len(buf) <= 1024
        and len(numbers) == len(set(numbers))  # no field repeats in a FingerprintDef
        and {1, 2, 3, 4, 5} <= set(numbers) <= {1, 2, 3, 4, 5, 6, 7}
        and all((f.wire == VARINT) == (f.number <= 5) for f in top)
        and (uuid is None or buf[uuid.start : uuid.end].isdigit())
        and is_message(buf, 0, len(buf), PROBE)
    )


def _probe(buf: Buffer, start: int, end: int) -> list[Field]:
    """The first top-level fields that decode (a truncated model is still recognised)."""
    out: list[Field] = []
    try:
        for f in fields(buf, start, end):
            out.append(f)
            if len(out) >= PROBE:
                break
    except ProtoError:
        pass  # the format's reader reports where the message breaks
    return out


def _is_meta_graph(buf: Buffer, f: Field) -> bool:
    """MetaGraphDef: meta_info_def (1), graph_def (2), saver_def (3)... all messages."""
    inner = _probe(buf, f.start, f.end)
    return bool(inner) and all(g.wire == LEN and 1 <= g.number <= 9 for g in inner)


# keras/protobuf/saved_metadata.proto (Keras 2, tf-keras): SavedMetadata { repeated
# SavedObject nodes = 1; } and SavedObject { reserved 1; int32 node_id = 2; string node_path
# = 3; string identifier = 4; string metadata = 5; VersionDef version = 6; }.
KERAS_NODE_PATH, KERAS_IDENTIFIER, KERAS_METADATA = 3, 4, 5


def _is_keras_metadata(buf: Buffer, f: Field, name: str) -> bool:
    """SavedMetadata.nodes: a SavedObject whose identifier is "_tf_keras_*" or whose
    metadata is JSON."""
    if name == "keras_metadata.pb":
        return True
    try:
        for g in fields(buf, f.start, f.end):
            if g.wire != LEN:
                continue
            if g.number == KERAS_IDENTIFIER and text(buf, g, 16).startswith("_tf_keras"):
                return True
            if g.number == KERAS_METADATA and text(buf, g, 1).startswith("{"):
                return True
    except ProtoError:
        return False
    return False


def _keras_metadata(source: Source, buf: Buffer, ctx: ScanContext) -> str:
    """Keras SavedModel metadata: one JSON config per object, analysed like a Keras config
    (Lambda layers carry marshalled bytecode, class references are imported on load)."""
    nodes = 0
    try:
        for f in fields(buf, 0, len(buf)):
            nodes += 1
            if nodes > ctx.limits.max_graph_nodes or ctx.out_of_time():
                ctx.incomplete(
                    source,
                    f"more than {ctx.limits.max_graph_nodes} Keras metadata objects or out "
                    "of time; the rest was not analysed",
                    rules.LIMIT_EXCEEDED,
                )
                break
            if f.wire == LEN:
                _keras_object(source, buf, f, nodes, ctx)
    except ProtoError as e:
        ctx.incomplete(source, f"keras_metadata.pb is invalid: {e}", rules.MALFORMED)
    ctx.add(rules.RECOGNISED, source.location, f"Keras SavedModel metadata: {nodes} objects")
    return "keras-metadata"


def _keras_object(source: Source, buf: Buffer, node: Field, index: int, ctx: ScanContext) -> None:
    """One SavedObject: its metadata JSON, labelled by its node path ("root.layer-1")."""
    label, meta = f"keras_metadata object {index}", None
    for g in fields(buf, node.start, node.end):
        if g.wire == LEN and g.number == KERAS_NODE_PATH:
            label = f"keras_metadata {text(buf, g, 256)!r}"
        elif g.wire == LEN and g.number == KERAS_METADATA:
            meta = g
    if meta is not None:
        analyse_saved_metadata(buf, meta, source, ctx, label)
