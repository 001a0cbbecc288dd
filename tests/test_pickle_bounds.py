"""The pickle emulator fails closed and stays bounded: errors keep earlier findings, hostile
streams end within budget with a finding, honest large pickles are not false alarms."""

from __future__ import annotations

import gzip
import os
import pickle
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from factories import Reduce, assert_benign, describe, scan, write
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
    # The call's result memoized over and over: the memo limit stops the emulation.
    report = scan(write(tmp_path / "m.pkl", PAYLOAD + b"\x94" * 100_000 + b"."))
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


# ---------------------------------------------------------------------- bounds
# Peak RSS from VmHWM, which starts afresh at exec; ru_maxrss would include the pytest
# worker's own peak, which Linux carries over to its children.
_MEASURE = """
import re, resource, sys, mlgate
report = mlgate.scan(sys.argv[1], config=mlgate.Config())
usage = resource.getrusage(resource.RUSAGE_SELF)
peak_kb = int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
rules = sorted({f.rule_id for f in report.findings})
print(usage.ru_utime + usage.ru_stime, peak_kb // 1024, ",".join(rules))
"""


def _scan_in_subprocess(path: Path) -> tuple[float, int, set[str]]:
    """CPU seconds, peak RSS in MB and rule ids of a default scan in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    ).stdout.split()
    return float(out[0]), int(out[1]), set(out[2].split(",")) if len(out) > 2 else set()


def test_memo_flood_is_bounded_in_memory(tmp_path: Path) -> None:
    # 10 M MEMOIZE of one value (one byte each): 668 MB RSS and no finding before.
    path = write(tmp_path / "memo.pkl", b"\x80\x04N" + b"\x94" * 10_000_000 + b".")
    cpu, rss_mb, found = _scan_in_subprocess(path)
    assert "MLG301" in found
    assert rss_mb < 256, rss_mb
    assert cpu < 10, cpu


def test_honest_memo_density_is_not_a_limit(tmp_path: Path) -> None:
    # The densest memo a pickler writes: an empty container and MEMOIZE, two bytes each.
    data = pickle.dumps([[] for _ in range(300_000)], protocol=4)
    report = scan(write(tmp_path / "lists.pkl", data))
    assert_benign(report)


def _dataset(rows: int) -> bytes:
    """A package's dataset: a list of dicts of short strings, as pickle.dumps writes it."""
    return pickle.dumps(
        [{"id": f"r{i}", "name": f"n{i % 977}", "label": "abc"[i % 3]} for i in range(rows)],
        protocol=4,
    )


def test_honest_large_pickle_is_capped_by_its_size_not_a_flat_count(tmp_path: Path) -> None:
    # Scaled down: flat caps of 100 k opcodes and 10 k containers against a pickle of ~ 1 M
    # opcodes and 100 k dicts. Its size allows them (an opcode takes at least one byte, a
    # container eight), so it is analysed in full.
    data = _dataset(100_000)
    config = mlgate.Config(limits=Limits(max_opcodes=100_000, max_objects=10_000))
    report = mlgate.scan(write(tmp_path / "dataset.pkl", data), config=config)
    assert_benign(report)


@pytest.mark.parametrize(
    ("flood", "limits"),
    [
        pytest.param(b"N0", Limits(max_opcodes=100_000), id="opcodes"),
        pytest.param(b"]0", Limits(max_objects=100_000), id="containers"),
    ],
)
def test_compressed_flood_hits_the_flat_cap(tmp_path: Path, flood: bytes, limits: Limits) -> None:
    # Decompressed on the fly, the stream's size is unknown: 1-byte opcodes compress
    # 1000:1, so the flat cap (not the size) bounds the work, and hitting it is a finding.
    data = gzip.compress(b"\x80\x04" + flood * 1_000_000 + b"N.")
    path = write(tmp_path / "flood.pkl.gz", data)
    report = mlgate.scan(path, config=mlgate.Config(limits=limits))
    assert any(f.rule_id == "MLG301" for f in report.findings), describe(report)
    assert not all(a.complete for a in report.artifacts)
