"""A control group per run: a process and memory ceiling that also binds root.

RLIMIT_NPROC is not enforced for kernel uid 0, and when mlgate runs as root the sandbox's
uid 0 *is* kernel uid 0 (the user namespace maps it to itself): a fork bomb in a pickle would
exhaust the host's PIDs. A fresh cgroup with ``pids.max`` (and a memory limit) holds the whole
run (strace, bubblewrap and everything inside), whoever runs it. It is created under mlgate's
own cgroup (nesting, so limits set on mlgate by its supervisor still apply), joined by a tiny
wrapper that writes its own PID before exec'ing strace (no ``preexec_fn``: that runs between
fork and exec, where taking any lock a thread held can deadlock), and removed after the run,
once every process in it is killed (daemonised children of a payload included).

cgroup v2 (one unified hierarchy) is used when present, else v1's ``pids`` and ``memory``
hierarchies. When neither can be created, :func:`unavailable` says why; the isolation probe
then reports weaker isolation for root callers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
_V1_LIMITS = {"pids": ("pids.max",), "memory": ("memory.limit_in_bytes",)}
_V2_LIMITS = ("pids.max", "memory.max")
_REMOVE_SECONDS = 5.0
# The wrapper: join every cgroup given before "--", then become the command after it.
_JOIN = (
    "import os, sys\n"
    "split = sys.argv.index('--')\n"
    "for procs in sys.argv[1:split]:\n"
    "    with open(procs, 'w') as stream:\n"
    "        stream.write(str(os.getpid()))\n"
    "os.execv(sys.argv[split + 1], sys.argv[split + 1:])\n"
)


def unavailable() -> str:
    """Why a per-run cgroup cannot be made here ("" when it can): tried, never assumed."""
    try:
        with run_group(processes=64, memory_bytes=1 << 30):
            return ""
    except OSError as error:
        return f"no per-run cgroup ({error.strerror or error}: {error.filename or ''})"


@contextlib.contextmanager
def run_group(processes: int, memory_bytes: int) -> Iterator[tuple[Path, ...]]:
    """Create the cgroup(s) with their limits; yield the cgroup folders; kill and remove."""
    name = f"mlgate-{uuid.uuid4().hex[:12]}"
    made: list[Path] = []
    try:
        for folder, limits in _plan(name):
            folder.mkdir()
            made.append(folder)
            for limit in limits:
                value = processes if limit.startswith("pids") else memory_bytes
                (folder / limit).write_text(str(value))
        yield tuple(made)
    finally:
        for folder in made:
            _empty_and_remove(folder)


def join_argv(groups: Sequence[Path], argv: Sequence[str]) -> list[str]:
    """``argv`` started inside ``groups``: the wrapper joins them first."""
    procs = [str(group / "cgroup.procs") for group in groups]
    return [sys.executable, "-I", "-S", "-c", _JOIN, *procs, "--", *argv]


def limits_hit(groups: Sequence[Path]) -> list[str]:
    """What the ceilings stopped, read before removal: forks refused at ``pids.max`` and
    processes the OOM killer ended (the payload sees only EAGAIN or vanishes: say why)."""
    hits: list[str] = []
    for group in groups:
        refused = _counter(group / "pids.events", "max")
        killed = _counter(group / "memory.events", "oom_kill") + _counter(
            group / "memory.oom_control", "oom_kill"
        )
        if refused:
            hits.append(f"the process limit refused {refused} fork(s)")
        if killed:
            hits.append(f"the memory limit killed {killed} process(es)")
    return hits


def _counter(events: Path, key: str) -> int:
    try:
        lines = events.read_text().splitlines()
    except OSError:
        return 0
    values = [line.split()[1] for line in lines if line.split()[:1] == [key]]
    return int(values[0]) if values and values[0].isdigit() else 0


def _plan(name: str) -> list[tuple[Path, tuple[str, ...]]]:
    own = _own_paths()
    if (ROOT / "cgroup.controllers").exists():
        return [(ROOT / own.get("", "/").lstrip("/") / name, _V2_LIMITS)]
    return [
        (ROOT / controller / own.get(controller, "/").lstrip("/") / name, limits)
        for controller, limits in _V1_LIMITS.items()
    ]


def _own_paths() -> dict[str, str]:
    """controller -> this process's cgroup in it (``""`` is the v2 hierarchy)."""
    paths: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            paths[controller] = path
    return paths


def _empty_and_remove(folder: Path) -> None:
    """Kill everything left in the cgroup (a payload's double-forked daemon included), then
    remove it; pids.max keeps a fork bomb from outrunning the kill loop."""
    deadline = time.monotonic() + _REMOVE_SECONDS
    while time.monotonic() < deadline:
        for pid in _members(folder):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        try:
            folder.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:  # EBUSY: processes still exiting
            time.sleep(0.02)


def _members(folder: Path) -> list[int]:
    try:
        return [int(pid) for pid in (folder / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []
