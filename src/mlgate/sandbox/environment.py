"""The interpreter environment the loader runs in (``--python``), bound read-only.

The interpreter is the user's own (trusted) virtualenv; asking it where it lives is the only
way to know which folders a loader needs: its prefix, the base installation a venv points
to, and any ``sys.path`` entry outside both (editable installs, ``.pth`` additions).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from mlgate.sandbox.errors import SandboxUnavailableError

_QUERY = (
    "import json, sys; print(json.dumps({'executable': sys.executable, 'prefix': sys.prefix,"
    " 'base_prefix': sys.base_prefix, 'path': [p for p in sys.path if p],"
    " 'version': list(sys.version_info[:2])}))"
)
_TIMEOUT = 30.0


@dataclass(frozen=True)
class PythonEnvironment:
    """Where an interpreter and everything it imports live."""

    executable: Path
    roots: tuple[Path, ...]
    version: tuple[int, int]


def describe(python: Path | None) -> PythonEnvironment:
    """Ask ``python`` (default: this interpreter) for its executable, prefixes and path."""
    argv = [str(python or sys.executable), "-I", "-c", _QUERY]
    try:
        done = subprocess.run(  # noqa: S603 - the user's own interpreter, fixed code
            argv, capture_output=True, timeout=_TIMEOUT, check=True, text=True
        )
        facts = json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as error:
        raise SandboxUnavailableError(
            f"cannot use {argv[0]} as the loader's interpreter: {error}",
            remedy="pass --python PATH to a Python that has the model's frameworks installed",
        ) from error
    executable = Path(facts["executable"])
    folders = [Path(facts["prefix"]), Path(facts["base_prefix"])]
    folders += [Path(p) for p in facts["path"] if Path(p).is_dir()]
    return PythonEnvironment(
        executable=executable,
        roots=_outermost({f.resolve() for f in folders} | {executable.parent.resolve()}),
        version=(int(facts["version"][0]), int(facts["version"][1])),
    )


def _outermost(folders: set[Path]) -> tuple[Path, ...]:
    """Drop folders inside other folders of the set: one bind covers them."""
    ordered = sorted(folders, key=lambda p: len(p.parts))
    kept: list[Path] = []
    for folder in ordered:
        if not any(folder.is_relative_to(k) for k in kept):
            kept.append(folder)
    return tuple(sorted(kept))
