"""Disassembly of marshalled Python code (Keras Lambda layers) in an isolated subprocess.

``marshal.loads`` on hostile bytes can crash the interpreter or allocate without bound, so it
never runs in the scanner's own process: a child interpreter started with ``-I -S`` (no
site, no user paths, no environment variables) under memory and CPU limits reads the bytes
from stdin and prints ``dis`` output. Nothing is executed: loading a code object does not
run it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

MAX_INPUT = 16 << 20
MAX_OUTPUT = 1 << 20
TIMEOUT = 10.0
MEMORY_BYTES = 512 << 20
CPU_SECONDS = 5

# Runs in the child; kept small and stdlib-only. Exit code 3 = not a code object.
_CHILD = r"""
import sys, marshal, dis, io, types
data = sys.stdin.buffer.read()
obj = marshal.loads(data)
if not isinstance(obj, types.CodeType):
    sys.exit(3)
out = io.StringIO()
dis.dis(obj, file=out)
sys.stdout.write(out.getvalue()[:LIMIT])
""".replace("LIMIT", str(MAX_OUTPUT))


def _limit_resources() -> None:
    try:
        import resource  # noqa: PLC0415  (POSIX only)
    except ImportError:
        return
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _preexec() -> Callable[[], None] | None:
    return _limit_resources if sys.platform != "win32" else None


def disassemble(code: bytes) -> str | None:
    """The ``dis`` listing of marshalled code, or None when it cannot be decoded safely.

    None covers every failure: bytes from another Python version, corrupt data, a value
    that is not a code object, a crash, a time-out or a resource limit.
    """
    if not code or len(code) > MAX_INPUT:
        return None
    try:
        done = subprocess.run(  # noqa: S603  (fixed argv, input on stdin)
            [sys.executable, "-I", "-S", "-c", _CHILD],
            input=code,
            capture_output=True,
            timeout=TIMEOUT,
            env={},
            preexec_fn=_preexec(),  # rlimits only, no locks taken
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout[:MAX_OUTPUT].decode("utf-8", "replace")
