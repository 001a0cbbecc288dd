"""Throughput and bounds of mlgate's pickle emulator on honest and hostile pickles.

Builds (and reuses, in ``bench/out/pickle_vm/``) three inputs:

- ``dataset``: an honest 89.6 MB protocol-4 pickle of a list of dicts of short strings;
- ``memo-flood``: 10 M MEMOIZE of one value (10 MB, one byte per memo entry);
- ``gzip-flood``: a gzip file of 30 M one-byte opcodes (``N0`` pairs, 60 KB compressed).

Each is measured in its own child process, in the same run:

- ``mlgate vm``: the emulator alone (``PickleVM`` with the default limits) over the file,
  or over the decompressing stream for gzip: opcodes, seconds, opcodes/s;
- ``genops``: CPython's ``pickletools.genops`` walk over the same bytes, the reference for
  the cost of merely decoding every opcode in Python;
- ``picklescan``: when it is importable (it is not a dependency of mlgate);
- ``mlgate scan``: the whole CLI (wall, CPU seconds, peak RSS, exit code, rule ids).

    .venv/bin/python bench/pickle_vm.py [--quick] [--out DIR]

Targets (issue 10): every hostile input ends in < 10 s and < 256 MB RSS with a finding; the
honest dataset is reported clean (no MLG301) and fully analysed.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import pickle
import random
import string
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOSTILE_SECONDS = 10.0
HOSTILE_MB = 256.0

# Run in a child: emulate (or walk) one input and print what it cost, as JSON.
_CHILD = r"""
import io, json, pickletools, re, sys, time, types
engine, path = sys.argv[1], sys.argv[2]
# A gzip input is decompressed on the fly by mlgate's bounded stream, of unknown size as in a
# scan (genops gets it buffered); a plain file is read from memory by both engines.
if path.endswith(".gz"):
    from mlgate.scan.limits import Limits
    from mlgate.scan.streams import decompressing
    d = Limits()
    stream = decompressing(open(path, "rb"), "gzip", d.max_decompressed_bytes,
                           d.max_compression_ratio, d.ratio_floor_bytes)
    if engine != "vm":  # genops asks tell() for positions when it exists: not on a stream
        stream = types.SimpleNamespace(read=stream.read, readline=stream.readline)
    size = None
else:
    with open(path, "rb") as f:
        stream = io.BytesIO(f.read())
    size = len(stream.getbuffer())
wall, cpu = time.perf_counter(), time.process_time()
if engine == "vm":
    from mlgate.scan.limits import Limits
    from mlgate.scan.pickle.program import VMLimits
    from mlgate.scan.pickle.vm import PickleVM
    from mlgate.scan.reader import ByteReader
    d = Limits()
    prog = PickleVM(ByteReader(stream, 0, size),
                    limits=VMLimits(d.max_opcodes, d.max_objects, d.max_inline_bytes)).run()
    failure = getattr(prog, "failure", None)  # (absent from older checkouts)
    ops, note = prog.opcodes, prog.limit or prog.error or failure or "complete"
else:
    ops, note = 0, "complete"
    try:
        for _ in pickletools.genops(stream):
            ops += 1
    except Exception as e:
        note = f"{type(e).__name__}: {e}"
# VmHWM starts afresh at exec (ru_maxrss carries the parent's peak over).
peak_kb = int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1))
print(json.dumps({"ops": ops, "seconds": time.perf_counter() - wall,
                  "cpu": time.process_time() - cpu, "rss_mb": peak_kb / 1024,
                  "note": note[:90]}))
