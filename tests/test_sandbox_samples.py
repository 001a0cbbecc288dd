"""The bundled malicious samples (samples/payloads.py, the demo's set) in the sandbox.

Each executes in its native loader (pickle, torch.load's legacy path, joblib): the sandbox
must catch it with the action named, and the marker file its command creates must never
appear on the host (inside, /tmp is the private scratch). Also: --python with another
interpreter environment than mlgate's own.
"""

from __future__ import annotations

import gzip
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import payloads
import pytest
from sandbox_support import require_sandbox, rule_ids, sandboxed

from mlgate.findings import Severity
from mlgate.sandbox.choice import choose_loader

# The demo's malicious set, disguised.safetensors aside (auto refuses to guess its loader; tested
# below), plus a gzip-compressed pickle that joblib opens by itself.
_SAMPLES: dict[str, Callable[[str], bytes]] = {
    **{k: v for k, v in payloads.DEMO_MALICIOUS.items() if k != "disguised.safetensors"},
    "compressed.joblib": lambda name: gzip.compress(payloads.os_system(name)),
}


@pytest.mark.parametrize("name", sorted(_SAMPLES))
def test_bundled_malicious_sample_is_caught_and_contained(tmp_path: Path, name: str) -> None:
    tag = f"sandbox-{tmp_path.name}"
    model = tmp_path / name
    model.write_bytes(_SAMPLES[name](tag))
    run = sandboxed(model, choose_loader(model))
    assert not Path(payloads.marker(tag)).exists()  # the host's /tmp never sees it
    assert rule_ids(run) & {"MLG701", "MLG702"}, rule_ids(run)
    assert run.report.max_severity is Severity.CRITICAL
    evidence = " ".join(f.evidence for f in run.report.findings)
    assert payloads.marker(tag) in evidence  # the command or code, as it ran, is reported


def test_disguised_pickle_is_caught_with_the_loader_named(tmp_path: Path) -> None:
    """A pickle named .safetensors: auto refuses to guess; --loader pickle runs it."""
    tag = f"sandbox-{tmp_path.name}"
    model = tmp_path / "disguised.safetensors"
    model.write_bytes(payloads.os_system(tag))
    run = sandboxed(model, "pickle")
    assert "MLG701" in rule_ids(run)
    assert not Path(payloads.marker(tag)).exists()


def test_another_interpreter_environment_is_used_read_only(tmp_path: Path) -> None:
    """--python: a bare virtualenv (no mlgate, no frameworks) loads a pickle; its torch-less
    environment cannot run the torch loader, which is a failed load, never a pass."""
    require_sandbox()
    venv = tmp_path / "bare-env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    model = tmp_path / "plain.pkl"
    model.write_bytes(pickle.dumps({"weights": [1.0]}))
    clean = sandboxed(model, "pickle", python=python)
    assert clean.report.findings == () and clean.report.complete
    failed = sandboxed(model, "torch", python=python)
    assert rule_ids(failed) == {"MLG708"} and not failed.report.complete
    assert "torch" in " ".join(f.evidence for f in failed.report.findings)
