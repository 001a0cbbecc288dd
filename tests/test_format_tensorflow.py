"""TensorFlow SavedModel and GraphDef protobufs, built with TensorFlow's own message classes
(as shipped by tensorboard) and scanned without TensorFlow."""

from __future__ import annotations

from pathlib import Path

import pytest
from factories import assert_benign, assert_caught, describe, proto_field, rules_found, scan, write
from tensorboard.compat.proto import (
    attr_value_pb2,
    function_pb2,
    graph_pb2,
    meta_graph_pb2,
    node_def_pb2,
)

import mlgate
from mlgate import Severity


def _node(name: str, op: str, **attrs: bytes) -> node_def_pb2.NodeDef:
    node = node_def_pb2.NodeDef(name=name, op=op)
    for key, value in attrs.items():
        node.attr[key].CopyFrom(attr_value_pb2.AttrValue(s=value))
    return node


def _saver_nodes() -> list[node_def_pb2.NodeDef]:
    """The checkpointing subgraph every SavedModel has."""
    return [
        _node("saver_filename", "Placeholder"),
        _node("StringJoin", "StringJoin"),
        _node("ShardedFilename", "ShardedFilename"),
        _node("SaveV2", "SaveV2"),
        _node("MergeV2Checkpoints", "MergeV2Checkpoints"),
        _node("RestoreV2", "RestoreV2"),
        _node("Print", "PrintV2", output_stream=b"stderr"),
    ]


def _graph(extra: list[node_def_pb2.NodeDef] = (), fn_nodes=()) -> graph_pb2.GraphDef:
    graph = graph_pb2.GraphDef()
    graph.node.extend([_node("x", "Placeholder"), _node("y", "MatMul"), *_saver_nodes()])
    graph.node.extend(extra)
    fn = function_pb2.FunctionDef()
    fn.signature.name = "__inference_serve_42"
    fn.node_def.extend([_node("relu", "Relu"), _node("call", "StatefulPartitionedCall")])
    fn.node_def.extend(fn_nodes)
    graph.library.function.append(fn)
    graph.versions.producer = 1880
    return graph


def _saved_model(graph: graph_pb2.GraphDef, assets: tuple[str, ...] = ()) -> bytes:
    meta = meta_graph_pb2.MetaGraphDef()
    meta.meta_info_def.tags.append("serve")
    meta.meta_info_def.tensorflow_version = "2.21.0"
    meta.graph_def.CopyFrom(graph)
    meta.saver_def.filename_tensor_name = "saver_filename:0"
    for name in assets:
        meta.asset_file_def.add(filename=name).tensor_info.name = "asset:0"
    return b"\x08\x01" + proto_field(2, meta.SerializeToString())


def test_benign_saved_model(tmp_path: Path) -> None:
    report = scan(write(tmp_path / "m" / "saved_model.pb", _saved_model(_graph())))
    assert_benign(report)
    text = describe(report)
    assert "SaveV2" in text and "Relu" in text
    assert [a.format for a in report.artifacts] == ["tf-savedmodel"]


def test_benign_graphdef(tmp_path: Path) -> None:
    report = scan(write(tmp_path / "frozen.pb", _graph().SerializeToString()))
    assert_benign(report)
    assert [a.format for a in report.artifacts] == ["tf-graphdef"]


@pytest.mark.parametrize(
    "op", ["ReadFile", "WriteFile", "MatchingFiles", "PyFunc", "EagerPyFunc", "TFRecordDataset"]
)
def test_dangerous_op_in_graph(tmp_path: Path, op: str) -> None:
    graph = _graph([_node("evil", op)])
    report = scan(write(tmp_path / "saved_model.pb", _saved_model(graph)))
    assert_caught(report, "MLG112")
    assert op in describe(report)


def test_dangerous_op_in_library_function(tmp_path: Path) -> None:
    graph = _graph(fn_nodes=[_node("w", "WriteFile")])
    report = scan(write(tmp_path / "frozen.pb", graph.SerializeToString()))
    assert_caught(report, "MLG112")
    assert "__inference_serve_42/w" in describe(report)