"""


@dataclass(frozen=True)
class Run:
    """One child process: wall and CPU seconds, peak RSS, exit code and its stdout."""

    seconds: float
    cpu: float
    rss_mb: float
    code: int
    out: str


def child(cmd: list[str], src: Path) -> Run:
    env = {**os.environ, "PYTHONPATH": str(src)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    start = time.perf_counter()
    assert proc.stdout is not None
    out = proc.stdout.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Run(
        time.perf_counter() - start,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss / 1024,
        proc.returncode,
        out,
    )


def _scale(quick: bool) -> int:
    return 20 if quick else 1


def paths(folder: Path, quick: bool) -> dict[str, Path]:
    scale = _scale(quick)
    return {
        "dataset": folder / f"dataset-{scale}.pkl",
        "memo-flood": folder / f"memo-flood-{scale}.pkl",
        "gzip-flood": folder / f"gzip-flood-{scale}.pkl.gz",
    }


def build(folder: Path, quick: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    scale = _scale(quick)
    inputs = paths(folder, quick)
    if not inputs["dataset"].exists():
        inputs["dataset"].write_bytes(_dataset(89_600_000 // scale))
    if not inputs["memo-flood"].exists():
        inputs["memo-flood"].write_bytes(b"\x80\x04N" + b"\x94" * (10_000_000 // scale) + b".")
    if not inputs["gzip-flood"].exists():
        flood = b"\x80\x04" + b"N0" * (15_000_000 // scale) + b"N."
        inputs["gzip-flood"].write_bytes(gzip.compress(flood, 9))


def _dataset(target: int) -> bytes:
    """A list of dicts of short strings whose pickle has about ``target`` bytes."""
    rnd = random.Random(10)

    def word() -> str:
        return "".join(rnd.choices(string.ascii_lowercase, k=rnd.randint(3, 12)))

    def row() -> dict[str, str]:
        return {"id": word(), "name": word(), "label": word(), "text": f"{word()} {word()}"}

    sample = [row() for _ in range(10_000)]
    per_row = len(pickle.dumps(sample, protocol=4)) / len(sample)
    rows = sample + [row() for _ in range(int(target / per_row) - len(sample))]
    return pickle.dumps(rows, protocol=4)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="inputs 20x smaller")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "pickle_vm")
    parser.add_argument("--src", type=Path, default=ROOT / "src",
                        help="mlgate sources to measure (another checkout: before/after)")
    parser.add_argument("--only", help="measure this input only (dataset, memo-flood...)")
    parser.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_only:
        build(args.out, args.quick)
        return 0
    inputs = paths(args.out, args.quick)
    py = sys.executable
    engines = ["vm", "genops"]
    print(f"{'input':<11} {'engine':<11} {'opcodes':>11} {'seconds':>8} {'cpu s':>7} "
          f"{'Mops/s':>7} {'RSS MB':>7}  result")
    failed = []
    # Inputs are built in a child: the peak RSS of this process would be inherited by the
    # measured children (Linux keeps ru_maxrss across fork and exec).
    subprocess.run([py, __file__, "--build-only", "--out", str(args.out)]
                   + (["--quick"] if args.quick else []), check=True)
    for key, path in inputs.items():
        if args.only not in (None, key):
            continue
        for engine in engines:
            run = child([py, "-c", _CHILD, engine, str(path)], args.src)
            r = json.loads(run.out)
            rate = r["ops"] / r["cpu"] / 1e6 if r["cpu"] else 0.0
            name = "mlgate vm" if engine == "vm" else "genops"
            print(f"{key:<11} {name:<11} {r['ops']:>11,} {r['seconds']:>8.2f} {r['cpu']:>7.2f} "
                  f"{rate:>7.2f} {r['rss_mb']:>7.0f}  {r['note']}")
        if find_spec("picklescan") is not None:
            run = child([py, "-m", "picklescan", "--path", str(path)], args.src)
            print(f"{key:<11} {'picklescan':<11} {'':>11} {run.seconds:>8.2f} {run.cpu:>7.2f} "
                  f"{'':>7} {run.rss_mb:>7.0f}  exit {run.code}")
        run = child([py, "-m", "mlgate", "scan", "--format", "json", str(path)], args.src)
        rules = sorted({f["rule_id"] for f in json.loads(run.out)["findings"]})
        print(f"{key:<11} {'mlgate scan':<11} {'':>11} {run.seconds:>8.2f} {run.cpu:>7.2f} "
              f"{'':>7} {run.rss_mb:>7.0f}  exit {run.code} {','.join(rules) or 'clean'}")
        if key == "dataset" and "MLG301" in rules:
            failed.append(f"{key}: honest file reported MLG301")
        if key != "dataset" and not args.quick and (
            "MLG301" not in rules or run.cpu > HOSTILE_SECONDS or run.rss_mb > HOSTILE_MB
        ):
            failed.append(f"{key}: needs MLG301 within {HOSTILE_SECONDS} s, {HOSTILE_MB} MB")
    print("targets:", "; ".join(failed) if failed else "met (CPU seconds, peak RSS)",
          "(hostile targets need full sizes)" if args.quick else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
