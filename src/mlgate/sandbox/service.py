"""One dynamic test: start the sandbox under the syscall tracer, collect, judge.

The wall clock is enforced here, outside: when it runs out the whole process group (strace,
bubblewrap and everything in the sandbox's PID namespace, which dies with its init) is killed.
Events are read from the runner's pipe while it runs, bounded in count and bytes, so a payload
flooding the channel cannot exhaust this process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

from mlgate.findings import Report
from mlgate.sandbox import cgroups, isolation, syscalls
from mlgate.sandbox.environment import PythonEnvironment, describe
from mlgate.sandbox.events import RunnerStatus, SandboxEvent, parse_channel
from mlgate.sandbox.limits import SandboxLimits
from mlgate.sandbox.seccomp_policy import compile_filter
from mlgate.sandbox.verdict import Outcome, judge

LOADERS = (
    "pickle",
    "torch",
    "torchscript",
    "joblib",
    "numpy",
    "keras",
    "onnx",
    "transformers",
    "gguf",
)
_MAX_CHANNEL_BYTES = 32 << 20
_OUTPUT_TAIL = 2000  # bytes of the sandbox's own output kept for the report


@dataclass(frozen=True)
class SandboxOptions:
    loader: str
    python: Path | None = None
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    allow_weaker_isolation: bool = False
    network: bool = True  # the fake network (DNS responder, TCP sink) inside the sandbox
    probe: bool = True  # run the loaded model once on generated inputs (inside/probe.py)
    reference: Path | None = None  # loaded in the same run; the probe compares outputs
    tolerance: float = 1e-4  # max abs output difference from the reference


@dataclass(frozen=True)
class SandboxRun:
    """Everything one run produced: the events, how it ended, and the findings."""

    model: str
    loader: str
    events: tuple[SandboxEvent, ...]
    statuses: tuple[RunnerStatus, ...]
    outcome: Outcome
    seconds: float
    isolation: dict[str, object]
    report: Report


def run_sandbox(model: Path, options: SandboxOptions) -> SandboxRun:
    """Load ``model`` with its real loader inside the sandbox and report what it did."""
    found = isolation.probe()
    isolation.require(found, options.allow_weaker_isolation)
    environment = describe(options.python)
    with ExitStack() as stack:
        trace_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mlgate-sbx-")))
        seccomp = stack.enter_context(compile_filter())
        groups = () if found.no_ceiling else _run_groups(stack, options.limits)
        started = time.monotonic()
        process = _launch(model, options, found, environment, seccomp, trace_dir, groups)
        collected = _collect(process, options, found, environment, trace_dir)
        seconds = time.monotonic() - started
        limits_hit = cgroups.limits_hit(groups)
    outcome = Outcome(
        exit_status=collected.exit_status,
        timed_out=collected.timed_out,
        lossy=collected.lossy,
        traced=found.strace is not None,
        weaker=found.weaknesses,
        limits_hit=tuple(limits_hit),
        output_tail=collected.output_tail,
    )
    events = (*collected.events, *collected.trace_events)
    report = judge(str(model), options.loader, events, list(collected.statuses), outcome)
    return SandboxRun(
        model=str(model),
        loader=options.loader,
        events=events,
        statuses=collected.statuses,
        outcome=outcome,
        seconds=seconds,
        isolation={
            "bwrap": found.bwrap,
            "strace": found.strace,
            "note": found.reason,
            "cgroups": [str(group) for group in groups],
        },
        report=report,
    )


def write_events(run: SandboxRun, path: Path) -> None:
    """Every event of ``run`` as JSON lines (ASCII-escaped: the texts are the attacker's)."""
    with path.open("w", encoding="ascii") as stream:
        for event in run.events:
            stream.write(json.dumps(asdict(event), ensure_ascii=True) + "\n")


@dataclass(frozen=True)
class _Collected:
    """What one finished run left behind, read and bounded."""

    events: tuple[SandboxEvent, ...]  # from the runner's channel (audit, network, probe)
    statuses: tuple[RunnerStatus, ...]
    trace_events: tuple[SandboxEvent, ...]  # from the syscall trace
    lossy: bool
    exit_status: int | None
    timed_out: bool
    output_tail: str


@dataclass(frozen=True)
class _Launched:
    process: subprocess.Popen[bytes]
    events_fd: int  # read end of the runner's channel
    trace_file: Path
    output_file: Path


def _launch(
    model: Path,
    options: SandboxOptions,
    found: isolation.Isolation,
    environment: PythonEnvironment,
    seccomp: IO[bytes],
    trace_dir: Path,
    groups: tuple[Path, ...],
) -> _Launched:
    """Start strace -> bwrap -> the runner, with the channel pipe and data files passed in."""
    model_inside = f"{isolation.MODEL_DIR}/{model.name}"
    others = _reference_bind(options.reference)
    read_end, write_end = os.pipe()
    data = {dest: _data_fd(content) for dest, content in isolation.data_files().items()}
    argv = isolation.bwrap_argv(
        found,
        isolation.Binds(environment, model.resolve(), model_inside, others),
        data,
        seccomp.fileno(),
        options.limits.scratch_bytes,
        options.network,
    )
    config = {
        "events_fd": write_end,  # inherited through bwrap (pass_fds)
        "loader": options.loader,
        "model": model_inside,
        "reference": others[0][1] if others else None,
        "probe": options.probe,
        "tolerance": options.tolerance,
        "limits": options.limits.rlimits(),
        "network": {"enabled": True} if options.network else None,
        "quiet_prefixes": [*map(str, environment.roots), isolation.MODEL_DIR, "/usr", "/lib"],
        "framework_roots": [f"{root}/" for root in environment.roots],
    }
    trace_file = trace_dir / "trace.txt"
    tracer = syscalls.strace_argv(trace_file, found.strace) if found.strace else []
    argv = [*tracer, *argv, *isolation.command(environment.executable, json.dumps(config))]
    argv = cgroups.join_argv(groups, argv) if groups else argv
    # Output of the sandbox goes to a file (FSIZE-limited inside), never to a pipe a flooding
    # payload could fill and stall on; its tail is kept for the report (bwrap's own errors).
    output_file = trace_dir / "output.txt"
    with output_file.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - fixed argv built above
            argv,
            pass_fds=(write_end, seccomp.fileno(), *data.values()),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            start_new_session=True,
        )
    for fd in (write_end, *data.values()):
        os.close(fd)
    return _Launched(process, read_end, trace_file, output_file)