def test_print_to_file_is_caught(tmp_path: Path) -> None:
    graph = _graph([_node("leak", "PrintV2", output_stream=b"file:///tmp/leak.txt")])
    report = scan(write(tmp_path / "saved_model.pb", _saved_model(graph)))
    assert_caught(report, "MLG112")


def test_asset_escape_is_caught(tmp_path: Path) -> None:
    data = _saved_model(_graph(), assets=("vocab.txt", "../../etc/passwd"))
    assert_caught(scan(write(tmp_path / "saved_model.pb", data)), "MLG206")


def test_vocab_table_is_low(tmp_path: Path) -> None:
    graph = _graph([_node("table_init", "InitializeTableFromTextFileV2")])
    report = scan(write(tmp_path / "saved_model.pb", _saved_model(graph, ("vocab.txt",))))
    assert_benign(report)
    assert "MLG112" in rules_found(report)


def _saved_object(node_path: bytes, identifier: bytes, metadata: bytes) -> bytes:
    """keras/protobuf/saved_metadata.proto SavedObject: node_id 2, node_path 3,
    identifier 4, metadata 5."""
    return (
        b"\x10\x01"
        + proto_field(3, node_path)
        + proto_field(4, identifier)
        + proto_field(5, metadata)
    )


def test_keras_metadata_lambda(tmp_path: Path) -> None:
    layer = b'{"class_name": "Lambda", "config": {"function": ["4wEAAAAAAAAA"]}}'
    data = proto_field(1, _saved_object(b"root.layer-1", b"_tf_keras_layer", layer))
    assert_caught(scan(write(tmp_path / "keras_metadata.pb", data)), "MLG112")
    dense = proto_field(1, _saved_object(b"root", b"_tf_keras_layer", b'{"a": 1}'))
    assert_benign(scan(write(tmp_path / "k2" / "keras_metadata.pb", dense)))


def test_fingerprint_is_recognised(tmp_path: Path) -> None:
    data = b"\x08\x95\x9a\xef\x3a\x10\x01\x18\x02\x20\x03\x28\x04" + proto_field(6, b"\x08\x01")
    report = scan(write(tmp_path / "fingerprint.pb", data))
    assert_benign(report)
    assert [a.format for a in report.artifacts] == ["tf-fingerprint"]


@pytest.mark.parametrize("cut", [5, 60, -2])
def test_truncated_saved_model_is_malformed(tmp_path: Path, cut: int) -> None:
    data = _saved_model(_graph([_node("evil", "ReadFile")]))[:cut]
    report = scan(write(tmp_path / "saved_model.pb", data))
    assert rules_found(report) & {"MLG201", "MLG302"}, describe(report)


def test_group_wire_type_is_malformed(tmp_path: Path) -> None:
    data = _graph().SerializeToString() + b"\x0b\x0c"  # start/end group: never valid here
    report = scan(write(tmp_path / "frozen.pb", data))
    assert "MLG201" in rules_found(report), describe(report)


def test_corrupt_bytes_never_crash(tmp_path: Path) -> None:
    data = _saved_model(_graph([_node("p", "PrintV2", output_stream=b"file:///x")]))
    for i in range(0, len(data), 3):
        mutated = bytearray(data)
        mutated[i] ^= 0xA5
        report = scan(write(tmp_path / f"{i}" / "saved_model.pb", bytes(mutated)))
        assert "internal error" not in describe(report)


def test_keras_metadata_legacy_lambda_config(tmp_path: Path) -> None:
    layer = (
        b'{"class_name": "Lambda", "name": "l", "config": {"name": "l", '
        b'"function": ["4wEAAAAAAAAAAAAAAAEAAAACAAAAQwAAAHM=", null, null], '
        b'"function_type": "lambda", "module": "__main__"}}'
    )
    data = proto_field(1, _saved_object(b"root.layer-1", b"_tf_keras_layer", layer))
    assert_caught(scan(write(tmp_path / "keras_metadata.pb", data)))


