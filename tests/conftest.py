"""Shared test set-up: crafted payload helpers and the proof that nothing was executed."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "samples"))

import payloads

pytest_plugins = ["registry_support", "browser_support", "hub_support"]


def pytest_sessionstart(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput"):  # controller (or single process) only
        shutil.rmtree(payloads.MARKER_DIR, ignore_errors=True)
        payloads.MARKER_DIR.mkdir(parents=True, exist_ok=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Every malicious fixture would create a marker file if run: none may exist."""
    if hasattr(session.config, "workerinput"):
        return
    created = sorted(p.name for p in payloads.MARKER_DIR.glob("PWNED-*"))
    if created:
        print(f"\nPAYLOADS WERE EXECUTED during the test session: {created}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def marker_dir() -> Path:
    return payloads.MARKER_DIR
