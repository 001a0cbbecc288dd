"""Wall time and peak memory of one command, each run in its own child process.

Peak RSS comes from GNU ``/usr/bin/time -v`` when it is installed, otherwise from the
``rusage`` that ``os.wait4`` returns for the child. Wall time is measured here either way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import IO

GNU_TIME = Path("/usr/bin/time")
_RSS_LINE = "Maximum resident set size (kbytes):"


@dataclass(frozen=True)
class Sample:
    """One or more runs of a command: best wall time, worst peak RSS, last exit code."""

    seconds: float
    peak_mb: float
    exit_code: int
    timed_out: bool
    last_stderr_line: str


@cache
def has_gnu_time() -> bool:
    """True when ``/usr/bin/time`` is GNU time (it reports peak RSS with ``-v``)."""
    if not GNU_TIME.is_file():
        return False
    done = subprocess.run([str(GNU_TIME), "-v", "true"], capture_output=True, text=True,
                          check=False)
    return _RSS_LINE in done.stderr


def best_of(cmd: list[str], cwd: Path, runs: int, timeout: float) -> Sample:
    """One warm-up run, then ``runs`` measured ones; stops at the first time-out."""
    samples = [measure(cmd, cwd, timeout)]
    while not samples[-1].timed_out and len(samples) <= runs:
        samples.append(measure(cmd, cwd, timeout))
    measured = samples[1:] or samples
    if measured[-1].timed_out:
        return measured[-1]
    return Sample(
        seconds=min(s.seconds for s in measured),
        peak_mb=max(s.peak_mb for s in measured),
        exit_code=measured[-1].exit_code,
        timed_out=False,
        last_stderr_line=measured[-1].last_stderr_line,
    )


def measure(cmd: list[str], cwd: Path, timeout: float) -> Sample:
    """Run ``cmd`` once with its output discarded (stderr kept to say why it failed)."""
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        rss_file = Path(tmp) / "rusage"
        err_file = Path(tmp) / "stderr"
        full = [str(GNU_TIME), "-v", "-o", str(rss_file), *cmd] if has_gnu_time() else cmd
        with err_file.open("wb") as err:
            seconds, code, rss_kb, timed_out = _run(full, cwd, timeout, err)
        if has_gnu_time():
            rss_kb = _gnu_rss(rss_file)
        lines = err_file.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return Sample(seconds, rss_kb / 1024, code, timed_out, lines[-1] if lines else "")


def _run(cmd: list[str], cwd: Path, timeout: float, err: IO[bytes]) -> tuple[float, int, int, bool]:
    """(wall seconds, exit code, ru_maxrss in KiB, timed out) of one child process."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=err, start_new_session=True)
    fired = threading.Event()
    timer = threading.Timer(timeout, _kill_group, (proc.pid, fired))
    start = time.perf_counter()
    timer.start()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return seconds, proc.returncode, usage.ru_maxrss, fired.is_set()


def _kill_group(pid: int, fired: threading.Event) -> None:
    fired.set()
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        fired.clear()  # it ended just before the deadline


def _gnu_rss(report: Path) -> int:
    for line in report.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.strip().startswith(_RSS_LINE):
            return int(line.split(":", 1)[1])
    return 0
