"""Benchmark the dynamic test: `mlgate sandbox` against a bare load of the same checkpoint.

Measured in the same run, each in its own process (one warm-up run, then best of N):

- bare: `python -c "import torch; torch.load(MODEL, weights_only=False)"` (the reference: what
  loading costs with no isolation at all; the file is our own benign checkpoint);
- bare, ended with `os._exit` (as the sandbox's runner ends: no interpreter teardown), which
  isolates the sandbox's own overhead;
- sandbox: `mlgate sandbox MODEL --loader torch --format json` (bubblewrap, seccomp, strace,
  audit hooks, the fake network: the whole command a user runs).

Then the recording rate under a syscall-heavy payload: a pickle whose payload creates N files
in the sandbox's scratch (each an audit event and a traced openat), run through
`run_sandbox` in this process; the same loop run bare (as plain code, not unpickled) is the
reference.

    .venv/bin/python bench/sandbox.py [--quick] [--runs N]

Target (issue 13): sandbox wall time < 1.5x the bare load for a 100 MB checkpoint.
"""

from __future__ import annotations

import argparse
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from measure import best_of

ROOT = Path(__file__).resolve().parents[1]
PY = ROOT / ".venv" / "bin" / "python"
MIB = 1 << 20
TARGET_RATIO = 1.5
_BUILD = (
    "import sys, torch; n = int(sys.argv[2]) // 4 // 4;"
    " torch.save({f'layer{i}.weight': torch.randn(n) for i in range(4)}, sys.argv[1])"
)
_BARE = "import sys, torch; torch.load(sys.argv[1], map_location='cpu', weights_only=False)"
# The sandbox's runner ends with os._exit (no interpreter teardown: a payload's atexit hooks
# never run outside observation); the same exit, bare, isolates the sandbox's own overhead.
_BARE_EXIT = _BARE + "; import os; os._exit(0)"
_LOOP = (
    "import os\nfor i in range({n}):\n"
    "    os.close(os.open(f'/tmp/f{{i}}', os.O_CREAT | os.O_WRONLY))\n"
)


class _Exec:
    """A payload object: unpickling it runs ``code`` (only ever inside the sandbox)."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, (self.code,))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 MB checkpoint, one run")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = 1 if args.quick else args.runs
    size = (10 if args.quick else 100) * MIB
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        work = Path(tmp)
        overhead(work, size, runs)
        recording(work, 1_000 if args.quick else 5_000)


def overhead(work: Path, size: int, runs: int) -> None:
    model = work / "checkpoint.pt"
    subprocess.run([str(PY), "-c", _BUILD, str(model), str(size)], check=True)
    bare = best_of([str(PY), "-c", _BARE, str(model)], work, runs, 600)
    bare_exit = best_of([str(PY), "-c", _BARE_EXIT, str(model)], work, runs, 600)
    cli = [str(PY), "-m", "mlgate", "sandbox", str(model), "--loader", "torch", "--format", "json"]
    boxed = best_of(cli, work, runs, 600)
    ratio = boxed.seconds / bare.seconds
    print(f"checkpoint {model.stat().st_size / MIB:.0f} MiB (torch.save, 4 float32 tensors)")
    print(f"  {'bare torch.load (reference)':34} {bare.seconds:7.2f} s  {bare.peak_mb:7.0f} MB")
    print(
        f"  {'bare, ended with os._exit':34} {bare_exit.seconds:7.2f} s  "
        f"{bare_exit.peak_mb:7.0f} MB"
    )
    print(
        f"  {'mlgate sandbox':34} {boxed.seconds:7.2f} s  {boxed.peak_mb:7.0f} MB"
        f"  exit {boxed.exit_code}"
    )
    verdict = "met" if ratio < TARGET_RATIO and boxed.exit_code == 0 else "NOT met"
    print(
        f"  ratio {ratio:.2f}x (target < {TARGET_RATIO}x: {verdict}); "
        f"{boxed.seconds / bare_exit.seconds:.2f}x the bare load ended the same way"
    )


def recording(work: Path, count: int) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from mlgate.sandbox.service import SandboxOptions, run_sandbox  # noqa: PLC0415

    code = _LOOP.format(n=count)
    payload = work / "syscall-heavy.pkl"
    payload.write_bytes(pickle.dumps(_Exec(code)))
    started = time.perf_counter()
    run = run_sandbox(payload, SandboxOptions(loader="pickle"))
    boxed = time.perf_counter() - started
    scratch = work / "bare-scratch"
    scratch.mkdir()
    started = time.perf_counter()
    subprocess.run([str(PY), "-c", code.replace("/tmp/", f"{scratch}/")], check=True)
    bare = time.perf_counter() - started
    by_source: dict[str, int] = {}
    for event in run.events:
        by_source[event.source] = by_source.get(event.source, 0) + 1
    total = sum(by_source.values())
    print(f"syscall-heavy payload: {count} files created in scratch")
    print(f"  bare loop (reference, own process)  {bare:7.2f} s")
    print(
        f"  sandboxed load                      {boxed:7.2f} s  {total} events recorded "
        f"({', '.join(f'{k} {v}' for k, v in sorted(by_source.items()))})"
    )
    print(f"  {total / boxed:,.0f} events/s end to end; complete={run.report.complete}")


if __name__ == "__main__":
    main()
