"""Pull-through quarantine against a local upstream hub (tests/hubserver.py) with a real
``mlgate worker``, on SQLite and PostgreSQL: the first request quarantines, approval makes the
repo servable, the auto-publish policy publishes a clean model but not one with a HIGH
finding, and concurrent requests contact the upstream once."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from hubjobs_support import WORKER, wait_until, workers  # noqa: F401
from hubserver import HubServer
from registry_models import write_benign
from registry_support import as_user

from mlgate.findings import Severity
from mlgate.hub import pullthrough
from mlgate.hub.jobs import open_queue
from mlgate.hub.pullthrough import PullStatus, UpstreamNotFound, request, state_of
from mlgate.hub.settings import HubSettings
from mlgate.registry.jobstate import JobState
from mlgate.registry.lifecycle import State
from mlgate.registry.policy import RegistryPolicy
from mlgate.registry.upstream import fetch_key

LFS_POINTER = (
    b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"a" * 64 + b"\nsize 1234\n"
)


@pytest.fixture
def reg(registry):  # type: ignore[no-untyped-def]
    registry.add_user(WORKER, "publisher")
    return registry


@pytest.fixture
def hub():  # type: ignore[no-untyped-def]
    with HubServer() as server:
        yield server


def files_of(folder: Path) -> dict[str, bytes | tuple[bytes, str]]:
    return {
        p.name: (p.read_bytes(), "lfs") if p.suffix == ".safetensors" else p.read_bytes()
        for p in folder.iterdir()
    }


def settled(reg, repo_id: str, commit: str) -> pullthrough.PullState | None:  # type: ignore[no-untyped-def]
    """The request's state once its fetch job has finished (None before)."""
    if reg.jobs.get(fetch_key(repo_id, commit)).state is not JobState.DONE:
        return None
    return state_of(reg, repo_id, commit)


def test_first_request_quarantines_and_approval_makes_it_servable(
    reg,
    hub: HubServer,
    tmp_path: Path,
    workers,  # noqa: F811
) -> None:
    commit = hub.add_repo("org/tiny", files_of(write_benign(tmp_path / "tiny")))
    settings = HubSettings(reg.data_dir, upstream=hub.url)
    queue = open_queue(reg.data_dir)
    rob = as_user(reg, "rob")
    first = request(rob, settings, queue, "org/tiny", "main")
    assert (first.status, first.commit, first.version) == (PullStatus.FETCHING, commit, None)
    assert first.message == "quarantined: fetching from upstream (queued)"
    assert reg.models() == []  # nothing fetched in the request path
    workers(reg, "--upstream", hub.url)
    pending = wait_until(lambda: settled(reg, "org/tiny", commit), what="the fetch")
    assert pending.status is PullStatus.PENDING
    assert pending.message == "quarantined: pending review (awaiting review)"
    version = reg.show("org/tiny")
    assert (version.ref, version.state, version.ingested_by) == (
        "org/tiny@1",
        State.SCANNED,
        WORKER,
    )
    assert (version.source.repo_id, version.source.revision) == ("org/tiny", commit)

    rita = as_user(reg, "rita")
    rita.approve("org/tiny@1", "looked at it")
    assert pullthrough.approved(rita, queue, "org/tiny@1") is True  # what the API does
    served = wait_until(
        lambda: state_of(reg, "org/tiny", commit).status is PullStatus.SERVED, what="publish"
    )
    assert served
    published = reg.show("org/tiny@1")
    assert published.state is State.PUBLISHED and published.signature
    actors = [(h.to_state, h.actor) for h in published.history]
    assert actors[-2:] == [("approved", "rita"), ("published", "mlgate-policy")]
    audit = [json.loads(line) for line in reg.audit_export()]
    [asked] = [e for e in audit if e["action"] == "upstream-request"]
    assert (asked["actor"], asked["details"]["revision"], asked["details"]["first"]) == (
        "rob",
        "main",
        True,
    )
    assert reg.audit_verify().ok


