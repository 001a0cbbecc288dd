"""Benchmark `mlgate hash` against `openssl dgst -sha256` on a model folder of several GB.

Builds a folder (reused across runs) of one file larger than 2 GB, three of 512 MiB and a few
small ones, then times in the same run, each in its own process (one warm-up run, then best
of N; peak RSS from measure.py):

- `openssl dgst -sha256` over every file, one process, single core, sequential (reference);
- `mlgate hash` SHA-256 on 2 workers, the big file in 512 MiB shards (the target);
- `mlgate hash` SHA-256 on 1 worker, no shards, and BLAKE3 on 2 workers (context);
- `mlgate hash` on a tiny folder: the baseline that shows memory stays flat;
- anything `other_contenders()` returns (hook for model-signing, added by the signing work).

    .venv/bin/python bench/hashing.py [--quick] [--out DIR] [--runs N]

Target (issue 4): SHA-256 manifest throughput on two cores >= 1.8x OpenSSL's single-core
throughput; peak RSS independent of file size. Exit status 0 even when a target fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from measure import Sample, best_of, has_gnu_time

ROOT = Path(__file__).resolve().parents[1]
PY = ROOT / ".venv" / "bin" / "python"
MODEL_SIGNING = ROOT / ".venv" / "bin" / "model_signing"
SIGN_MLGATE = "mlgate sign (OMS, sha256)"
SIGN_REFERENCE = "model_signing sign key (reference)"
MIB = 1 << 20
TARGET_RATIO = 1.8
FLAT_MARGIN_MB = 64.0  # peak RSS on GBs may exceed the tiny-folder baseline by at most this


@dataclass(frozen=True)
class Layout:
    """File sizes of the benchmark model folder."""

    big: int
    medium: int
    medium_count: int
    shard: str  # --shard-size for the big file (the medium files are not larger than it)


FULL = Layout(big=2560 * MIB, medium=512 * MIB, medium_count=3, shard="512M")
QUICK = Layout(big=160 * MIB, medium=32 * MIB, medium_count=3, shard="32M")


@dataclass(frozen=True)
class Contender:
    """One command timed over the model folder."""

    name: str
    cmd: list[str]
    workers: int


def build(folder: Path, layout: Layout) -> list[Path]:
    """Create (or reuse, when the sizes match) the model folder; returns its files."""
    want = {"model-00001-of-00001.safetensors": layout.big}
    want |= {f"shard-{i}.bin": layout.medium for i in range(layout.medium_count)}
    small = {"config.json": b'{"model_type": "llama"}\n', "tokenizer.json": b"{}" * 50_000}
    folder.mkdir(parents=True, exist_ok=True)
    block = bytearray(os.urandom(16 * MIB))
    for name, size in want.items():
        path = folder / name
        if path.is_file() and path.stat().st_size == size:
            continue
        print(f"building {path} ({size / 1e9:.2f} GB)", file=sys.stderr)
        with path.open("wb") as f:
            written = 0
            while written < size:
                # A counter in each block keeps the file from being one repeated pattern.
                block[:8] = written.to_bytes(8, "little")
                n = min(len(block), size - written)
                f.write(block[:n])
                written += n
    for name, data in small.items():
        (folder / name).write_bytes(data)
    return sorted(folder.iterdir())


def other_contenders(model: Path) -> list[Contender]:
    """Signing the same folder: mlgate's OMS signature against model-signing's own.

    model-signing runs from the project venv (a pinned test dependency). Both write the
    signature outside the folder and use the same unencrypted P-256 key.
    """
    key = model.parent / "bench-key.pem"
    if not key.exists():
        subprocess.run(
            [str(PY), "-m", "mlgate", "keygen", "--no-password", str(key)],
            check=True,
            capture_output=True,
        )
    return [
        Contender(
            SIGN_MLGATE,
            [
                str(PY),
                "-m",
                "mlgate",
                "sign",
                str(model),
                "--key",
                str(key),
                "--signature",
                str(model.parent / "mlgate.sig"),
            ],
            2,
        ),
        Contender(
            SIGN_REFERENCE,
            [
                str(MODEL_SIGNING),
                "sign",
                "key",
                str(model),
                "--private_key",
                str(key),
                "--signature",
                str(model.parent / "model-signing.sig"),
            ],
            2,
        ),
    ]


def contenders(model: Path, files: list[Path], layout: Layout) -> list[Contender]:
    mlgate = [str(PY), "-m", "mlgate", "hash", str(model)]
    return [
        Contender("openssl dgst -sha256", ["openssl", "dgst", "-sha256", *map(str, files)], 1),
        Contender(
            "mlgate hash sha256 (sharded)",
            [*mlgate, "--workers", "2", "--shard-size", layout.shard],
            2,
        ),
        Contender("mlgate hash sha256 (1 worker)", [*mlgate, "--workers", "1"], 1),
        Contender(
            "mlgate hash blake3 (sharded)",
            [*mlgate, "--algorithm", "blake3", "--workers", "2", "--shard-size", layout.shard],
            2,
        ),
        *other_contenders(model),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small folder, one run each")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--runs", type=int, default=None, help="measured runs (default 3/1)")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    layout = QUICK if args.quick else FULL
    runs = args.runs or (1 if args.quick else 3)
    load = os.getloadavg()[0]
    model = args.out.resolve() / ("hashing-quick" if args.quick else "hashing") / "model"
    needed = layout.big + layout.medium * layout.medium_count
    free = shutil.disk_usage(model.parent.parent if model.parent.parent.exists() else ROOT).free
    if not model.exists() and free < needed + (1 << 30):
        print(f"not enough disk space: need {needed / 1e9:.1f} GB", file=sys.stderr)
        return 0
    files = build(model, layout)
    total = sum(f.stat().st_size for f in files)
    tiny = model.parent / "tiny"
    tiny.mkdir(exist_ok=True)
    (tiny / "config.json").write_bytes(b"{}")

    print(f"# mlgate hashing benchmark ({'quick' if args.quick else 'full'})")
    print(f"folder: {len(files)} files, {total / 1e9:.2f} GB; largest {layout.big / 1e9:.2f} GB")
    print(f"cpus: {os.cpu_count()}, load average at start: {load:.2f}, runs: best of {runs}")
    print(f"peak RSS from: {'GNU time -v' if has_gnu_time() else 'os.wait4 rusage'}\n")
    results: list[tuple[Contender, Sample]] = []
    for c in contenders(model, files, layout):
        print(f"timing {c.name}", file=sys.stderr)
        results.append((c, best_of(c.cmd, ROOT, runs, args.timeout)))
    baseline = best_of([str(PY), "-m", "mlgate", "hash", str(tiny)], ROOT, 1, args.timeout)
    _report(results, total, baseline)
    return 0


def _rate(total: int, seconds: float) -> float:
    return total / 1e9 / seconds if seconds > 0 else 0.0


def _report(results: list[tuple[Contender, Sample]], total: int, baseline: Sample) -> None:
    """Table, then the targets. "net" subtracts mlgate's start-up (the tiny-folder run)."""
    ref = results[0][1]
    ref_rate = _rate(total, ref.seconds) if ref.exit_code == 0 else 0.0
    startup = baseline.seconds
    print(
        "| tool | workers | seconds | GB/s | x OpenSSL | net GB/s | net x OpenSSL | peak RSS MB |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for c, s in results:
        ok = s.exit_code == 0 and not s.timed_out
        rate = _rate(total, s.seconds) if ok else 0.0
        net = _rate(total, s.seconds - startup) if ok and c.name.startswith("mlgate") else rate
        print(
            f"| {c.name} | {c.workers} | {s.seconds:.2f} | {rate:.2f} | {rate / ref_rate:.2f} "
            f"| {net:.2f} | {net / ref_rate:.2f} | {s.peak_mb:.0f} |"
            if ref_rate
            else f"| {c.name} | {c.workers} | {s.seconds:.2f} | {rate:.2f} | - | - | - | - |"
        )
        if not ok:
            print(f"  {c.name}: exit {s.exit_code}, timed out {s.timed_out}: {s.last_stderr_line}")
    print(
        f"| mlgate hash, tiny folder (start-up baseline) | - | {startup:.2f} | - | - | - | - "
        f"| {baseline.peak_mb:.0f} |\n"
    )
    target = results[1][1]
    whole = _rate(total, target.seconds) / ref_rate if ref_rate else 0.0
    net = _rate(total, target.seconds - startup) / ref_rate if ref_rate else 0.0
    for label, ratio in (("end to end", whole), (f"net of {startup:.2f} s start-up", net)):
        verdict = "PASS" if target.exit_code == 0 and ratio >= TARGET_RATIO else "FAIL"
        print(
            f"{verdict}  sha256 on 2 workers, {label} = {ratio:.2f}x OpenSSL single core "
            f"(target >= {TARGET_RATIO}x)"
        )
    _signing_check(results)
    growth = max(s.peak_mb for c, s in results if c.name.startswith("mlgate")) - baseline.peak_mb
    flat = growth <= FLAT_MARGIN_MB
    print(
        f"{'PASS' if flat else 'FAIL'}  memory flat: peak RSS {growth:+.0f} MB over the tiny-"
        f"folder baseline (target <= {FLAT_MARGIN_MB:.0f} MB; 128 KiB buffer per worker)"
    )
    print(f"load average at end: {os.getloadavg()[0]:.2f} (other work on the machine skews times)")


def _signing_check(results: list[tuple[Contender, Sample]]) -> None:
    timings = {c.name: s for c, s in results}
    ours, ref = timings.get(SIGN_MLGATE), timings.get(SIGN_REFERENCE)
    if ours is None or ref is None or ours.exit_code or ref.exit_code:
        print("n/a   signing comparison: a signer did not complete")
        return
    verdict = "PASS" if ours.seconds < ref.seconds else "FAIL"
    print(
        f"{verdict}  signing the folder: mlgate {ours.seconds:.2f} s, model-signing "
        f"{ref.seconds:.2f} s ({ref.seconds / ours.seconds:.2f}x faster; target: faster)"
    )


if __name__ == "__main__":
    sys.exit(main())
