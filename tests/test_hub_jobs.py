"""Background jobs with real ``mlgate worker`` processes, the embedded (SQLite) queue and the
real Redis, on SQLite and PostgreSQL registries: run once per key, retry with backoff, give up
after max attempts, survive a SIGKILLed worker; ``rescan --all`` reports changed verdicts and
withdraws a served version that now fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hubjobs_support import WORKER, redis_queue, wait_until, workers  # noqa: F401
from hubserver import HubServer
from registry_models import release, write_benign, write_malicious
from registry_support import as_user
from sqlalchemy import update

from mlgate.hub.jobs import JsonSerializer, open_queue, submit
from mlgate.hub.pullthrough import request
from mlgate.hub.settings import HubSettings
from mlgate.registry import schema as t
from mlgate.registry.jobstate import JobState
from mlgate.registry.lifecycle import State
from mlgate.registry.policy import RegistryPolicy
from mlgate.registry.rescan import rules_version
from mlgate.registry.upstream import fetch_key


@pytest.fixture
def reg(registry):  # type: ignore[no-untyped-def]
    """The registry with a worker identity (publisher), as an admin would set it up."""
    registry.add_user(WORKER, "publisher")
    return registry


def hub_files(folder: Path) -> dict[str, bytes | tuple[bytes, str]]:
    return {
        p.name: (p.read_bytes(), "lfs") if p.suffix == ".safetensors" else p.read_bytes()
        for p in folder.iterdir()
    }


def pull(reg, hub: HubServer, tmp_path: Path, repo_id: str, queue_url: str | None = None):  # type: ignore[no-untyped-def]
    """``rob`` asks for ``repo_id`` (a benign model on ``hub``) through pull-through: the
    fetch job's key, the hub settings and the queue (embedded, or at ``queue_url``)."""
    hub.add_repo(repo_id, hub_files(write_benign(tmp_path / repo_id)))
    settings = HubSettings(reg.data_dir, upstream=hub.url, queue_url=queue_url)
    queue = open_queue(reg.data_dir, queue_url)
    pulled = request(as_user(reg, "rob"), settings, queue, repo_id, "main")
    return fetch_key(repo_id, pulled.commit), settings, queue


def attempt_starts(log: str) -> list[float]:
    """Seconds (of the day) at which the worker log says each attempt started."""
    times = []
    for line in log.splitlines():
        if " running fetch:" in line:
            clock = line.split()[1]  # HH:MM:SS,mmm
            h, m, rest = clock.split(":")
            times.append(int(h) * 3600 + int(m) * 60 + float(rest.replace(",", ".")))
    return times


def job_state(reg, key: str) -> JobState:  # type: ignore[no-untyped-def]
    return reg.jobs.get(key).state


def test_a_job_submitted_twice_runs_once(reg, tmp_path: Path, workers) -> None:  # noqa: F811
    pat = as_user(reg, "pat")
    version = pat.ingest(write_benign(tmp_path / "m"), name="org/m", scan=False)
    queue = open_queue(reg.data_dir)
    first = submit(pat, queue, "scan:org/m@1", "scan", {"ref": version.ref})
    again = submit(pat, queue, "scan:org/m@1", "scan", {"ref": version.ref})
    queue.enqueue("scan:org/m@1")  # a duplicate message, as a re-enqueue after a crash sends
    assert (first.enqueue, again.enqueue) == (True, False)
    workers(reg)
    wait_until(lambda: job_state(reg, "scan:org/m@1") is JobState.DONE, what="the scan job")
    job = reg.jobs.get("scan:org/m@1")
    assert (job.attempts, job.result, job.error) == (
        1,
        {"version": "org/m@1", "state": "scanned", "risk": job.result["risk"]},
        None,
    )
    scans = [h for h in reg.history("org/m") if h.to_state == "scanned"]
    assert [(s.actor, s.from_state) for s in scans] == [(WORKER, "quarantined")]
    assert submit(pat, queue, "scan:org/m@1", "scan", {"ref": version.ref}).enqueue is False