KERAS2 = Path(__file__).parent / "data" / "keras2"  # written by real tf-keras: see README.md


def _lambda_findings(report: mlgate.Report) -> list[mlgate.Finding]:
    """Lambda findings whose bytecode was disassembled (the fixture's ``tf.nn.relu``)."""
    return [f for f in report.findings if f.rule_id == "MLG110" and "relu" in f.message]


def test_real_keras2_metadata_fields_lambda_bytecode_analysed() -> None:
    """identifier/metadata are SavedObject fields 4/5: read as 3/4, a real tf-keras
    Lambda in keras_metadata.pb was never analysed and the SavedModel passed."""
    report = scan(KERAS2 / "lambda_savedmodel")
    hits = _lambda_findings(report)
    assert hits, describe(report)
    assert all(f.severity is Severity.CRITICAL for f in hits)
    assert any("'root.layer-1'" in f.message for f in hits), describe(report)
    assert {f.location.artifact.rsplit("/", 1)[-1] for f in hits} == {"keras_metadata.pb"}


def test_real_keras2_metadata_in_saved_model_object_graph() -> None:
    """Without keras_metadata.pb tf-keras reads the config from each SavedUserObject of
    saved_model.pb (pre-2.5 layout): a Lambda hidden there is analysed too."""
    report = scan(KERAS2 / "lambda_legacy_savedmodel")
    hits = _lambda_findings(report)
    assert hits, describe(report)
    assert {f.location.artifact.rsplit("/", 1)[-1] for f in hits} == {"saved_model.pb"}


def test_real_keras2_dense_savedmodel_is_benign() -> None:
    report = scan(KERAS2 / "dense_savedmodel")
    assert_benign(report)
    formats = {a.artifact.rsplit("/", 1)[-1]: a.format for a in report.artifacts}
    assert formats["keras_metadata.pb"] == "keras-metadata"
    assert formats["saved_model.pb"] == "tf-savedmodel"
    assert "Keras SavedModel metadata: 2 objects" in describe(report)


def test_real_fingerprint_with_uuid_is_not_read_as_onnx() -> None:
    """TF >= 2.15 adds uuid (field 7, a string): ONNX's graph field number."""
    report = scan(KERAS2 / "dense_savedmodel" / "fingerprint.pb")
    assert [a.format for a in report.artifacts] == ["tf-fingerprint"]
    assert rules_found(report) == {"MLG304"}, describe(report)


def test_onnx_shaped_like_a_fingerprint_is_still_onnx(tmp_path: Path) -> None:
    """The fingerprint test runs before ONNX: a small ONNX model must not pass for one."""
    graph = proto_field(1, proto_field(4, b"PyFunc"))  # GraphProto.node with an op_type
    data = b"\x08\x07\x10\x01\x18\x02\x20\x03\x28\x04" + proto_field(7, graph)
    report = scan(write(tmp_path / "m.onnx", data))
    assert [a.format for a in report.artifacts] == ["onnx"], describe(report)


def test_keras_metadata_with_unknown_field_is_still_analysed(tmp_path: Path) -> None:
    """tf-keras's parser skips unknown fields: one must not make the file unrecognised."""
    data = (KERAS2 / "lambda_savedmodel" / "keras_metadata.pb").read_bytes() + b"\x10\x01"
    report = scan(write(tmp_path / "keras_metadata.pb", data))
    assert _lambda_findings(report), describe(report)


def test_truncated_keras_metadata_is_incomplete(tmp_path: Path) -> None:
    data = (KERAS2 / "lambda_savedmodel" / "keras_metadata.pb").read_bytes()
    report = scan(write(tmp_path / "keras_metadata.pb", data[: len(data) // 2]))
    assert [a.complete for a in report.artifacts] == [False], describe(report)
    assert "MLG201" in rules_found(report)
