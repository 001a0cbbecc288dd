"""Benchmark mlgate against other pickle scanners, with I/O references, on large inputs.

Builds the inputs (reused across runs), installs picklescan, modelscan and fickling into
virtualenvs of their own, times every tool on every input in a separate process (one
warm-up run, then best wall time of N) and checks mlgate's performance targets.

    .venv/bin/python bench/run.py [--quick] [--out DIR] [--runs N]

The report goes to stdout, progress to stderr. The exit status is 0 even when a target
fails: this is a report, not a gate.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from inputs import FULL, QUICK, Input, Sizes, build_inputs, describe
from measure import Sample, best_of, has_gnu_time
from tools import ROOT, TOOLS, Tool, install, version

LARGE_CKPT_GROWTH = 1.5  # 1 GB checkpoint scan time / 10 MB checkpoint scan time
NDARRAY_PEAK_MB = 100.0
DISK_MARGIN = 1 << 30


@dataclass(frozen=True)
class NotRun:
    """A tool that was not measured on an input, or did not complete a scan, and why."""

    reason: str
    exit_code: int | None = None


Result = Sample | NotRun
Results = dict[str, dict[str, Result]]  # input key -> tool name -> result


@dataclass(frozen=True)
class Check:
    verdict: str  # PASS, FAIL or n/a
    label: str
    detail: str


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    load = os.getloadavg()[0]  # before this script adds its own
    source = _source_state()
    out: Path = args.out.resolve()
    sizes = QUICK if args.quick else FULL
    folder = out / ("inputs-quick" if args.quick else "inputs")
    if not _enough_disk(folder, sizes):
        return 1
    inputs = build_inputs(folder, sizes, _log)
    ready, missing = _install(out / "venvs")
    results = _measure_all(inputs, ready, missing, out, args.runs, args.timeout)
    _report(inputs, ready, results, args, load)
    _source_note(source, _source_state())
    return 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out",
                        help="work folder for inputs, virtualenvs and scratch files")
    parser.add_argument("--quick", action="store_true",
                        help="much smaller inputs and one measured run (a smoke test)")
    parser.add_argument("--runs", type=int, default=None,
                        help="measured runs per tool and input (default 3, or 1 with --quick)")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds before one run is killed")
    args = parser.parse_args(argv)
    if args.runs is None:
        args.runs = 1 if args.quick else 3
    if args.runs < 1 or args.timeout <= 0:
        parser.error("--runs must be at least 1 and --timeout positive")
    return args


def _source_state() -> str:
    """The mlgate commit under test, with a digest of uncommitted changes under src/."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=False)
    if head.returncode != 0:
        return "unknown (not a git checkout)"
    diff = subprocess.run([*git, "diff", "HEAD", "--", "src"], capture_output=True,
                          check=False).stdout
    dirty = f" + uncommitted changes {hashlib.sha256(diff).hexdigest()[:8]}" if diff else ""
    return head.stdout.strip() + dirty


def _source_note(before: str, after: str) -> None:
    print(f"\nmlgate source: {before}")
    if after != before:
        print(f"WARNING: mlgate's source changed during the run (now {after}); "
              "its figures may mix versions")


def _log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _enough_disk(folder: Path, sizes: Sizes) -> bool:
    """Room for the inputs not built yet, plus a margin (what ``df -h`` would tell)."""
    folder.mkdir(parents=True, exist_ok=True)
    usage = shutil.disk_usage(folder)
    present = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
    needed = max(0, _input_bytes(sizes) - present) + DISK_MARGIN
    _log(f"disk at {folder}: {usage.free / 1e9:.1f} GB free of {usage.total / 1e9:.1f} GB, "
         f"about {needed / 1e9:.1f} GB needed")
    if usage.free < needed:
        _log("not enough free disk space; free some or pass --out on a larger disk")
        return False
    return True


def _input_bytes(sizes: Sizes) -> int:
    """Approximate size of all inputs: tensor and array bytes, ~64 bytes per record."""
    tensors = sizes.tensors * (sizes.big_elements + sizes.small_elements) + 4 * sizes.many_tensors
    return 4 * tensors + 8 * sizes.array_elements + 64 * sizes.records


def _install(venvs: Path) -> tuple[list[tuple[Tool, Path]], dict[str, str]]:
    ready: list[tuple[Tool, Path]] = []
    missing: dict[str, str] = {}
    for tool in TOOLS:
        found = install(tool, venvs, _log)
        if isinstance(found, Path):
            ready.append((tool, found))
        else:
            _log(f"{tool.name}: {found}; carrying on without it")
            missing[tool.name] = found
    return ready, missing


def _measure_all(inputs: dict[str, Input], ready: list[tuple[Tool, Path]],
                 missing: dict[str, str], out: Path, runs: int, timeout: float) -> Results:
    scratch = out / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    results: Results = {}
    for inp in inputs.values():
        row: dict[str, Result] = {name: NotRun(reason) for name, reason in missing.items()}
        for tool, exe in ready:
            if inp.kind in tool.unsupported:
                row[tool.name] = NotRun(tool.unsupported[inp.kind])
                continue
            _log(f"{inp.path.name}: {tool.name}")
            sample = best_of(tool.command(exe, inp.path, scratch), scratch, runs, timeout)
            row[tool.name] = _completed(sample, tool, timeout)
        results[inp.key] = row
    return results


def _completed(sample: Sample, tool: Tool, timeout: float) -> Result:
    """The sample if the scan completed (findings or not), else why it did not."""
    if sample.timed_out:
        return NotRun(f"killed after {timeout:.0f} s")
    if sample.exit_code not in tool.ok_codes:
        why = sample.last_stderr_line or "no output on stderr"
        return NotRun(f"did not complete: {why}", sample.exit_code)
    return sample


