"""Benchmark the retro-hunt: versions rescanned per second per worker, with 1 and 2
`mlgate worker` processes on the embedded queue, against the same rescans done in-process
one after the other (measured in the same run).

Builds a scratch registry in bench/out/rescan/ with N small models (tiny safetensors
folders and tiny pickle checkpoints, alternating), scanned once at ingest. Then, for each
configuration, the rescan jobs are submitted (`registry.rescans.submit_all`, what
`mlgate rescan --all` does) to already running workers, and the wall time until every job is
done is measured. Between configurations the bench deletes the finished rescan jobs of its
scratch registry so that the same versions are rescanned again.

    python bench/rescan.py [--quick] [--models N]

Workers start before the clock (their start-up is not counted) and are stopped after.
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402

from mlgate.hub.jobs import enqueue_submitted, open_queue, wait_for  # noqa: E402
from mlgate.registry import init_registry  # noqa: E402
from mlgate.registry import schema as t  # noqa: E402
from mlgate.registry.policy import RegistryPolicy  # noqa: E402

OUT = ROOT / "bench" / "out" / "rescan"
WORKER = "bench-worker"


def build(n: int) -> object:
    """A fresh registry with ``n`` scanned versions."""
    shutil.rmtree(OUT, ignore_errors=True)
    registry = init_registry(
        OUT / "registry", admin="bench", policy=RegistryPolicy(auto_reject_at=None)
    )
    registry.add_user(WORKER, "publisher")
    for i in range(n):
        folder = OUT / "models" / f"m{i}"
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(f'{{"model_type": "bert", "seed": {i}}}')
        if i % 2:
            with (folder / "pytorch_model.bin").open("wb") as f:
                pickle.dump({"w": list(range(100 + i))}, f, protocol=4)
        else:
            save_file({"w": np.arange(64, dtype=np.float32) + i}, str(folder / "model.safetensors"))
        registry.ingest(folder, name=f"bench/m{i}")
    return registry


def in_process(registry: object, refs: list[str]) -> float:
    """Seconds to rescan every version sequentially in this process."""
    start = time.perf_counter()
    for ref in refs:
        registry.rescans.rescan(ref)  # type: ignore[attr-defined]
    return time.perf_counter() - start


def with_workers(registry: object, count: int) -> float:
    """Seconds for ``count`` workers to rescan every version (start-up excluded)."""
    with registry.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(t.jobs.delete().where(t.jobs.c.kind == "rescan"))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    logs = [OUT / f"worker-{count}-{i}.log" for i in range(count)]
    procs = []
    for log in logs:
        with log.open("w") as out:
            args = [sys.executable, "-m", "mlgate", "worker", "--data-dir", str(OUT / "registry")]
            procs.append(subprocess.Popen([*args, "--as", WORKER], stdout=out, stderr=out, env=env))
    try:
        while not all("consumer started" in log.read_text() for log in logs):
            time.sleep(0.1)
        start = time.perf_counter()
        submitted = registry.rescans.submit_all()  # type: ignore[attr-defined]
        enqueue_submitted(open_queue(OUT / "registry"), submitted)
        jobs = wait_for(registry, [s.job.key for s in submitted], timeout=3600, poll=0.05)  # type: ignore[arg-type]
        elapsed = time.perf_counter() - start
        assert all(j.result is not None for j in jobs), [j.error for j in jobs if j.error]
        return elapsed
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 models (a smoke test)")
    parser.add_argument("--models", type=int, default=60)
    options = parser.parse_args()
    n = 10 if options.quick else options.models
    print(f"building {n} models in {OUT} ...", flush=True)
    registry = build(n)
    refs = [f"bench/m{i}@1" for i in range(n)]
    rows = [("in-process, sequential (reference)", 1, in_process(registry, refs))]
    rows += [(f"mlgate worker x{w}, embedded queue", w, with_workers(registry, w)) for w in (1, 2)]
    print(f"\n{'configuration':<38} {'time s':>8} {'versions/s':>11} {'per worker':>11}")
    for label, count, seconds in rows:
        rate = n / seconds
        print(f"{label:<38} {seconds:8.2f} {rate:11.1f} {rate / count:11.1f}")
    print(f"\n{n} versions, {os.cpu_count()} CPUs; each worker runs one job at a time")


if __name__ == "__main__":
    main()