def test_a_failing_fetch_is_retried_with_backoff_then_succeeds(
    reg,
    tmp_path: Path,
    workers,  # noqa: F811
) -> None:
    with HubServer() as hub:
        hub.fail(503, "/resolve/")  # the listing answers, every download fails
        key, _, _ = pull(reg, hub, tmp_path, "org/flaky")
        worker = workers(reg, "--upstream", hub.url)
        wait_until(lambda: reg.jobs.get(key).attempts >= 3, what="a third attempt")
        failed = reg.jobs.get(key)
        assert "HTTP 503" in (failed.error or "")
        hub._failures.clear()
        wait_until(lambda: job_state(reg, key) is JobState.DONE, what="the retried fetch")
    done = reg.jobs.get(key)
    assert 3 <= done.attempts <= 5 and done.error is None
    assert done.result == {"version": "org/flaky@1", "state": "scanned", "risk": "info"}
    # Exponential backoff: 0.3 s before the second attempt, 0.6 s before the third.
    starts = attempt_starts(worker.output())
    assert starts[1] - starts[0] >= 0.3 and starts[2] - starts[1] >= 0.6
    assert len(reg.models()[0].versions) == 1


def test_a_job_failing_every_attempt_is_failed_with_its_error(
    reg,
    tmp_path: Path,
    workers,  # noqa: F811
) -> None:
    with HubServer() as hub:
        hub.fail(500, "/resolve/")
        key, settings, queue = pull(reg, hub, tmp_path, "org/down")
        workers(reg, "--upstream", hub.url, "--max-attempts", "3")
        wait_until(lambda: job_state(reg, key) is JobState.FAILED, what="the job to fail")
        job = reg.jobs.get(key)
        assert job.attempts == 3 and "HTTP 500" in (job.error or "")
        downloads = [r for r in hub.requests if "/resolve/" in r.path]
        assert len(downloads) == 3  # one per attempt: the first file fails each time
        # A later request gives a failed fetch a fresh start.
        assert (
            request(as_user(reg, "rob"), settings, queue, "org/down", "main").status == "fetching"
        )
        assert reg.jobs.get(key).state in (JobState.QUEUED, JobState.RUNNING)
    assert reg.models() == []


def test_a_worker_killed_mid_fetch_is_replaced_and_the_version_exists_once(
    reg,
    tmp_path: Path,
    workers,  # noqa: F811
) -> None:
    with HubServer() as hub:
        hub.stall = 30.0  # each file hangs half-way: the worker is killed in the middle
        key, _, _ = pull(reg, hub, tmp_path, "org/slow")
        first = workers(reg, "--upstream", hub.url)
        wait_until(lambda: any("/resolve/" in r.path for r in hub.requests), what="a download")
        running = reg.jobs.get(key)
        assert running.state is JobState.RUNNING and running.progress == {
            "step": "downloading",
            "endpoint": hub.url,
        }
        first.kill()
        hub.stall = 0.0
        workers(reg, "--upstream", hub.url)
        wait_until(lambda: job_state(reg, key) is JobState.DONE, what="the new worker")
    job = reg.jobs.get(key)
    assert job.attempts == 2 and job.worker != running.worker
    [model] = reg.models()
    assert [v.ref for v in model.versions] == ["org/slow@1"]


def test_two_workers_on_redis_share_the_queue_and_survive_a_kill(
    reg,
    tmp_path: Path,
    workers,  # noqa: F811
    redis_queue: str,  # noqa: F811
) -> None:
    pat = as_user(reg, "pat")
    refs = [
        pat.ingest(write_benign(tmp_path / f"m{i}", seed=i), name=f"org/m{i}", scan=False).ref
        for i in range(4)
    ]
    queue = open_queue(reg.data_dir, redis_queue)
    keys = [f"scan:{ref}" for ref in refs]
    with HubServer() as hub:
        hub.stall = 30.0
        fetch, _, _ = pull(reg, hub, tmp_path, "org/slow", redis_queue)
        doomed = workers(reg, "--upstream", hub.url, queue=redis_queue)
        wait_until(lambda: job_state(reg, fetch) is JobState.RUNNING, what="the fetch")
        survivor = workers(reg, "--upstream", hub.url, queue=redis_queue)
        for key, ref in zip(keys, refs, strict=True):
            submit(pat, queue, key, "scan", {"ref": ref})
        doomed.kill()
        hub.stall = 0.0
        wait_until(
            lambda: all(j.state is JobState.DONE for j in reg.jobs.many([*keys, fetch])),
            what="every job on Redis",
        )
    assert {j.attempts for j in reg.jobs.many(keys)} == {1}
    assert reg.jobs.get(fetch).attempts == 2
    assert sum(m.name == "org/slow" for m in reg.models()) == 1
    assert "enqueued again" in survivor.output()
    assert not list(reg.data_dir.glob("queue.db"))  # nothing went to the embedded queue


