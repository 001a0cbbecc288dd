"""Benchmark the web console's inventory page over a 10,000-model registry.

Builds (once, reused) a registry in bench/out/console/ whose 10,000 models each have one
version in a mix of states, risks, sources, formats and owners, bulk-inserted through the
registry's tables (ingesting 10,000 real models would take an hour and measure the scanner).
Then runs `mlgate serve`, logs in to the console with a reader token and times, in the same
run over one keep-alive connection:

- the inventory page: first page, a filtered page, a sorted deep page, a name search;
- the lineage page: the versions a base model affects (100 directly, a few hundred more
  through registered models built on those), with aliases and downloads;
- references: the console's static CSS (the server's floor) and the management API's
  `GET /models` (every model, as JSON: the path the console must beat).

Figures are per request on 127.0.0.1 (client-side wall time, so they include the loopback
round trip): p50 and p95 of N requests after one warm-up. Target (issue 17): the inventory
page < 300 ms. Exit status 0 even when the target fails: a report, not a gate.

    .venv/bin/python bench/console.py [--models N] [--runs N]
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import statistics
import time
from pathlib import Path
from urllib.parse import urlencode

from hub import Setup, free_port, hub_command, running

from mlgate.registry import init_registry, open_registry
from mlgate.registry import schema as t
from mlgate.registry.database import write_transaction

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "console"
TARGET_MS = 300.0
STATES = ("quarantined", "scanned", "approved", "rejected", "published", "deprecated", "revoked")
RISKS = ("unscanned", "none", "low", "medium", "high", "critical")
FORMATS = ('["safetensors"]', '["pickle"]', '["safetensors", "onnx"]', '["pytorch"]')


def build(data_dir: Path, count: int) -> str:
    """A registry of ``count`` models and a reader token (reused when the count matches)."""
    marker = data_dir / f"bench-token-lineage-{count}"
    if marker.is_file():
        return marker.read_text()
    shutil.rmtree(data_dir, ignore_errors=True)
    registry = init_registry(data_dir, admin="alice")
    registry.add_user("rob", "reader")
    at = "2026-01-01T00:00:00.000000+00:00"
    models, versions, history, lineage, aliases, pulls = [], [], [], [], [], []
    for i in range(1, count + 1):
        owner = f"team-{i % 17}"
        models.append(
            {"id": i, "name": f"org{i % 50}/model-{i:05d}", "owner": owner, "created_at": at}
        )
        versions.append(
            {
                "id": i,
                "model_id": i,
                "number": 1,
                "state": STATES[i % len(STATES)],
                "source_kind": "hf" if i % 3 else "local",
                "source_uri": f"hf://org{i % 50}/model-{i:05d}",
                "repo_id": None,
                "revision": None,
                "requested_revision": None,
                "content_digest": f"{i:064x}",
                "size": i * 1000,
                "file_count": 3,
                "formats": FORMATS[i % len(FORMATS)],
                "license": "apache-2.0",
                "owner": owner,
                "ingested_at": at,
                "ingested_by": "pat",
                "risk": RISKS[i % len(RISKS)],
            }
        )
        # Lineage: every model on one of 100 upstream bases and 20 datasets; one in ten is
        # also built on an earlier registered model (so incidents spread transitively).
        lineage.append(_fact(i, "base_model", f"upstream/base-{i % 100}"))
        lineage.append(_fact(i, "dataset", f"upstream/data-{i % 20}"))
        lineage.append(_fact(i, "rule", f"MLG{100 + i % 30}"))
        if i % 10 == 0 and i > 100:
            lineage.append(_fact(i, "base_model", f"org{(i - 100) % 50}/model-{i - 100:05d}"))
        if STATES[i % len(STATES)] == "published":
            aliases.append({"model_id": i, "alias": "production", "version_id": i})
            pulls.append({"version_id": i, "path": "model.safetensors", "actor": "rob", "at": at})
        history.append(
            {
                "version_id": i,
                "from_state": None,
                "to_state": "quarantined",
                "actor": "pat",
                "reason": "ingested",
                "at": at,
            }
        )
        history.append(
            {
                "version_id": i,
                "from_state": "quarantined",
                "to_state": "scanned",
                "actor": "pat",
                "reason": "static scan",
                "at": at,
            }
        )
    with write_transaction(registry.engine) as conn:
        conn.execute(t.models.insert(), models)
        conn.execute(t.versions.insert(), versions)
        conn.execute(t.state_history.insert(), history)
        conn.execute(t.lineage.insert(), lineage)
        conn.execute(t.aliases.insert(), aliases)
        conn.execute(t.downloads.insert(), pulls)
    token = registry.tokens.create("rob", label="bench").secret
    marker.write_text(token)
    registry.engine.dispose()
    return token


def _fact(version_id: int, kind: str, value: str) -> dict[str, object]:
    return {"version_id": version_id, "kind": kind, "value": value, "origin": "card"}


class Client:
    """One keep-alive connection with the console's session cookie."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.headers: dict[str, str] = {}
        self.server_ms = float("nan")  # the last response's Server-Timing

    def get(self, path: str) -> tuple[int, bytes]:
        self.conn.request("GET", path, headers=self.headers)
        response = self.conn.getresponse()
        timing = re.search(r"dur=([0-9.]+)", response.headers.get("server-timing", ""))
        self.server_ms = float(timing.group(1)) if timing else float("nan")
        return response.status, response.read()

    def login(self, token: str) -> None:
        self.conn.request("GET", "/console/login")
        response = self.conn.getresponse()
        page = response.read().decode()
        cookie = response.headers["set-cookie"].split(";")[0]
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf is not None
        body = urlencode({"csrf": csrf.group(1), "token": token})
        headers = {"cookie": cookie, "content-type": "application/x-www-form-urlencoded"}
        self.conn.request("POST", "/console/login", body=body, headers=headers)
        response = self.conn.getresponse()
        response.read()
        assert response.status == 303, response.status
        self.headers = {"cookie": response.headers["set-cookie"].split(";")[0]}


