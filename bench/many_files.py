"""Benchmark `mlgate scan DIR -j N` on folders of many small files: wall time of the whole
command (start-up and worker spawn included) with one process and with each job count asked
for, measured in the same run, best of ``--runs`` after a warm-up.

Folders are built in bench/out/many-files/ and reused: 1,000 and 10,000 tiny pickles (a
small state dict each) and 100 small safetensors files.

    python bench/many_files.py [--jobs 1 2] [--runs 3] [--quick]

A figure, not a timed assertion: the report of every job count is also checked to be the
same bytes as the single-process one (the promise of -j).
"""

from __future__ import annotations

import argparse
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
from measure import best_of  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402

OUT = ROOT / "bench" / "out" / "many-files"


def _pickles(folder: Path, count: int) -> None:
    for i in range(count):
        state = {"layer.weight": [float(i)] * 8, "layer.bias": [0.0] * 2}
        (folder / f"m{i:05d}.pkl").write_bytes(pickle.dumps(state, protocol=4))


def _safetensors(folder: Path, count: int) -> None:
    for i in range(count):
        tensors = {"w": np.full((64, 64), i, dtype=np.float32), "b": np.zeros(64, np.float32)}
        save_file(tensors, str(folder / f"m{i:03d}.safetensors"))


def _folder(name: str, count: int, build: Callable[[Path, int], None]) -> Path:
    folder = OUT / name
    if folder.is_dir() and len(list(folder.iterdir())) == count:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    build(folder, count)
    return folder


def _command(folder: Path, jobs: int) -> list[str]:
    return [sys.executable, "-m", "mlgate", "scan", "--format", "json", "-j", str(jobs),
            str(folder)]


def _same_report(folder: Path, jobs: int) -> bool:
    one, many = (subprocess.run(_command(folder, j), capture_output=True, check=False)
                 for j in (1, jobs))
    return (one.returncode, one.stdout) == (many.returncode, many.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="100 and 1,000 files, one run")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    cases = [
        (f"pickles-{1000 // scale}", 1000 // scale, _pickles),
        (f"pickles-{10000 // scale}", 10000 // scale, _pickles),
        ("safetensors-100", 100, _safetensors),
    ]
    runs = 1 if args.quick else args.runs
    print("| folder | " + " | ".join(f"-j {j}" for j in args.jobs) + " | same report |")
    print("|---|" + "---|" * (len(args.jobs) + 1))
    for name, count, build in cases:
        folder = _folder(name, count, build)
        times = [best_of(_command(folder, j), ROOT, runs, 600).seconds for j in args.jobs]
        same = all(_same_report(folder, j) for j in args.jobs if j != 1)
        cells = " | ".join(f"{t:.2f} s" for t in times)
        print(f"| {name} | {cells} | {'yes' if same else 'NO'} |", flush=True)


if __name__ == "__main__":
    main()
