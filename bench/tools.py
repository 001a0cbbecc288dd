"""The scanners under test and the references, with how to install and invoke each.

Third-party scanners are installed at pinned versions into a virtualenv of their own, so
none of them shares dependencies with mlgate or with each other.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from inputs import Kind

ROOT = Path(__file__).resolve().parent.parent
MLGATE = ROOT / ".venv" / "bin" / "mlgate"

# (executable, input file, scratch folder) -> command line
CommandLine = Callable[[Path, Path, Path], list[str]]


@dataclass(frozen=True)
class Tool:
    """A command measured on every input it can read."""

    name: str
    executable: str  # a path, or a name looked up in the tool's virtualenv
    command: CommandLine
    ok_codes: frozenset[int]  # exit codes of a completed scan (findings or not)
    requirements: tuple[str, ...] = ()  # pip requirements; empty for tools not installed here
    unsupported: dict[Kind, str] = field(default_factory=dict)


TOOLS: tuple[Tool, ...] = (
    Tool("mlgate", str(MLGATE), lambda exe, f, _: [str(exe), "scan", str(f), "--format", "json"],
         frozenset({0, 1})),
    Tool("sha256sum", "sha256sum", lambda exe, f, _: [str(exe), str(f)], frozenset({0})),
    Tool("picklescan", "picklescan", lambda exe, f, _: [str(exe), "--path", str(f)],
         frozenset({0, 1}), ("picklescan==1.0.5",)),
    Tool("modelscan", "modelscan", lambda exe, f, _: [str(exe), "scan", "-p", str(f)],
         frozenset({0, 1}), ("modelscan==0.8.8",)),
    Tool("fickling", "fickling",
         lambda exe, f, tmp: [str(exe), "--check-safety", "--json-output",
                              str(tmp / "fickling-report.json"), str(f)],
         frozenset({0, 1}),
         # fickling 0.1.12 imports typing_extensions on Python < 3.12 without declaring it.
         ("fickling==0.1.12", "typing_extensions==4.15.0"),
         {Kind.TORCH_ZIP: "its CLI parses the whole file as one pickle stream and does not "
                          "open zip archives ('No pickle files detected', exit 2)"}),
)


def install(tool: Tool, venvs: Path, log: Callable[[str], None]) -> Path | str:
    """The tool's executable, installing it first if needed; a reason string on failure."""
    if not tool.requirements:
        found = shutil.which(tool.executable)
        return Path(found) if found else f"{tool.executable} not found"
    venv = venvs / tool.name
    stamp = venv / ".bench-requirements"
    wanted = "\n".join(tool.requirements)
    exe = venv / "bin" / tool.executable
    if exe.is_file() and stamp.is_file() and stamp.read_text(encoding="utf-8") == wanted:
        return exe
    log(f"installing {' '.join(tool.requirements)} into {venv}")
    steps = [
        ["python3", "-m", "venv", "--clear", str(venv)],
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         *tool.requirements],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
            return f"install failed ({' '.join(step[:3])}...): {' '.join(tail)}"
    stamp.write_text(wanted, encoding="utf-8")
    return exe


def version(tool: Tool, exe: Path) -> str:
    """The installed version, for the report header."""
    if not tool.requirements:
        return _first_line([str(exe), "--version"]).rsplit(" ", 1)[-1]
    pip = [str(exe.parent / "python"), "-m", "pip", "show", tool.requirements[0].split("==")[0]]
    show = _first_line(pip, "Version:")
    return show.removeprefix("Version:").strip()


def _first_line(cmd: list[str], prefix: str = "") -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(prefix)]
    return lines[0].strip() if lines else "unknown"
