"""Benchmark the Kubernetes admission webhook (`mlgate webhook`) under concurrent load.

Runs `mlgate webhook` in its own process over HTTPS on 127.0.0.1 (a self-signed certificate
made here with openssl, verified by the client), over a registry holding one published model
(the hub benchmark's builder, with a 4 MiB file), and sends AdmissionReviews of a Deployment that
pins that model: 100 in a row from one client (the decision time itself), then from 200
threads at once, each on its own keep-alive connection as the API server holds them
(http.client + ssl). Every review is a real decision: the registry lookup
and the audit-log append. Reports p50/p99 latency, reviews/s and errors (anything but a 200
allowing the Deployment), on the embedded SQLite registry and, when reachable, PostgreSQL.

    .venv/bin/python bench/webhook.py [--clients 200] [--requests 5] [--postgres URL]

Target (issue 12): p99 < 50 ms and zero errors. Under 200 concurrent clients the latency is
mostly queueing (200 in flight / reviews per second); the client threads also share the
machine (and Python's GIL) with the server. Exit status 0 even when a target fails: a
report, not a gate.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import ssl
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from hub import OUT, PG_DEFAULT, PY, REPO, build_registry, free_port, postgres_database, running

from mlgate.hub.commits import commit_id
from mlgate.registry import open_registry

HUB = "https://hub.bench.internal"
TARGET_P99_MS = 50.0
MIB = 1 << 20


@dataclass(frozen=True)
class Result:
    latencies: list[float]
    answered: list[bool]  # per review: a 200 allowing the Deployment
    seconds: float

    @property
    def errors(self) -> int:
        return self.answered.count(False)


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A P-256 certificate for 127.0.0.1 and its key, as PEM files in ``folder`` (openssl,
    as in docs/kubernetes.md's path without cert-manager)."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "tls.crt", folder / "tls.key"
    cmd = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    cmd += ["-nodes", "-days", "1", "-subj", "/CN=mlgate-webhook-bench"]
    cmd += ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)]
    subprocess.run(cmd, check=True, capture_output=True)
    return cert, key


def review(model: str) -> bytes:
    """An AdmissionReview of a Deployment serving ``model`` from the hub (vLLM style)."""
    container = {
        "name": "vllm",
        "image": "vllm/vllm-openai",
        "args": ["--model", model],
        "env": [{"name": "HF_ENDPOINT", "value": HUB}],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "llm", "namespace": "serving"},
        "spec": {"template": {"spec": {"containers": [container]}}},
    }
    request = {
        "uid": str(uuid.uuid4()),
        "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "namespace": "serving",
        "name": "llm",
        "operation": "CREATE",
        "userInfo": {"username": "bench"},
        "object": deployment,
        "dryRun": False,
    }
    body = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
    return json.dumps(body).encode()


def client(port: int, context: ssl.SSLContext, body: bytes, count: int, out: Result) -> None:
    """``count`` reviews on one keep-alive connection; latencies and outcomes into ``out``."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
    headers = {"Content-Type": "application/json"}
    try:
        for _ in range(count):
            start = time.perf_counter()
            try:
                conn.request("POST", "/validate", body, headers)
                response = conn.getresponse()
                answer = json.loads(response.read())
                ok = response.status == 200 and answer["response"]["allowed"] is True
            except (OSError, http.client.HTTPException, ValueError, KeyError):
                ok = False
                conn.close()
            out.latencies.append(time.perf_counter() - start)
            out.answered.append(ok)
    finally:
        conn.close()


def load(port: int, cert: Path, model: str, clients: int, requests: int) -> Result:
    """``clients`` threads at once, ``requests`` reviews each; results merged."""
    context = ssl.create_default_context(cafile=str(cert))
    body = review(model)
    results = [Result([], [], 0.0) for _ in range(clients)]
    threads = [
        threading.Thread(target=client, args=(port, context, body, requests, r)) for r in results
    ]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies = [x for r in results for x in r.latencies]
    answered = [x for r in results for x in r.answered]
    return Result(latencies, answered, time.perf_counter() - start)


def webhook_command(
    data_dir: Path, url: str | None, port: int, cert: Path, key: Path, policy: Path
) -> list[str]:
    cmd = [str(PY), "-m", "mlgate", "webhook", "--port", str(port), "--policy", str(policy)]
    cmd += ["--tls-cert", str(cert), "--tls-key", str(key), "--data-dir", str(data_dir)]
    return cmd + (["--registry", url] if url else [])


def bench(label: str, data_dir: Path, url: str | None, args: argparse.Namespace) -> None:
    """Build the registry, start the webhook, warm it up, measure, print one line."""
    build_registry(data_dir, url, 4 * MIB)
    registry = open_registry(data_dir, url, "alice")
    registry.add_user("mlgate-webhook", "reader")  # creates or updates
    model = f"hf://{REPO}@{commit_id(registry.show(REPO))}"
    registry.engine.dispose()
    cert, key = self_signed(data_dir.parent / "webhook-tls")
    policy = data_dir.parent / "webhook-policy.yaml"
    policy.write_text(f"default: {{mode: enforce, hub: {HUB}}}\n")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with running(webhook_command(data_dir, url, port, cert, key, policy), port, env):
        load(port, cert, model, 4, 5)  # warm-up: imports, connection pools
        alone = load(port, cert, model, 1, 100)
        result = load(port, cert, model, args.clients, args.requests)
    report(label, 1, alone)
    report(label, args.clients, result)


def report(label: str, clients: int, result: Result) -> None:
    ms = sorted(x * 1000 for x in result.latencies)
    p50 = statistics.median(ms)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    rate = len(ms) / result.seconds
    verdict = "ok" if p99 < TARGET_P99_MS and not result.errors else "MISSED"
    print(
        f"{label:<11} {clients} clients, {len(ms)} reviews: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
        f"{rate:.0f} reviews/s, {result.errors} errors "
        f"[target p99 < {TARGET_P99_MS:.0f} ms, 0 errors: {verdict}]"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--requests", type=int, default=5, help="reviews per client")
    parser.add_argument("--postgres", default=os.environ.get("MLGATE_TEST_POSTGRES", PG_DEFAULT))
    args = parser.parse_args()
    print(f"# mlgate webhook benchmark ({os.cpu_count()} cores)")
    bench("SQLite", OUT / "webhook-sqlite" / "registry", None, args)
    url = postgres_database(args.postgres)
    if url:
        bench("PostgreSQL", OUT / "webhook-pg" / "registry", url, args)


if __name__ == "__main__":
    main()
