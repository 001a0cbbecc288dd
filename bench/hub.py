"""Benchmark the private hub (`mlgate serve`) against a plain static file server.

Builds (once, reused) a registry in bench/out/hub/ holding one published model with a 1 GiB
safetensors file, then measures in the same run:

- downloads of that file with curl from a static server (nginx when installed, else
  `python -m http.server`) and from the hub, and with the real `hf_hub_download` through the
  hub; best of N, MB/s, and the hub's peak RSS before and after (it must stay flat);
- the metadata endpoints (`/api/models/{repo}`, `.../revision/main`, HEAD of `resolve`) under
  200 concurrent connections with wrk (Debian's package): requests/s, p99 latency and errors,
  on the embedded SQLite registry and, when reachable, on PostgreSQL.

    .venv/bin/python bench/hub.py [--quick] [--runs N] [--postgres URL]

Targets (issue 18): hub throughput >= 80% of the static server's; server RSS flat; zero
errors under load. Exit status 0 even when a target fails: a report, not a gate.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine

from mlgate.registry import init_registry, open_registry

ROOT = Path(__file__).resolve().parents[1]
PY = Path(sys.executable)
OUT = ROOT / "bench" / "out" / "hub"
REPO = "bench/big"
FILE = "model.safetensors"
MIB = 1 << 20
THROUGHPUT_SHARE = 0.80
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432"


@dataclass(frozen=True)
class Setup:
    data_dir: Path
    url: str | None
    token: str
    blob: Path


def write_safetensors(path: Path, size: int) -> None:
    """One F32 tensor of ``size`` bytes (random blocks, so nothing is sparse or compressible)."""
    header = f'{{"w":{{"dtype":"F32","shape":[{size // 4}],"data_offsets":[0,{size}]}}}}'
    raw = header.encode().ljust((len(header) + 7) // 8 * 8)
    block = os.urandom(MIB)
    with path.open("wb") as f:
        f.write(len(raw).to_bytes(8, "little") + raw)
        for _ in range(size // MIB):
            f.write(block)


def build_registry(data_dir: Path, url: str | None, size: int) -> Setup:
    """A registry with ``bench/big`` published and a reader token (reused when present)."""
    marker = data_dir / "bench-token"
    if marker.is_file() and url is None:
        registry = open_registry(data_dir, None, "alice")
        blob = registry.blobs.path(registry.show(REPO).files[-1].digest)
        return Setup(data_dir, None, marker.read_text(), blob)
    shutil.rmtree(data_dir, ignore_errors=True)
    source = data_dir.parent / f"{data_dir.name}-source"
    source.mkdir(parents=True, exist_ok=True)
    if not (source / FILE).is_file() or (source / FILE).stat().st_size < size:
        write_safetensors(source / FILE, size)
    (source / "config.json").write_text('{"model_type": "bert"}')
    registry = init_registry(data_dir, url, admin="alice")
    registry.add_user("pat", "publisher")
    registry.add_user("rita", "reviewer")
    registry.add_user("ci", "reader")
    registry.acting_as("pat").ingest(source, name=REPO)
    registry.acting_as("rita").approve(f"{REPO}@1", "benchmark model")
    registry.acting_as("pat").publish(f"{REPO}@1")
    token = registry.tokens.create("ci", label="bench").secret
    marker.write_text(token)
    blob = registry.blobs.path(registry.show(REPO).files[-1].digest)
    return Setup(data_dir, url, token, blob)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@contextmanager
def running(cmd: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[int]:
    """Start a server, wait for its port, yield its pid, stop it."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(port)
        yield proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def hub_command(setup: Setup, port: int, workers: int = 1) -> list[str]:
    cmd = [str(PY), "-m", "mlgate", "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--data-dir", str(setup.data_dir), "--workers", str(workers), "--no-worker"]
    cmd += ["--rate-limit", "100000000", "--log-level", "warning"]  # measure, not throttle
    return cmd + (["--registry", setup.url] if setup.url else [])


