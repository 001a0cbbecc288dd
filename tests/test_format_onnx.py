"""ONNX models built with the onnx package (and torch.onnx), scanned without it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from factories import assert_benign, assert_caught, describe, proto_field, rules_found, scan, write
from onnx import TensorProto, helper, numpy_helper

from mlgate import Severity


def _graph(nodes: list[onnx.NodeProto], name: str = "g", inits=()) -> onnx.GraphProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    return helper.make_graph(nodes, name, [x], [y], initializer=list(inits))


def _model(graph: onnx.GraphProto, **kw) -> onnx.ModelProto:
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], **kw)


def _save(model: onnx.ModelProto, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(path))
    return path


def _weights(n: int = 4096) -> TensorProto:
    return numpy_helper.from_array(np.arange(n, dtype=np.float32), "w")


def test_benign_model_with_initializer(tmp_path: Path) -> None:
    model = _model(_graph([helper.make_node("Relu", ["x"], ["y"])], inits=[_weights()]))
    report = scan(_save(model, tmp_path / "m.onnx"))
    assert_benign(report)
    assert "MLG304" in rules_found(report)
    assert "Relu" in describe(report)


def test_benign_external_data(tmp_path: Path) -> None:
    model = _model(_graph([helper.make_node("Relu", ["x"], ["y"])], inits=[_weights()]))
    onnx.save_model(
        model, str(tmp_path / "m.onnx"), save_as_external_data=True, location="m.data",
        size_threshold=0,
    )
    report = scan(tmp_path / "m.onnx")
    assert_benign(report)


def test_torch_export_is_benign(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    try:
        torch.onnx.export(net, (torch.zeros(1, 4),), str(tmp_path / "t.onnx"), dynamo=False)
    except Exception as e:  # exporter extras missing: not this test's concern
        pytest.skip(f"torch.onnx.export unavailable: {e}")
    assert_benign(scan(tmp_path / "t.onnx"))


def _external(location: str) -> TensorProto:
    t = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4])
    t.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        entry = t.external_data.add()
        entry.key, entry.value = key, value
    return t


@pytest.mark.parametrize("location", ["../../etc/passwd", "/etc/passwd", "a/../../x.bin"])
def test_external_data_escape(tmp_path: Path, location: str) -> None:
    model = _model(_graph([helper.make_node("Relu", ["x"], ["y"])], inits=[_external(location)]))
    assert_caught(scan(_save(model, tmp_path / "m.onnx")), "MLG114")


def test_external_data_symlink(tmp_path: Path) -> None:
    secret = write(tmp_path / "outside" / "secret.bin", b"s" * 16)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    os.symlink(secret, model_dir / "w.bin")
    model = _model(_graph([helper.make_node("Relu", ["x"], ["y"])], inits=[_external("w.bin")]))
    assert_caught(scan(_save(model, model_dir / "m.onnx")), "MLG114")


def test_external_data_in_subgraph(tmp_path: Path) -> None:
    branch = helper.make_graph(
        [helper.make_node("Identity", ["c"], ["o"])],
        "then",
        [],
        [helper.make_tensor_value_info("o", TensorProto.FLOAT, [4])],
        initializer=[_external("../../../root/.ssh/id_rsa")],
    )
    node = helper.make_node("If", ["x"], ["y"], then_branch=branch, else_branch=branch)
    report = scan(_save(_model(_graph([node])), tmp_path / "m.onnx"))
    assert_caught(report, "MLG114")


def test_custom_domain_is_custom_op(tmp_path: Path) -> None:
    node = helper.make_node("Evil", ["x"], ["y"], domain="com.attacker")
    model = helper.make_model(
        _graph([node]),
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.attacker", 1)],
    )
    report = scan(_save(model, tmp_path / "m.onnx"))
    assert "MLG113" in rules_found(report)
    assert "com.attacker::Evil" in describe(report)


def test_local_function_is_not_custom(tmp_path: Path) -> None:
    fn = helper.make_function(
        "local", "MyRelu", ["a"], ["b"], [helper.make_node("Relu", ["a"], ["b"])],
        [helper.make_opsetid("", 17)],
    )
    node = helper.make_node("MyRelu", ["x"], ["y"], domain="local")
    model = helper.make_model(
        _graph([node]),
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)],
        functions=[fn],
    )
    report = scan(_save(model, tmp_path / "m.onnx"))
    assert "MLG113" not in rules_found(report)
    assert_benign(report)


def test_custom_op_inside_function_and_loop(tmp_path: Path) -> None:
    body = helper.make_graph(
        [helper.make_node("Hook", ["c"], ["o"], domain="ai.onnx.contrib")], "body", [], []
    )
    fn = helper.make_function(
        "local", "F", ["a"], ["b"], [helper.make_node("Loop", ["a"], ["b"], body=body)],
        [helper.make_opsetid("", 17)],
    )
    model = helper.make_model(
        _graph([helper.make_node("F", ["x"], ["y"], domain="local")]),
        opset_imports=[helper.make_opsetid("", 17)],
        functions=[fn],
    )
    report = scan(_save(model, tmp_path / "m.onnx"))
    assert "ai.onnx.contrib::Hook" in describe(report)


@pytest.mark.parametrize("cut", [7, 40, -3])
def test_truncated_model_is_malformed(tmp_path: Path, cut: int) -> None:
    model = _model(_graph([helper.make_node("Relu", ["x"], ["y"])], inits=[_weights(64)]))
    data = model.SerializeToString()
    report = scan(write(tmp_path / "m.onnx", data[:cut]))
    assert rules_found(report) & {"MLG201", "MLG302", "MLG303"}, describe(report)


def test_deep_nesting_is_bounded(tmp_path: Path) -> None:
    graph = _graph([helper.make_node("Relu", ["x"], ["y"])]).SerializeToString()
    for _ in range(60):
        attr = proto_field(1, b"then_branch") + b"\xa0\x01\x05" + proto_field(6, graph)
        graph = proto_field(1, proto_field(4, b"If") + proto_field(5, attr))
    data = b"\x08\x08" + proto_field(7, graph) + proto_field(8, b"\x10\x11")
    report = scan(write(tmp_path / "m.onnx", data))
    assert_caught(report, "MLG301")


def test_corrupt_bytes_never_crash(tmp_path: Path) -> None:
    branch = _graph([helper.make_node("Relu", ["x"], ["y"])], inits=[_external("w.bin")])
    node = helper.make_node("If", ["x"], ["y"], then_branch=branch, else_branch=branch)
    data = _model(_graph([node], inits=[_weights(8)])).SerializeToString()
    for i in range(0, len(data), 2):
        mutated = bytearray(data)
        mutated[i] ^= 0xA5
        report = scan(write(tmp_path / f"m{i}.onnx", bytes(mutated)))
        assert "internal error" not in describe(report)


def test_external_data_nul_byte_and_missing_file(tmp_path: Path) -> None:
    model = _model(_graph([helper.make_node("Relu", ["x"], ["y"])], inits=[_external("w\0/../x")]))
    assert_caught(scan(_save(model, tmp_path / "a" / "m.onnx")), "MLG114")
    model = _model(_graph([helper.make_node("Relu", ["x"], ["y"])], inits=[_external("gone.bin")]))
    report = scan(_save(model, tmp_path / "b" / "m.onnx"))
    assert "MLG201" in rules_found(report) and "MLG114" not in rules_found(report)


def test_external_data_inside_archive_is_low(tmp_path: Path) -> None:
    import zipfile

    model = _model(_graph([helper.make_node("Relu", ["x"], ["y"])], inits=[_external("w.bin")]))
    with zipfile.ZipFile(tmp_path / "bundle.zip", "w") as z:
        z.writestr("m.onnx", model.SerializeToString())
        z.writestr("w.bin", b"\0" * 16)
    report = scan(tmp_path / "bundle.zip")
    assert "MLG114" in rules_found(report)
    assert "onnx" in [a.format for a in report.artifacts]
    assert not [f for f in report.at_or_above(Severity.HIGH) if f.rule_id == "MLG114"]
