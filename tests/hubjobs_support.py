"""Real ``mlgate worker`` processes for the job tests (started, SIGKILLed, stopped), and
polling helpers. Leases are short (2 s) so that a killed worker's job comes back fast."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hub_support import registry_url_of

SRC = Path(__file__).resolve().parents[1] / "src"
REDIS = "redis://127.0.0.1:6379/0"
WORKER = "mlgate-worker"


class Worker:
    """``mlgate worker`` in a subprocess, acting as ``mlgate-worker``, logging to a file."""

    def __init__(self, reg: Any, log: Path, *extra: str, queue: str | None = None) -> None:
        args = [sys.executable, "-m", "mlgate", "worker", "--data-dir", str(reg.data_dir)]
        args += ["--as", WORKER, "--lease", "2", "--retry-delay", "0.3", *extra]
        url = registry_url_of(reg)
        if url:
            args += ["--registry", url]
        if queue:
            args += ["--queue", queue]
        env = {**os.environ, "PYTHONPATH": str(SRC)}
        for name in ("MLGATE_QUEUE", "MLGATE_REGISTRY", "MLGATE_HOME", "MLGATE_ACTOR"):
            env.pop(name, None)
        self.log = log
        with log.open("w") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)

    def kill(self) -> None:
        """SIGKILL: no clean-up, no chance to give the job back."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Start workers with ``workers(registry, *options, queue=...)``; all stopped at the end."""
    started: list[Worker] = []

    def start(reg: Any, *extra: str, queue: str | None = None) -> Worker:
        worker = Worker(reg, tmp_path / f"worker-{len(started)}.log", *extra, queue=queue)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def redis_queue() -> Iterator[str]:
    """A queue of its own on the real Redis at 127.0.0.1:6379, deleted afterwards."""
    import redis

    name = f"mlgate-test-{uuid.uuid4().hex[:12]}"
    client = redis.Redis.from_url(REDIS)
    try:
        client.ping()
    except redis.ConnectionError as e:
        pytest.fail(f"Redis is required at {REDIS}: {e}")
    yield f"{REDIS}?name={name}"
    for key in client.scan_iter(f"*{name}*"):
        client.delete(key)
    client.close()


def wait_until(check: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)
