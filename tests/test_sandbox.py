"""The dynamic test: real loaders in bubblewrap, observed by audit hooks and strace."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

from click.testing import CliRunner
from sandbox_support import require_sandbox, rule_ids, sandboxed

from mlgate.cli import cli
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


def test_cli_writes_the_full_event_record(tmp_path: Path) -> None:
    """--events: every observation behind the findings, one JSON object per line."""
    require_sandbox()
    model = tmp_path / "evil.pkl"
    model.write_bytes(pickle.dumps(_System("echo \x1b[31mred")))
    events = tmp_path / "events.jsonl"
    result = CliRunner().invoke(cli, ["sandbox", str(model), "--events", str(events)])
    assert result.exit_code == 1, result.output
    records = [json.loads(line) for line in events.read_text(encoding="ascii").splitlines()]
    assert {"audit", "syscall"} <= {r["source"] for r in records}
    system = [r for r in records if r["action"] == "os.system"]
    assert system and system[0]["phase"] == "load" and "\\x1b[31mred" in system[0]["detail"][0]
    assert "\x1b" not in result.output  # the terminal escape stays inert in the report too