def test_rescan_all_reports_a_changed_verdict_and_withdraws_the_version(
    reg,
    tmp_path: Path,
    workers,  # noqa: F811
    capsys,
) -> None:
    from mlgate.cli import main

    reg.set_policy(RegistryPolicy(auto_reject_at=None))
    clean = release(reg, write_benign(tmp_path / "clean"), "org/clean", alias="production")
    evil = release(reg, write_malicious(tmp_path / "evil", "rescan"), "org/evil")
    good = release(reg, write_benign(tmp_path / "good", seed=1), "org/evil", alias="production")
    assert reg.show("org/evil@1").risk == "critical"
    # The evil version's report as older rules would have written it: clean.
    old = json.dumps(clean.scan_report).replace("org/clean@1", "org/evil@1")
    with reg.engine.begin() as conn:
        conn.execute(
            update(t.versions)
            .where(t.versions.c.content_digest == evil.content_digest)
            .values(scan_report=old, risk=clean.risk)
        )
    reg.set_policy(RegistryPolicy(quarantine_on_rescan_fail=True))
    as_user(reg, "pat").set_alias("org/evil", "production", "org/evil@1")
    workers(reg)
    argv = ["rescan", "--all", "--wait", "--timeout", "120", "--data-dir", str(reg.data_dir)]
    argv += ["--as", "rita"]
    url = reg.engine.url
    if url.get_backend_name() != "sqlite":
        argv += ["--registry", url.render_as_string(hide_password=False)]
    assert main(argv) == 1
    out = capsys.readouterr().out
    changed = f"org/evil@1: risk {clean.risk} -> critical (quarantined; withdrawn to quarantine)"
    assert changed in out
    rules = rules_version()
    assert f"3 versions rescanned under rules {rules} (3 just now): 1 changed, 0 failed" in out
    assert "org/clean@1" not in out and "org/evil@2" not in out
    withdrawn = reg.show("org/evil@1")
    assert (withdrawn.state, withdrawn.risk) == (State.QUARANTINED, "critical")
    last = withdrawn.history[-1]
    assert (last.from_state, last.to_state, last.actor) == (
        "published",
        "quarantined",
        "mlgate-policy",
    )
    assert reg.show("org/evil@production").number == good.number  # the alias fell back
    audit = [json.loads(line) for line in reg.audit_export()]
    assert [e["actor"] for e in audit if e["action"] == "withdraw"] == ["mlgate-policy"]
    assert reg.audit_verify().ok
    # Same rules again: nothing is rescanned; the verdicts found under these rules stand.
    assert main(argv) == 1
    again = capsys.readouterr().out
    assert changed in again and f"rules {rules} (0 just now): 1 changed" in again
    assert reg.show("org/evil@1").history == withdrawn.history


def test_queue_messages_are_json_and_refuse_anything_else() -> None:
    from huey.registry import Message

    serializer = JsonSerializer()
    message = Message("id", "mlgate.hub.jobs.mlgate_run", None, 0, 0, None, ("scan:m@1",), {})
    data = serializer.serialize(message)
    assert json.loads(data)["args"] == ["scan:m@1"]
    assert serializer.deserialize(data) == message
    import pickle

    with pytest.raises(ValueError):
        serializer.deserialize(pickle.dumps(message))
    with pytest.raises(ValueError, match="refused"):
        serializer.deserialize(b" " * 70_000)
