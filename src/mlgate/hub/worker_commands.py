"""``mlgate worker``: run background jobs (pull-through fetches, scans, rescans) from the
queue, as a registered identity (``--as``; an admin gives it the publisher role); and the
queue side of ``mlgate rescan --all``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click

from mlgate.cli_options import emit
from mlgate.errors import ExitCode
from mlgate.hub.jobs import enqueue_submitted, open_queue, wait_for
from mlgate.hub.runner import Runner, WorkerSettings
from mlgate.registry.rescan import rules_version
from mlgate.registry.roles import Action
from mlgate.registry.service import Registry, open_registry
from mlgate.registry.targets import queue_option, registry_options
from mlgate.render.escape import echo, inert_json, json_safe
from mlgate.render.text import plural


@click.command(name="worker")
@registry_options
@queue_option
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Jobs run at once by this worker (threads); run more workers for more cores.",
)
@click.option(
    "--upstream",
    envvar="MLGATE_UPSTREAM",
    metavar="URL",
    help="The hub that pull-through fetches come from; jobs for any other are refused "
    "[env MLGATE_UPSTREAM].",
)
@click.option(
    "--upstream-token",
    envvar="MLGATE_UPSTREAM_TOKEN",
    metavar="TOKEN",
    help="Token for --upstream, sent nowhere else [env MLGATE_UPSTREAM_TOKEN].",
)
@click.option(
    "--lease",
    type=click.FloatRange(1, 3600),
    default=60.0,
    show_default=True,
    help="Seconds a running job is held between renewals; a job whose worker died is "
    "handed out again once its lease expires.",
)
@click.option(
    "--max-attempts",
    type=click.IntRange(1, 100),
    default=5,
    show_default=True,
    help="Attempts of a job before it is failed with its last error.",
)
@click.option(
    "--retry-delay",
    type=click.FloatRange(0.1, 3600),
    default=5.0,
    show_default=True,
    help="Seconds before the first retry; doubled at each further attempt.",
)
def worker_cmd(
    data_dir: Path,
    url: str | None,
    actor: str | None,
    queue_url: str | None,
    concurrency: int,
    upstream: str | None,
    upstream_token: str | None,
    lease: float,
    max_attempts: int,
    retry_delay: float,
) -> None:
    """Run queued jobs until interrupted (SIGINT/SIGTERM stop it; a job cut short is
    handed out again once its lease expires)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    registry = open_registry(data_dir, url, actor)
    registry.require(Action.SCAN)  # fail now, not at the first job, without a role
    settings = WorkerSettings(
        lease=lease,
        max_attempts=max_attempts,
        retry_delay=retry_delay,
        upstream=upstream,
        upstream_token=upstream_token,
    )
    queue = open_queue(data_dir, queue_url)
    runner = Runner(registry, queue, settings)
    queue.runner = runner
    requeued = runner.start_up()
    echo(
        f"mlgate worker {runner.host} as {registry.actor}: queue {queue.where}, "
        f"{concurrency} at once; {requeued} queued job(s) enqueued again"
    )
    consumer = queue.huey.create_consumer(
        # An idle worker polls the embedded queue at most every 0.25 s (Redis blocks instead).
        workers=concurrency,
        worker_type="thread",
        periodic=True,
        max_delay=0.25,
    )
    consumer.run()


def rescan_all(
    registry: Registry, data_dir: Path, queue_url: str | None, timeout: float | None, fmt: str
) -> ExitCode:
    """``rescan --all``: submit a rescan of every version; with a ``timeout``, wait and
    report whose verdict changed (1 if any did, 2 if a rescan failed)."""
    submitted = registry.rescans.submit_all()
    queued = enqueue_submitted(open_queue(data_dir, queue_url), submitted)
    if timeout is None:
        echo(
            f"{plural(len(submitted), 'version')}: {queued} rescan job(s) queued under rules "
            f"{rules_version()}, {len(submitted) - queued} already submitted"
        )
        return ExitCode.CLEAN
    jobs = wait_for(registry, [s.job.key for s in submitted], timeout)
    if fmt == "json":
        emit(inert_json(json.dumps(json_safe([j.to_json() for j in jobs]), indent=2)), None)
    else:
        for job in jobs:
            _echo_rescan(job.result, job.error)
        changed = sum(bool(j.result and j.result["changed"]) for j in jobs)
        failed = sum(j.result is None for j in jobs)
        echo(
            f"{plural(len(jobs), 'version')} rescanned under rules {rules_version()} "
            f"({queued} just now): {changed} changed, {failed} failed"
        )
    if any(j.result is None for j in jobs):
        return ExitCode.ERROR
    changed = any(j.result and j.result["changed"] for j in jobs)
    return ExitCode.UNSAFE if changed else ExitCode.CLEAN


def _echo_rescan(result: dict[str, Any] | None, error: str | None) -> None:
    if result is None:
        echo(f"  failed: {error}")
        return
    if not result["changed"]:
        return
    before, after = result["before"], result["after"]
    gone = sorted(set(before["findings"]) - set(after["findings"]))
    new = sorted(set(after["findings"]) - set(before["findings"]))
    withdrawn = "; withdrawn to quarantine" if result["withdrawn"] else ""
    echo(
        f"{result['ref']}: risk {before['risk']} -> {after['risk']} ({result['state']}{withdrawn})"
    )
    for finding in new:
        echo(f"  + {finding}")
    for finding in gone:
        echo(f"  - {finding}")
