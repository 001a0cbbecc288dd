"""The system-call trace, recorded by ``strace`` outside the sandbox, turned into events.

Audit hooks see only what Python does; a payload in native code (a custom op, ``ctypes``, a
shared library dropped into scratch) calls the kernel directly. ``strace -f`` runs outside the
sandbox as the sandbox's parent, so nothing inside can disable or forge it; ptrace stops come
before seccomp, so denied calls are recorded with their EPERM result.

strace's text output is parsed here (not an exploitable format: strace escapes every byte
of the strings it prints), bounded by line length and total size.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mlgate.sandbox.events import SandboxEvent
from mlgate.sandbox.seccomp_policy import DENIED

PROCESS_CALLS = ("execve", "execveat", "clone", "clone3", "fork", "vfork")
NETWORK_CALLS = ("connect", "sendto", "sendmsg", "sendmmsg", "bind")
FILE_CALLS = (
    "open",
    "openat",
    "openat2",
    "creat",
    "rename",
    "renameat",
    "renameat2",
    "unlink",
    "unlinkat",
    "mkdir",
    "mkdirat",
    "symlink",
    "symlinkat",
    "link",
    "linkat",
    "truncate",
    "chmod",
    "fchmodat",
)
SIGNAL_CALLS = ("kill", "tkill", "tgkill")
TRACED = (*PROCESS_CALLS, *NETWORK_CALLS, *FILE_CALLS, *SIGNAL_CALLS)

PHASE_MARKER = '"/mlgate/phase/'  # opened (never existing) by the runner at each phase switch
_PHASES = ("import", "load", "probe", "done")
_MAX_LINE = 16384
_TRANSLATED = re.compile(r"/\* (\d+) in strace's PID NS \*/")
# A whole double-quoted string (strace escapes quotes and backslashes inside), or one
# structural character; re.split keeps these as tokens between the plain runs.
_TOKENS = re.compile(r'("(?:[^"\\]|\\.)*"|[()\[\]{},])')
_LINE = re.compile(r"^(\d+) +(.*)$")
# --- SIGSYS {si_signo=SIGSYS, si_code=SYS_SECCOMP, ..., si_syscall=__NR_ptrace, ...} ---
_TRAPPED = re.compile(r"^--- SIGSYS \{.*si_code=SYS_SECCOMP.*si_syscall=__NR_(\w+)")
_RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
_UNFINISHED = " <unfinished ...>"
_WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND")
_CHANGES = frozenset(FILE_CALLS) - {"open", "openat", "openat2"}


def strace_argv(output: Path, strace: str = "strace") -> list[str]:
    """strace options: follow every process, full strings up to 256 bytes, no signals."""
    return [
        strace,
        "-f",
        "-qq",
        "--pidns-translation",  # clone results in host PIDs, as the line prefixes
        "-s",
        "256",
        "--seccomp-bpf",  # stop only on the traced calls (see seccomp_policy: denied = SIGSYS)
        "-e",
        "signal=SIGSYS",
        "-e",
        "trace=" + ",".join(TRACED),
        "-o",
        str(output),
        "--",
    ]


@dataclass(frozen=True)
class Call:
    """One completed system call from the trace."""

    pid: int
    name: str
    args: tuple[str, ...]
    result: str


@dataclass
class TraceReader:
    """Reads a finished trace and keeps the calls made by the sandboxed interpreter and its
    descendants (bubblewrap's own set-up is not the model's doing)."""

    interpreter: str
    skip_first_child: bool = False  # the fake network, forked by the runner first
    truncated: bool = False
    _pending: dict[tuple[int, str], str] = field(default_factory=dict)

    def events(self, lines: Iterable[bytes]) -> list[SandboxEvent]:
        calls = list(self._calls(lines))
        inside, start = self._sandboxed_pids(calls)
        phase, found = "import", list[SandboxEvent]()
        for call in calls:
            if call.pid not in inside or call is start:
                continue
            marker = _phase_marker(call)
            if marker is not None:
                # Phases only move forward: a payload opening the marker of an earlier phase
                # cannot make what it does next look like the framework's start-up.
                phase = max(phase, marker, key=_PHASES.index)
                continue
            found += (e for e in _event(call, phase) if not _startup_read(e))
        return found

    def _calls(self, lines: Iterable[bytes]) -> Iterator[Call]:
        for raw in lines:
            if len(raw) > _MAX_LINE:
                self.truncated = True
                continue
            call = self._call(raw.decode("ascii", "replace").rstrip("\n"))
            if call is not None:
                yield call

    def _call(self, line: str) -> Call | None:
        match = _LINE.match(line)
        if match is None:
            return None
        pid, text = int(match[1]), match[2]
        trapped = _TRAPPED.match(text)
        if trapped is not None:  # a call the seccomp filter denied (SIGSYS)
            return Call(pid, trapped[1], (), "SIGSYS (denied by the sandbox's seccomp filter)")
        resumed = _RESUMED.match(text)
        if resumed is not None:
            start = self._pending.pop((pid, resumed[1]), None)
            if start is None:
                return None
            text = start + resumed[2]
        elif text.endswith(_UNFINISHED):
            name = text.split("(", 1)[0]
            self._pending[(pid, name)] = text[: -len(_UNFINISHED)]
            return None
        return _split_call(pid, text)

    def _sandboxed_pids(self, calls: list[Call]) -> tuple[set[int], Call | None]:
        """The interpreter bubblewrap started (its exec is the start, not an event) and every
        process descending from it."""
        start = next(
            (
                c
                for c in calls
                if c.name == "execve"
                and c.result == "0"
                and c.args
                and c.args[0] == f'"{self.interpreter}"'
            ),
            None,
        )
        if start is None:
            return set(), None
        root = start.pid
        inside = {root}
        children: dict[int, list[int]] = {}
        for call in calls:
            child = _child_pid(call)
            if child is not None:
                children.setdefault(call.pid, []).append(child)
        if self.skip_first_child and children.get(root):
            children[root] = children[root][1:]
        frontier = [root]
        while frontier:
            for child in children.get(frontier.pop(), []):
                if child not in inside:
                    inside.add(child)
                    frontier.append(child)
        return inside, start


def _split_call(pid: int, text: str) -> Call | None:
    """``name(arg, arg...) = result`` with quotes and nesting respected. Strings are matched
    whole by a regular expression, so the loop runs over tokens, not characters (a trace of
    ``import torch`` has thousands of long paths)."""
    name, paren, rest = text.partition("(")
    if not paren or not name.isidentifier():
        return None
    args: list[str] = []
    depth, start, offset = 0, 0, 0
    for piece in _TOKENS.split(rest):
        if piece in ("(", "[", "{"):
            depth += 1
        elif piece in (")", "]", "}"):
            if depth == 0:  # the call's own closing parenthesis
                args.append(rest[start:offset].strip())
                result = rest[offset + 1 :].strip().removeprefix("=").strip()
                return Call(pid, name, tuple(a for a in args if a), result)
            depth -= 1
        elif piece == "," and depth == 0:
            args.append(rest[start:offset].strip())
            start = offset + 1
        offset += len(piece)
    return None


def _child_pid(call: Call) -> int | None:
    """The new process's PID in strace's namespace: ``= 3 /* 6797 in strace's PID NS */``."""
    if call.name not in ("clone", "clone3", "fork", "vfork"):
        return None
    translated = _TRANSLATED.search(call.result)
    if translated is not None:
        return int(translated[1])
    return int(call.result) if call.result.isdigit() else None


def _startup_read(event: SandboxEvent) -> bool:
    """A file the framework reads while it starts (thousands for torch): never judged, not
    kept. Writes, processes and connections at start-up are kept, for the record."""
    return event.phase == "import" and event.category == "file-read"


def _phase_marker(call: Call) -> str | None:
    if call.name != "openat" or len(call.args) < 2 or not call.args[1].startswith(PHASE_MARKER):
        return None
    phase = call.args[1][len(PHASE_MARKER) : -1]
    return phase if phase in _PHASES else None


def _event(call: Call, phase: str) -> Iterator[SandboxEvent]:
    category = _category(call)
    if category is not None:
        yield SandboxEvent(
            source="syscall",
            category=category,
            action=call.name,
            detail=call.args[:4],
            phase=phase,
            pid=call.pid,
            result=call.result[:120],
        )


def _category(call: Call) -> str | None:
    name = call.name
    if call.result.startswith("SIGSYS") or name in DENIED:
        return "denied"
    if name in ("execve", "execveat"):
        return "process"
    if name in ("clone", "clone3"):
        flags = " ".join(call.args)
        return None if "CLONE_THREAD" in flags else "process"
    if name in ("fork", "vfork"):
        return "process"
    if name in NETWORK_CALLS:
        return None if "AF_UNIX" in " ".join(call.args) and name == "bind" else "network"
    if name in SIGNAL_CALLS:
        return "signal"
    if name in _CHANGES:
        return "file-change"
    flags = " ".join(call.args[1:3]) if name != "open" else " ".join(call.args[1:2])
    return "file-write" if any(f in flags for f in _WRITE_FLAGS) else "file-read"