def timed(client: Client, path: str, runs: int) -> tuple[list[float], list[float], int]:
    """Wall and server (Server-Timing) ms of ``runs`` requests after one warm-up, and the
    body size."""
    status, body = client.get(path)
    assert status == 200, status
    wall, server = [], []
    for _ in range(runs):
        start = time.perf_counter()
        client.get(path)
        wall.append((time.perf_counter() - start) * 1000)
        server.append(client.server_ms)
    return wall, server, len(body)


def p50_p95(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    data_dir = OUT / "registry"
    token = build(data_dir, args.models)
    count = len(open_registry(data_dir, None, "alice").models())
    print(f"registry: {count} models in {data_dir}")
    port = free_port()
    with running(hub_command(Setup(data_dir, None, token, data_dir), port), port):
        client = Client(port)
        client.login(token)
        pages = {
            "inventory, page 1": "/console/",
            "inventory, state=published": "/console/?state=published",
            "inventory, by risk desc, page 100": "/console/?sort=risk&desc=1&page=100",
            "inventory, search 'model-0999'": "/console/?search=model-0999",
            "lineage, base model (transitive)": "/console/lineage?kind=base_model"
            "&value=upstream/base-7",
            "lineage, rule (334 versions)": "/console/lineage?kind=rule&value=MLG107",
            "reference: static CSS": "/console/static/console.css",
        }
        print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        print(f"{'request':<36} {'server p50/p95 ms':>18} {'wall p50/p95 ms':>16} {'bytes':>9}")
        worst = 0.0
        for label, path in pages.items():
            wall, server, size = timed(client, path, args.runs)
            if label.startswith("inventory"):
                worst = max(worst, p50_p95(server)[1])
            print(f"{label:<36} {_pair(server):>18} {_pair(wall):>16} {size:9d}")
        api = Client(port)
        api.headers = {"authorization": f"Bearer {token}"}
        wall, _, size = timed(api, "/api/mlgate/v1/models", max(3, args.runs // 10))
        print(f"{'reference: API GET /models (all)':<36} {'-':>18} {_pair(wall):>16} {size:9d}")
    verdict = "PASS" if worst < TARGET_MS else "FAIL"
    print(f"target: inventory server p95 < {TARGET_MS:.0f} ms: {verdict} (worst {worst:.1f} ms)")


def _pair(samples: list[float]) -> str:
    p50, p95 = p50_p95(samples)
    return f"{p50:.1f} / {p95:.1f}"


if __name__ == "__main__":
    main()