def test_auto_publish_policy_publishes_a_clean_model_not_one_with_a_high_finding(
    reg,
    hub: HubServer,
    tmp_path: Path,
    workers,  # noqa: F811
) -> None:
    reg.set_policy(
        RegistryPolicy(auto_reject_at=Severity.CRITICAL, auto_publish_below=Severity.HIGH)
    )
    clean = hub.add_repo("org/clean", files_of(write_benign(tmp_path / "clean")))
    lfs = {"config.json": b'{"model_type": "bert"}', "model.safetensors": LFS_POINTER}
    flagged = hub.add_repo("org/pointer", lfs)
    settings = HubSettings(reg.data_dir, upstream=hub.url)
    queue = open_queue(reg.data_dir)
    rob = as_user(reg, "rob")
    request(rob, settings, queue, "org/clean", "main")
    request(rob, settings, queue, "org/pointer", "main")
    workers(reg, "--upstream", hub.url)
    published = wait_until(lambda: settled(reg, "org/clean", clean), what="org/clean")
    held = wait_until(lambda: settled(reg, "org/pointer", flagged), what="org/pointer")
    assert published.status is PullStatus.SERVED
    assert (held.status, held.version.risk) == (PullStatus.PENDING, "high")
    history = [(h.to_state, h.actor, h.reason) for h in reg.show("org/clean@1").history]
    assert history[-2][:2] == ("approved", "mlgate-policy")
    assert history[-2][2].startswith("automatic: policy auto-publish-below HIGH")
    assert history[-1][:2] == ("published", "mlgate-policy")
    assert reg.show("org/pointer@1").state is State.SCANNED
    # The reviewer's reason reaches the client as one header-safe line (no CR/LF injection).
    as_user(reg, "rita").reject("org/pointer@1", "pointer only\r\nX-Injected: 1" + "!" * 400)
    rejected = state_of(reg, "org/pointer", flagged)
    assert rejected.status is PullStatus.REJECTED
    assert rejected.message.startswith("rejected: pointer only??X-Injected: 1!!")
    assert len(rejected.message) == 300 and rejected.message.isprintable()


def test_concurrent_requests_contact_the_upstream_once(
    reg,
    hub: HubServer,
    tmp_path: Path,
    workers,  # noqa: F811
) -> None:
    files = files_of(write_benign(tmp_path / "busy"))
    commit = hub.add_repo("org/busy", files)
    hub.delay = 0.2  # every request in flight at once while the upstream answers
    settings = HubSettings(reg.data_dir, upstream=hub.url)
    queue = open_queue(reg.data_dir)
    users = ["rob", "pat", "rita", "rex"] * 3
    barrier = threading.Barrier(len(users))
    states: list[PullStatus] = []

    def ask(user: str) -> None:
        registry = as_user(reg, user)
        barrier.wait()
        states.append(request(registry, settings, queue, "org/busy", "main").status)

    threads = [threading.Thread(target=ask, args=(u,)) for u in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert states == [PullStatus.FETCHING] * len(users)
    workers(reg, "--upstream", hub.url)
    wait_until(lambda: settled(reg, "org/busy", commit), what="the fetch")
    paths = [r.path for r in hub.requests]
    assert len(paths) == len(set(paths)), paths  # no URL twice
    assert [p for p in paths if "/revision/main" in p] == [
        "/api/models/org/busy/revision/main?blobs=true"
    ]
    downloads = [p for p in paths if "/resolve/" in p]
    assert len(downloads) == len(files)
    assert len(reg.models()[0].versions) == 1
    audit = [json.loads(line) for line in reg.audit_export()]
    asked = [e for e in audit if e["action"] == "upstream-request"]
    assert sorted(e["actor"] for e in asked) == sorted(users)
    assert sum(e["details"]["first"] for e in asked) == 1


def test_unknown_repo_or_revision_upstream_is_not_found(
    reg, hub: HubServer, tmp_path: Path
) -> None:
    hub.add_repo("org/there", files_of(write_benign(tmp_path / "there")))
    settings = HubSettings(reg.data_dir, upstream=hub.url)
    queue = open_queue(reg.data_dir)
    rob = as_user(reg, "rob")
    with pytest.raises(UpstreamNotFound) as missing:
        request(rob, settings, queue, "org/absent", "main")
    assert missing.value.error_code == "RepoNotFound"
    with pytest.raises(UpstreamNotFound) as revision:
        request(rob, settings, queue, "org/there", "v9")
    assert revision.value.error_code == "RevisionNotFound"
    with pytest.raises(UpstreamNotFound):
        request(rob, settings, queue, "../etc", "main")
    assert reg.jobs.recent() == [] and queue.pending() == 0
