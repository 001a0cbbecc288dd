"""Shared helpers of the sandbox tests: the isolation check and a run that keeps its events."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlgate.sandbox import isolation
from mlgate.sandbox.service import SandboxOptions, SandboxRun, run_sandbox


def require_sandbox() -> None:
    """Skip on a laptop without bubblewrap/strace/user namespaces; fail under CI=true."""
    found = isolation.probe()
    if found.full:
        return
    if os.environ.get("CI") == "true":  # CI installs bubblewrap and strace (.ci/run)
        pytest.fail(f"CI=true but the sandbox cannot run: {found.reason or found.weaknesses}")
    pytest.skip(found.reason or found.weaknesses)


def sandboxed(model: Path, loader: str, **options: object) -> SandboxRun:
    require_sandbox()
    return run_sandbox(model, SandboxOptions(loader=loader, **options))  # type: ignore[arg-type]


def rule_ids(run: SandboxRun) -> set[str]:
    return {f.rule_id for f in run.report.findings}