# A commit id for the static server's answers (the client needs X-Repo-Commit).
STATIC_COMMIT = "0" * 40


@contextmanager
def static_server(folder: Path, port: int) -> Iterator[str]:
    """nginx (sendfile) when installed, else Python's http.server; yields its name. Files
    are under the hub's own URL layout, and nginx adds the header the Hugging Face client
    requires, so the same clients run against both servers."""
    nginx = shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
    if nginx is None:
        with running([str(PY), "-m", "http.server", str(port), "--bind", "127.0.0.1",
                      "--directory", str(folder)], port):
            yield "python -m http.server"
        return
    conf_dir = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
    conf = conf_dir / "nginx.conf"
    # Workers run as the benchmark's own user: the registry's files are owner-only.
    user = f"user {os.environ.get('USER', 'root')};" if os.geteuid() == 0 else ""
    conf.write_text(
        f"{user} daemon off; worker_processes 1; pid {conf_dir}/pid; error_log {conf_dir}/err;\n"
        f"events {{}} http {{ access_log off; sendfile on; server {{ listen 127.0.0.1:{port};"
        f" root {folder}; add_header X-Repo-Commit {STATIC_COMMIT}; }} }}\n"
    )
    with running([nginx, "-c", str(conf), "-p", str(conf_dir)], port):
        yield "nginx (sendfile)"


def rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident set of ``pid`` and its children, in MB."""
    now = peak = 0.0
    for p in [pid, *children(pid)]:
        status = Path(f"/proc/{p}/status").read_text()
        now += int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
        peak += int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
    return now, peak


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids = (task / "children").read_text().split()
        found += [int(k) for k in kids]
    return found + [g for c in found for g in children(c)]


def time_curl(url: str, token: str | None, runs: int) -> float:
    """Best wall time of ``runs`` curl downloads to /dev/null (after one warm-up)."""
    cmd = ["curl", "-sSfL", "-o", "/dev/null", url]
    if token:
        cmd[1:1] = ["-H", f"Authorization: Bearer {token}"]
    best = float("inf")
    for i in range(runs + 1):
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        if i:
            best = min(best, time.perf_counter() - start)
    return best


HF_DOWNLOAD = """
import sys, time
from huggingface_hub import hf_hub_download
start = time.perf_counter()
hf_hub_download(sys.argv[1], sys.argv[2], cache_dir=sys.argv[3], token=sys.argv[4])
print(time.perf_counter() - start)
"""


def time_hf(endpoint: str, token: str, runs: int) -> float:
    """Best wall time of ``hf_hub_download`` into a fresh cache (after one warm-up)."""
    best = float("inf")
    for i in range(runs + 1):
        cache = Path(tempfile.mkdtemp(prefix="bench-hf-"))
        env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HUB_DISABLE_TELEMETRY": "1",
               "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(cache)}
        done = subprocess.run([str(PY), "-c", HF_DOWNLOAD, REPO, FILE, str(cache), token],
                              env=env, capture_output=True, text=True, check=True)
        if i:
            best = min(best, float(done.stdout.strip().splitlines()[-1]))
        shutil.rmtree(cache, ignore_errors=True)
    return best


def downloads(setup: Setup, runs: int) -> None:
    size = setup.blob.stat().st_size
    static_root = Path(tempfile.mkdtemp(prefix="bench-static-"))
    path = f"{REPO}/resolve/main/{FILE}"
    (static_root / path).parent.mkdir(parents=True)
    os.link(setup.blob, static_root / path)
    sport, hport = free_port(), free_port()
    with static_server(static_root, sport) as name:
        static = time_curl(f"http://127.0.0.1:{sport}/{path}", None, runs)
        hf_static = None
        if "nginx" in name:  # http.server cannot send the header the client requires
            hf_static = time_hf(f"http://127.0.0.1:{sport}", setup.token, runs)
    with running(hub_command(setup, hport), hport) as pid:
        before = rss_mb(pid)
        hub = time_curl(f"http://127.0.0.1:{hport}/{path}", setup.token, runs)
        hf = time_hf(f"http://127.0.0.1:{hport}", setup.token, runs)
        after = rss_mb(pid)
    shutil.rmtree(static_root, ignore_errors=True)
    mb = size / 1e6
    print(f"\n## 1 file of {size / MIB:.0f} MiB, best of {runs}")
    print("| client -> server | seconds | MB/s | vs the same client from static |")
    print("|---|---|---|---|")
    print(f"| curl -> {name} | {static:.2f} | {mb / static:.0f} | |")
    print(f"| curl -> mlgate hub | {hub:.2f} | {mb / hub:.0f} | {static / hub:.2f} |")
    if hf_static is not None:
        print(f"| hf_hub_download -> {name} | {hf_static:.2f} | {mb / hf_static:.0f} | |")
    ratio = f"{hf_static / hf:.2f}" if hf_static is not None else "n/a"
    print(f"| hf_hub_download -> mlgate hub | {hf:.2f} | {mb / hf:.0f} | {ratio} |")
    print(f"hub RSS before / after: {before[0]:.0f} / {after[0]:.0f} MB "
          f"(peak {after[1]:.0f} MB)")
    shares = {"curl": static / hub, "hf_hub_download": hf_static / hf if hf_static else None}
    for client, share in shares.items():
        if share is not None:
            verdict = "met" if share >= THROUGHPUT_SHARE else "NOT met"
            print(f"target hub >= {THROUGHPUT_SHARE:.0%} of static ({client}): {verdict}")


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def load(setup: Setup, label: str, seconds: int) -> None:
    # The two metadata documents, and a small file: each GET of it is a recorded download.
    paths = [f"/api/models/{REPO}", f"/api/models/{REPO}/revision/main"]
    paths.append(f"/{REPO}/resolve/main/config.json")
    print(f"\n## metadata and small downloads under 200 connections, {seconds} s each, "
          f"registry: {label}")
    if not wrk_available():
        print("wrk is not installed (Debian package wrk; `make bench` installs it): skipped")
        return
    print("| uvicorn workers | request | requests/s | p99 ms | errors |")
    print("|---|---|---|---|---|")
    for workers in (1, 2):
        port = free_port()
        with running(hub_command(setup, port, workers), port):
            for path in paths:
                rps, p99, errors = wrk(f"http://127.0.0.1:{port}{path}", setup.token, seconds)
                print(f"| {workers} | GET {path} | {rps:.0f} | {p99:.1f} | {errors} |")


def wrk(url: str, token: str, seconds: int) -> tuple[float, float, int]:
    done = subprocess.run(
        ["wrk", "-t2", "-c200", f"-d{seconds}s", "--latency", "--timeout", "10s",
         "-H", f"Authorization: Bearer {token}", url],
        capture_output=True, text=True, check=True,
    )
    out = done.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, p99, errors + (int(non2xx.group(1)) if non2xx else 0)


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def postgres_database(server: str) -> str | None:
    try:
        engine = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
        name = f"mlgate_bench_{uuid.uuid4().hex[:8]}"
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        return f"{server}/{name}"
    except Exception as e:  # a report: say why PostgreSQL was left out
        print(f"PostgreSQL not reachable at {server}: {e}")
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 MiB file, 3 s load runs")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", default=os.environ.get("MLGATE_TEST_POSTGRES", PG_DEFAULT))
    args = parser.parse_args()
    size = (64 if args.quick else 1024) * MIB
    seconds = 3 if args.quick else 10
    print(f"# mlgate hub benchmark ({os.cpu_count()} cores)")
    setup = build_registry(OUT / ("quick" if args.quick else "full"), None, size)
    downloads(setup, args.runs)
    load(setup, "SQLite", seconds)
    url = postgres_database(args.postgres)
    if url:
        small = build_registry(OUT / "pg", url, 4 * MIB)
        load(small, "PostgreSQL", seconds)


if __name__ == "__main__":
    main()
