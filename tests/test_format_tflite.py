"""TFLite flatbuffers built with the generated schema classes of the ``tflite`` package."""

from __future__ import annotations

from pathlib import Path

import flatbuffers
import pytest
import tflite
from factories import assert_benign, assert_caught, describe, rules_found, scan, write

from mlgate import Severity

CUSTOM = tflite.BuiltinOperator.CUSTOM


def _vector(b: flatbuffers.Builder, start, items: list[int]) -> int:
    start(b, len(items))
    for item in reversed(items):
        b.PrependUOffsetTRelative(item)
    return b.EndVector()


def _model(opcodes: list[tuple[int, str]], uses: list[int] | None = None) -> bytes:
    """A model with one subgraph whose operators use ``uses`` (indices into ``opcodes``)."""
    b = flatbuffers.Builder(1024)
    customs = [b.CreateString(name) if name else None for _, name in opcodes]
    codes = []
    for (code, _), name in zip(opcodes, customs):
        tflite.OperatorCodeStart(b)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
        tflite.OperatorCodeAddBuiltinCode(b, code)
        tflite.OperatorCodeAddVersion(b, 1)
        if name is not None:
            tflite.OperatorCodeAddCustomCode(b, name)
        codes.append(tflite.OperatorCodeEnd(b))
    ops = []
    for index in range(len(opcodes)) if uses is None else uses:
        tflite.OperatorStart(b)
        tflite.OperatorAddOpcodeIndex(b, index)
        ops.append(tflite.OperatorEnd(b))
    op_vec = _vector(b, tflite.SubGraphStartOperatorsVector, ops)
    name = b.CreateString("main")
    tflite.SubGraphStart(b)
    tflite.SubGraphAddOperators(b, op_vec)
    tflite.SubGraphAddName(b, name)
    subgraph = tflite.SubGraphEnd(b)
    tflite.BufferStart(b)
    empty = tflite.BufferEnd(b)
    code_vec = _vector(b, tflite.ModelStartOperatorCodesVector, codes)
    sub_vec = _vector(b, tflite.ModelStartSubgraphsVector, [subgraph])
    buf_vec = _vector(b, tflite.ModelStartBuffersVector, [empty])
    desc = b.CreateString("mlgate test")
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, code_vec)
    tflite.ModelAddSubgraphs(b, sub_vec)
    tflite.ModelAddBuffers(b, buf_vec)
    tflite.ModelAddDescription(b, desc)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


BENIGN = [(tflite.BuiltinOperator.CONV_2D, ""), (tflite.BuiltinOperator.RELU, "")]


def test_benign_builtin_model(tmp_path: Path) -> None:
    data = _model(BENIGN)
    assert data[4:8] == b"TFL3"
    assert tflite.Model.GetRootAs(data, 0).OperatorCodesLength() == 2  # the real reader agrees
    report = scan(write(tmp_path / "m.tflite", data))
    assert_benign(report)
    assert [a.format for a in report.artifacts] == ["tflite"]
    assert "2 operators" in describe(report)


def test_custom_op_is_medium(tmp_path: Path) -> None:
    report = scan(write(tmp_path / "m.tflite", _model([*BENIGN, (CUSTOM, "MyKernel")])))
    assert_benign(report)
    assert "MLG113" in rules_found(report, at_least=Severity.MEDIUM)
    assert "MyKernel" in describe(report)


def test_flex_op_is_info(tmp_path: Path) -> None:
    report = scan(write(tmp_path / "m.tflite", _model([*BENIGN, (CUSTOM, "FlexRFFT")])))
    assert_benign(report)
    assert "FlexRFFT" in describe(report)


@pytest.mark.parametrize("op", ["FlexReadFile", "FlexWriteFile", "FlexPyFunc"])
def test_dangerous_flex_op(tmp_path: Path, op: str) -> None:
    report = scan(write(tmp_path / "m.tflite", _model([*BENIGN, (CUSTOM, op)])))
    assert_caught(report, "MLG112")


def test_opcode_index_out_of_range(tmp_path: Path) -> None:
    report = scan(write(tmp_path / "m.tflite", _model(BENIGN, uses=[0, 7])))
    assert "MLG201" in rules_found(report), describe(report)


@pytest.mark.parametrize("cut", [12, 40, -20])
def test_truncated_is_malformed(tmp_path: Path, cut: int) -> None:
    data = _model([*BENIGN, (CUSTOM, "FlexWriteFile")])
    report = scan(write(tmp_path / "m.tflite", data[:cut]))
    assert rules_found(report) & {"MLG201", "MLG112"}, describe(report)


def test_corrupt_offsets_never_crash(tmp_path: Path) -> None:
    data = bytearray(_model([*BENIGN, (CUSTOM, "X")]))
    for i in range(8, len(data), 3):
        mutated = bytearray(data)
        mutated[i] ^= 0xFF
        report = scan(write(tmp_path / f"m{i}.tflite", bytes(mutated)))
        assert "internal error" not in describe(report)


def test_pickle_with_tflite_identifier_is_still_read(tmp_path: Path) -> None:
    data = b"(S'x" + b"TFL3" + b"'\np0\n0cos\nsystem\n(S'id'\ntR."
    assert data[4:8] == b"TFL3"
    report = scan(write(tmp_path / "m.tflite", data))
    assert_caught(report)


def test_decoders_raise_only_their_errors() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from mlgate.scan.formats.protobuf import classify
    from mlgate.scan.formats.tflite import Flat, FlatError
    from mlgate.scan.protowire import ProtoError, fields

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=200))
    def check(data: bytes) -> None:
        classify(data, "x.pb")
        try:
            for f in fields(data, 0, len(data)):
                assert f.start <= f.end <= len(data)
        except ProtoError:
            pass
        flat = Flat(data)
        try:
            root = flat.deref(0)
            list(flat.tables(root, 1))
            flat.string(root, 3)
        except FlatError:
            pass

    check()
