"""A parser run in a child process, spoken to in JSON lines, and killed at a deadline.

C parsers on the scan path (libhdf5, py7zr's decoders) can loop forever or fault on hostile
input, and nothing in-process can interrupt them. Each runs as a plain script
(``python -I SCRIPT MEMORY``: it never imports the mlgate package, so it starts in the time
its parser takes to import) under limits it sets itself; this side writes one request line,
reads answer lines by a deadline, and turns a hang, a crash or nonsense into
:class:`ReaderFailed`, which the handler reports as a finding (artifact incomplete).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mlgate.scan import rules

# Why a reader died, by signal: its own limits (RLIMIT_FSIZE, RLIMIT_CPU) or the kernel's
# out-of-memory killer. Any other signal is a fault in the parser.
_LIMIT_SIGNALS: dict[int, str] = {
    signal.SIGXFSZ: "wrote more than the decompression budget",
    signal.SIGXCPU: "ran out of CPU time",
    signal.SIGKILL: "was killed (out of memory?)",
}


class ReaderFailed(Exception):
    """The reader process hung, crashed or answered nonsense; the message says which."""

    def __init__(self, message: str, rule: rules.Rule = rules.UNSUPPORTED) -> None:
        super().__init__(message)
        self.rule = rule


class ReaderProcess:
    """One reader process, reused for request after request until it fails.

    ``name`` ("HDF5 reader") and ``hang`` ("libhdf5 hang?") word the findings; ``lost`` says
    what was not analysed when the reader fails ("file not analysed").
    """

    def __init__(
        self, script: Path, memory: int, name: str, hang: str, lost: str, max_line: int
    ) -> None:
        # One BLAS thread: each reserves address space that counts against RLIMIT_AS.
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        self._proc = subprocess.Popen(  # noqa: S603 - our interpreter and our script
            [sys.executable, "-I", str(script), str(memory)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self._name, self._hang, self._lost, self._max_line = name, hang, lost, max_line
        self._pending = bytearray()

    def send(self, request: dict[str, Any]) -> None:
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(json.dumps(request).encode() + b"\n")
            self._proc.stdin.flush()
        except OSError as e:
            raise self._failure() from e

    def next_event(self, deadline: float) -> dict[str, Any]:
        """The reader's next line, read by ``deadline`` (monotonic), as a JSON object."""
        assert self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._pending:
            wait = max(0.0, deadline - time.monotonic())
            if not select.select([fd], [], [], wait)[0]:
                raise ReaderFailed(
                    f"{self._name} did not finish within the time budget ({self._hang}); "
                    f"{self._lost}",
                    rules.LIMIT_EXCEEDED,
                )
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise self._failure()
            self._pending += chunk
            if len(self._pending) > self._max_line:
                raise ReaderFailed(f"{self._name} answer too large", rules.LIMIT_EXCEEDED)
        line, _, self._pending = self._pending.partition(b"\n")
        try:
            event = json.loads(line)
        except ValueError as e:
            raise ReaderFailed(f"{self._name} gave an invalid answer: {e}") from e
        if not isinstance(event, dict):
            raise ReaderFailed(f"{self._name} gave an invalid answer")
        return event

    def _failure(self) -> ReaderFailed:
        code = self._proc.wait()
        if code < 0:
            why = _LIMIT_SIGNALS.get(-code, "crashed (a parser fault)")
            rule = rules.LIMIT_EXCEEDED if -code in _LIMIT_SIGNALS else rules.UNSUPPORTED
            return ReaderFailed(f"{self._name} {why} (signal {-code}); {self._lost}", rule)
        return ReaderFailed(
            f"{self._name} crashed (exit status {code}; out of memory or a parser fault); "
            f"{self._lost}"
        )

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None:
                pipe.close()