# ---------------------------------------------------------------------- report
def _report(inputs: dict[str, Input], ready: list[tuple[Tool, Path]], results: Results,
            args: argparse.Namespace, load: float) -> None:
    _header(ready, args, load)
    for inp in inputs.values():
        _table(inp, results[inp.key])
    _targets(_checks(inputs, results), args.quick)


def _header(ready: list[tuple[Tool, Path]], args: argparse.Namespace, load: float) -> None:
    method = "GNU /usr/bin/time -v" if has_gnu_time() else "os.wait4 rusage"
    print(f"mlgate benchmark ({'quick' if args.quick else 'full'} sizes)")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
          f"{_memory_gb():.0f} GB RAM, Python {platform.python_version()}, "
          f"load average {load:.2f} at start (other work on the machine skews timings)")
    print(f"method: one warm-up run, then best wall time of {args.runs}; peak RSS is the "
          f"worst of those runs, via {method}; page cache warm")
    print("versions: " + ", ".join(f"{t.name} {version(t, exe)}" for t, exe in ready))


def _memory_gb() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def _table(inp: Input, row: dict[str, Result]) -> None:
    print(f"\n== {inp.key}: {inp.title}")
    if inp.facts:
        print(f"   {describe(inp)}")
    print(f"   {'tool':<11} {'seconds':>9} {'peak MB':>9} {'vs mlgate':>10} {'exit':>5}  note")
    base = row.get("mlgate")
    for tool in TOOLS:
        print("   " + _cells(tool.name, row[tool.name], base))


def _cells(name: str, result: Result, base: Result | None) -> str:
    if isinstance(result, NotRun):
        code = "-" if result.exit_code is None else str(result.exit_code)
        return f"{name:<11} {'n/a':>9} {'n/a':>9} {'n/a':>10} {code:>5}  {result.reason}"
    ratio = f"{result.seconds / base.seconds:.2f}x" if isinstance(base, Sample) else "n/a"
    return (f"{name:<11} {result.seconds:>9.3f} {result.peak_mb:>9.1f} {ratio:>10} "
            f"{result.exit_code:>5}")


def _checks(inputs: dict[str, Input], results: Results) -> list[Check]:
    return [
        _growth_check(inputs, results),
        _speed_check(inputs["opcodes"], results["opcodes"]),
        _speed_check(inputs["many-tensors"], results["many-tensors"]),
        _memory_check(inputs["ndarray"], results["ndarray"]),
    ]


def _growth_check(inputs: dict[str, Input], results: Results) -> Check:
    large, small = results["ckpt-large"].get("mlgate"), results["ckpt-small"].get("mlgate")
    mb_large, mb_small = inputs["ckpt-large"].size / 1e6, inputs["ckpt-small"].size / 1e6
    label = (f"mlgate on the {mb_large:,.0f} MB checkpoint within {LARGE_CKPT_GROWTH}x of the "
             f"{mb_small:,.1f} MB one")
    if not (isinstance(large, Sample) and isinstance(small, Sample)):
        return Check("n/a", label, "mlgate did not complete on both checkpoints")
    ratio = large.seconds / small.seconds
    verdict = "PASS" if ratio <= LARGE_CKPT_GROWTH else "FAIL"
    return Check(verdict, label, f"{large.seconds:.3f} s vs {small.seconds:.3f} s = {ratio:.2f}x")


def _speed_check(inp: Input, row: dict[str, Result]) -> Check:
    ours, theirs = row.get("mlgate"), row.get("picklescan")
    label = f"mlgate at least as fast as picklescan on {inp.key} ({inp.path.name})"
    if not isinstance(ours, Sample):
        return Check("n/a", label, "mlgate did not complete")
    if not isinstance(theirs, Sample):
        return Check("n/a", label, "no picklescan measurement")
    verdict = "PASS" if ours.seconds <= theirs.seconds else "FAIL"
    return Check(verdict, label, f"mlgate {ours.seconds:.3f} s, picklescan {theirs.seconds:.3f} s "
                 f"(mlgate/picklescan = {ours.seconds / theirs.seconds:.2f}x)")


def _memory_check(inp: Input, row: dict[str, Result]) -> Check:
    ours = row.get("mlgate")
    label = (f"mlgate peak memory under {NDARRAY_PEAK_MB:.0f} MB on the {inp.size / 1e6:,.0f} MB "
             "array pickle")
    others = ", ".join(f"{name} {_peak(row.get(name))}" for name in ("picklescan", "fickling"))
    if not isinstance(ours, Sample):
        return Check("n/a", label, f"mlgate did not complete; {others}")
    verdict = "PASS" if ours.peak_mb < NDARRAY_PEAK_MB else "FAIL"
    return Check(verdict, label, f"mlgate {ours.peak_mb:.1f} MB; {others}")


def _peak(result: Result | None) -> str:
    return f"{result.peak_mb:.1f} MB" if isinstance(result, Sample) else "n/a"


def _targets(checks: list[Check], quick: bool) -> None:
    print("\n== targets" + (" (quick sizes: indicative only)" if quick else ""))
    for check in checks:
        print(f"   {check.verdict:<4}  {check.label}: {check.detail}")
    counts = {v: sum(c.verdict == v for c in checks) for v in ("PASS", "FAIL", "n/a")}
    print("   " + ", ".join(f"{n} {v}" for v, n in counts.items()))


if __name__ == "__main__":
    sys.exit(main())
