"""The pickle emulator fails closed and stays bounded: errors keep earlier findings, hostile
streams end within budget with a finding, honest large pickles are not false alarms."""

from __future__ import annotations

import os
import pickle
import zlib
from pathlib import Path

import pytest
from factories import Reduce, describe, scan, write
from payloads import os_system, shell

import mlgate
from mlgate import Report, Severity
from mlgate.scan.limits import Limits
from mlgate.scan.pickle import analysis, vm
from mlgate.scan.pickle.values import Call, Global, Value

# os.system(...) runs at REDUCE; whatever follows is where the stream or mlgate fails.
PAYLOAD = os_system("bounds")[:-1]  # without its STOP


def _kept_payload(report: Report, rule_id: str) -> None:
    """The CRITICAL call found before the failure survives, next to the failure itself."""
    text = describe(report)
    assert any(
        f.rule_id == "MLG101" and f.severity is Severity.CRITICAL and "os.system" in f.message
        for f in report.findings
    ), text
    assert any(f.rule_id == rule_id for f in report.findings), text


def _calls_len(call: Call) -> bool:
    return isinstance(call.func, Global) and call.func.name == "len"


@pytest.mark.parametrize(
    "tail",
    [
        pytest.param(b"", id="truncated"),
        pytest.param(b"\xff", id="unknown-opcode"),
        pytest.param(b"0000.", id="stack-underflow"),
        pytest.param(b"h\x07.", id="memo-miss"),
        pytest.param(b"\x95\xff\xff\xff\xff\x00\x00\x00\x00", id="bad-frame"),
        pytest.param(b"S'\\x1'\n.", id="bad-string-escape"),
        pytest.param(b"V\\u12\n.", id="bad-unicode-escape"),
    ],
)
def test_parse_error_after_payload_keeps_payload(tmp_path: Path, tail: bytes) -> None:
    report = scan(write(tmp_path / "m.pkl", PAYLOAD + tail))
    _kept_payload(report, "MLG201")


def test_limit_after_payload_keeps_payload(tmp_path: Path) -> None:
    data = PAYLOAD + b"N0" * 100_000 + b"."
    config = mlgate.Config(limits=Limits(max_opcodes=1000))
    report = mlgate.scan(write(tmp_path / "m.pkl", data), config=config)
    _kept_payload(report, "MLG301")
    assert not all(a.complete for a in report.artifacts)


def test_stream_failure_between_pickles_keeps_payload(tmp_path: Path) -> None:
    # A gzip stream without its end marker: the first pickle decompresses, then reading on
    # (is there a second pickle?) fails. That failure used to discard the first pickle.
    gz = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    data = gz.compress(os_system("truncated-gzip")) + gz.flush(zlib.Z_SYNC_FLUSH)
    report = scan(write(tmp_path / "m.pkl.gz", data))
    _kept_payload(report, "MLG302")


def test_emulator_defect_after_payload_keeps_payload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fault injection: no known input breaks the emulator any more, so a defect is simulated
    # in the gadget evaluator, reached on the call that follows os.system.
    real = vm.gadgets.evaluate

    def defective(call: Call) -> Value:
        if _calls_len(call):
            raise IndexError("emulator defect")
        return real(call)

    monkeypatch.setattr(vm.gadgets, "evaluate", defective)
    data = pickle.dumps([Reduce(os.system, shell("defect")), Reduce(len, "ab")], protocol=0)
    report = scan(write(tmp_path / "m.pkl", data))
    _kept_payload(report, "MLG302")
    assert "IndexError: emulator defect" in describe(report)
    assert not all(a.complete for a in report.artifacts)


def test_analysis_defect_keeps_payload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Fault injection in the analysis of the second call: the first one is still reported.
    real = analysis.PickleAnalysis._call

    def defective(self: analysis.PickleAnalysis, call: Call) -> None:
        if _calls_len(call):
            raise KeyError("analysis defect")
        real(self, call)

    monkeypatch.setattr(analysis.PickleAnalysis, "_call", defective)
    data = pickle.dumps([Reduce(os.system, shell("analysis")), Reduce(len, "ab")], protocol=0)
    report = scan(write(tmp_path / "m.pkl", data))
    _kept_payload(report, "MLG302")
    assert not all(a.complete for a in report.artifacts)
