"""Benchmark `mlgate convert` against a plain copy and the torch.load + save_file route.

Builds (once, reused) a `torch.save` checkpoint of more than 1 GB in bench/out/convert/, then
times in the same run, each in its own process (one warm-up run, then best of N; peak RSS
from measure.py):

- `cp --reflink=never` of the checkpoint: the same bytes copied, nothing interpreted;
- `mlgate convert CKPT OUT.safetensors` (no torch imported, storage records copied as-is);
- `torch.load(weights_only=True)` + `safetensors.torch.save_file`: the usual route.

    .venv/bin/python bench/convert.py [--quick] [--runs N]

Targets (issue 6): mlgate within 1.5x of the plain copy, faster than the torch route, peak
RSS under 10% of the checkpoint size. Exit status 0 even when a target fails.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from measure import Sample, best_of, has_gnu_time

ROOT = Path(__file__).resolve().parents[1]
PY = ROOT / ".venv" / "bin" / "python"
MLGATE = ROOT / ".venv" / "bin" / "mlgate"
MIB = 1 << 20
COPY_RATIO = 1.5
MEMORY_SHARE = 0.10

BUILD = """
import sys, torch
rows = int(sys.argv[2])
gen = torch.Generator().manual_seed(0)
sd = {}
for i in range(8):
    sd[f"layers.{i}.weight"] = torch.randn(rows, 4096, generator=gen)
    sd[f"layers.{i}.bias"] = torch.randn(4096, generator=gen).to(torch.bfloat16)
sd["lm_head.weight"] = sd["layers.0.weight"]  # tied
torch.save(sd, sys.argv[1])
"""
TORCH_ROUTE = """
import sys, torch
from safetensors.torch import save_file
sd = torch.load(sys.argv[1], weights_only=True)
sd.pop("lm_head.weight")  # save_file refuses shared tensors: drop the tied name, as HF does
save_file(sd, sys.argv[2], metadata={"format": "pt"})
"""


def build(path: Path, rows: int) -> None:
    stamp = path.with_suffix(".json")
    spec = json.dumps({"rows": rows, "version": 1})
    if path.is_file() and stamp.is_file() and stamp.read_text(encoding="utf-8") == spec:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"building {path} ...", file=sys.stderr)
    subprocess.run([str(PY), "-c", BUILD, str(path), str(rows)], check=True)
    stamp.write_text(spec, encoding="utf-8")


def fresh(dst: Path, cmd: str) -> list[str]:
    """Remove the previous output first, inside the measured process, for every contender."""
    return ["sh", "-c", f'rm -f "{dst}" && {cmd}']


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a 64 MB checkpoint, one run")
    parser.add_argument("--runs", type=int, default=None)
    args = parser.parse_args()
    runs = args.runs or (1 if args.quick else 3)
    work = ROOT / "bench" / "out" / "convert"
    src = work / ("ckpt-quick.pt" if args.quick else "ckpt.pt")
    build(src, 256 if args.quick else 8192)
    size = src.stat().st_size
    out = work / "out.safetensors"
    contenders = {
        "cp --reflink=never (same bytes)": fresh(out, f'cp --reflink=never "{src}" "{out}"'),
        "mlgate convert": fresh(out, f'"{MLGATE}" convert "{src}" "{out}"'),
        "torch.load + save_file": fresh(out, f'"{PY}" -c \'{TORCH_ROUTE}\' "{src}" "{out}"'),
    }
    results: dict[str, Sample] = {}
    for name, cmd in contenders.items():
        results[name] = best_of(cmd, work, runs, timeout=1800)
        if results[name].exit_code != 0:
            print(f"{name} failed: {results[name].last_stderr_line}", file=sys.stderr)
    report(results, size, runs)
    out.unlink(missing_ok=True)
    return 0


def report(results: dict[str, Sample], size: int, runs: int) -> None:
    rss_source = "GNU time" if has_gnu_time() else "wait4 rusage"
    print(f"checkpoint: {size / MIB:.0f} MiB; best of {runs} after a warm-up; RSS: {rss_source}")
    print(f"{'contender':<34} {'seconds':>8} {'MiB/s':>8} {'peak RSS MiB':>13}")
    for name, s in results.items():
        rate = size / MIB / s.seconds if s.seconds else 0.0
        print(f"{name:<34} {s.seconds:>8.2f} {rate:>8.0f} {s.peak_mb:>13.1f}")
    copy, ours, torch_route = results.values()
    checks = [
        (f"mlgate within {COPY_RATIO}x of the copy", ours.seconds <= COPY_RATIO * copy.seconds),
        ("mlgate faster than torch.load + save_file", ours.seconds < torch_route.seconds),
        (
            f"mlgate peak RSS < {MEMORY_SHARE:.0%} of the checkpoint",
            ours.peak_mb * MIB < MEMORY_SHARE * size,
        ),
    ]
    print(f"ratio mlgate / copy: {ours.seconds / copy.seconds:.2f}x")
    for text, ok in checks:
        print(f"[{'PASS' if ok else 'FAIL'}] {text}")


if __name__ == "__main__":
    sys.exit(main())