def _collect(
    launched: _Launched,
    options: SandboxOptions,
    found: isolation.Isolation,
    environment: PythonEnvironment,
    trace_dir: Path,
) -> _Collected:
    """Drain the channel while the run lasts, enforce the wall clock, then read the trace."""
    chunks: list[bytes] = []
    reader = threading.Thread(target=_drain, args=(launched.events_fd, chunks), daemon=True)
    reader.start()
    limits = options.limits
    timed_out = _wait(launched.process, limits.wall_seconds, launched.trace_file, limits)
    reader.join(timeout=5)
    os.close(launched.events_fd)
    events, statuses, lossy = parse_channel(_lines(chunks), limits.max_events)
    trace_events: list[SandboxEvent] = []
    if found.strace:
        trace_reader = syscalls.TraceReader(
            str(environment.executable), skip_first_child=options.network
        )
        with _bounded(launched.trace_file, limits.max_trace_bytes) as lines:
            trace_events = trace_reader.events(lines)
        lossy = lossy or trace_reader.truncated or _too_big(launched.trace_file, limits)
    return _Collected(
        events=tuple(events),
        statuses=tuple(statuses),
        trace_events=tuple(trace_events),
        lossy=lossy,
        exit_status=launched.process.returncode,
        timed_out=timed_out,
        output_tail=_tail(launched.output_file),
    )


def _tail(path: Path) -> str:
    """The last lines the sandbox printed (bwrap's errors, a traceback), made inert."""
    try:
        with path.open("rb") as stream:
            stream.seek(max(0, path.stat().st_size - _OUTPUT_TAIL))
            text = stream.read(_OUTPUT_TAIL).decode("utf-8", "replace")
    except OSError:
        return ""
    return "".join(c if c.isprintable() or c == "\n" else repr(c)[1:-1] for c in text).strip()


def _run_groups(stack: ExitStack, limits: SandboxLimits) -> tuple[Path, ...]:
    """The per-run cgroup; only the caller's own processes (a non-root user) skip it, and
    RLIMIT_NPROC binds those."""
    if os.geteuid() != 0:
        return ()
    return stack.enter_context(cgroups.run_group(limits.processes, limits.memory_bytes))


def _reference_bind(reference: Path | None) -> tuple[tuple[Path, str], ...]:
    """A --reference model, bound apart so that a same-named model cannot shadow it."""
    if reference is None:
        return ()
    return ((reference.resolve(), f"{isolation.MODEL_DIR}/reference/{reference.name}"),)


def _data_fd(content: bytes) -> int:
    read_end, write_end = os.pipe()
    os.write(write_end, content)  # a few hundred bytes: fits the pipe buffer
    os.close(write_end)
    return read_end


def _drain(fd: int, chunks: list[bytes]) -> None:
    total = 0
    while chunk := os.read(fd, 65536):
        if total < _MAX_CHANNEL_BYTES:
            chunks.append(chunk[: _MAX_CHANNEL_BYTES - total])
        total += len(chunk)


def _lines(chunks: list[bytes]) -> list[bytes]:
    return b"".join(chunks).splitlines()


def _wait(
    process: subprocess.Popen[bytes], wall: float, trace: Path, limits: SandboxLimits
) -> bool:
    deadline = time.monotonic() + wall
    while True:
        try:
            process.wait(timeout=0.05)
            return False
        except subprocess.TimeoutExpired:
            pass
        if time.monotonic() > deadline or _too_big(trace, limits):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return time.monotonic() > deadline


def _too_big(trace: Path, limits: SandboxLimits) -> bool:
    try:
        return trace.stat().st_size > limits.max_trace_bytes
    except OSError:
        return False


@contextmanager
def _bounded(path: Path, limit: int) -> Iterator[Iterator[bytes]]:
    """The trace's lines, up to ``limit`` bytes (none when strace never wrote it)."""
    try:
        stream = path.open("rb")
    except OSError:
        yield iter(())
        return
    with stream:
        yield _limited(stream, limit)


def _limited(stream: IO[bytes], limit: int) -> Iterator[bytes]:
    read = 0
    for line in stream:
        read += len(line)
        if read > limit:
            return
        yield line
