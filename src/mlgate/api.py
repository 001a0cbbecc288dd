"""The public Python API."""

from __future__ import annotations

import os
from pathlib import Path

from mlgate.config import Config, load_config
from mlgate.errors import ScanError, public_entry
from mlgate.findings import Report
from mlgate.scan.engine import scan_paths
from mlgate.scan.pickle.policy import Policy


@public_entry(ScanError)
def scan(*paths: str | os.PathLike[str], config: Config | None = None) -> Report:
    """Statically scan model files or folders; nothing in them is loaded or executed.

    Raises :class:`mlgate.errors.ScanError` when a path does not exist.
    """
    cfg = config if config is not None else load_config()
    return scan_paths([Path(p) for p in paths], Policy(cfg.policy), cfg.limits)


@public_entry(ScanError)
def explain(path: str | os.PathLike[str], config: Config | None = None) -> str:
    """Pseudo-Python of every pickle found in ``path`` (archives and nesting included)."""
    from mlgate.render.escape import inert  # noqa: PLC0415
    from mlgate.scan.pickle.explain import explain_programs  # noqa: PLC0415

    cfg = config if config is not None else load_config()
    policy = Policy(cfg.policy)
    parts: list[str] = []
    scan_paths(
        [Path(path)],
        policy,
        cfg.limits,
        observer=lambda src, progs: parts.append(
            # The header names the artifact: a hostile name must not break the line.
            explain_programs(inert(src.location.artifact), progs, policy)
        ),
    )
    return "\n".join(parts) if parts else f"# {inert(str(path))}: no pickle found\n"
