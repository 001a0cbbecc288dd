"""The dynamic test: real loaders in bubblewrap, observed by audit hooks and strace."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

from sandbox_support import rule_ids, sandboxed

from mlgate.findings import Severity


class _System:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


def test_process_payload_is_caught_and_its_marker_stays_inside(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    model = tmp_path / "evil.pkl"
    model.write_bytes(pickle.dumps(_System(f"echo pwned > {marker}; touch {marker}.2")))
    run = sandboxed(model, "pickle")
    assert not marker.exists() and not Path(f"{marker}.2").exists()
    assert {"MLG701", "MLG705"} <= rule_ids(run)
    evidence = " ".join(f.evidence for f in run.report.findings)
    assert "/bin/sh" in evidence and "echo pwned" in evidence  # the command line is reported
    assert run.report.max_severity is Severity.CRITICAL


def test_benign_pickle_loads_clean(tmp_path: Path) -> None:
    model = tmp_path / "plain.pkl"
    model.write_bytes(pickle.dumps({"weights": [1.0, 2.0], "name": "tiny"}))
    run = sandboxed(model, "pickle")
    assert run.report.findings == ()
    assert run.report.complete


def test_load_error_is_incomplete_not_clean(tmp_path: Path) -> None:
    model = tmp_path / "broken.pkl"
    model.write_bytes(b"\x80\x04not a pickle")
    run = sandboxed(model, "pickle")
    assert rule_ids(run) == {"MLG708"}
    assert not run.report.complete
