"""The public Python API."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mlgate.config import Config, load_config
from mlgate.errors import ScanError, public_entry
from mlgate.findings import Finding, Report
from mlgate.scan.engine import scan_paths
from mlgate.scan.pickle.policy import Policy

if TYPE_CHECKING:
    from mlgate.scan.pickle.program import Program


@public_entry(ScanError)
def scan(*paths: str | os.PathLike[str], config: Config | None = None, jobs: int = 1) -> Report:
    """Statically scan model files or folders; nothing in them is loaded or executed.

    ``jobs`` > 1 analyses the files in that many processes (the same report as one).
    Raises :class:`mlgate.errors.ScanError` when a path does not exist.
    """
    cfg = config if config is not None else load_config()
    return scan_paths([Path(p) for p in paths], Policy(cfg.policy), cfg.limits, jobs=jobs)


@public_entry(ScanError)
def explain(path: str | os.PathLike[str], config: Config | None = None) -> str:
    """Pseudo-Python of every pickle found in ``path`` (archives and nesting included)."""
    from mlgate.render.escape import inert  # noqa: PLC0415
    from mlgate.scan.pickle.explain import explain_programs  # noqa: PLC0415

    cfg = config if config is not None else load_config()
    policy = Policy(cfg.policy)
    observed: list[tuple[str, list[Program]]] = []
    report = scan_paths(
        [Path(path)],
        policy,
        cfg.limits,
        observer=lambda src, progs: observed.append((src.location.artifact, progs)),
    )
    by_place: dict[tuple[str, int], list[Finding]] = defaultdict(list)
    for f in report.findings:
        if f.location.offset is not None:
            by_place[(f.location.artifact, f.location.offset)].append(f)
    parts = [
        # The header names the artifact: a hostile name must not break the line.
        explain_programs(inert(artifact), progs, policy, _findings_at(by_place, artifact))
        for artifact, progs in observed
    ]
    return "\n".join(parts) if parts else f"# {inert(str(path))}: no pickle found\n"


def _findings_at(
    by_place: dict[tuple[str, int], list[Finding]], artifact: str
) -> Callable[[int], Sequence[Finding]]:
    """The scan's findings at a byte offset of ``artifact`` (what explain annotates with)."""
    return lambda offset: by_place.get((artifact, offset), ())
