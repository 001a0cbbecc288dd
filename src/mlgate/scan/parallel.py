"""The regular files of one scan analysed in worker processes (``mlgate scan -j N``).

The engine walks the targets in its own process and leaves each regular file here, with a
placeholder artifact at its place in the report. Workers (spawned: nothing of the parent's
state is inherited) import the engine once and scan chunks of files, each with the per-file
budgets of a single-process scan, and send back the findings model's records. The results
are put back where the files were met, so the report is the single-process one: same
findings, same order, same completeness, same exit code.

Two things are shared by the files of one scan. A chained artifact (a pickle loading
another) is analysed at its first mention only: a worker's file that analysed one an earlier
file already had is scanned again here, knowing what the earlier files claimed, as one
process would have. The scan-wide decompression budget is split evenly between the workers
(fail closed: the total stays within it). A worker that crashes, or a chunk that outlives
its time budget (workers are then killed), leaves its files incomplete: never dropped.
"""

from __future__ import annotations

import math
import multiprocessing
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path

from mlgate.findings import ArtifactResult, Finding, Location
from mlgate.scan import engine, rules
from mlgate.scan.context import DeferredFile, ScanContext
from mlgate.scan.limits import Limits
from mlgate.scan.pickle.policy import Policy

# Files per task: enough to amortise the round trip on tiny files, few enough that two
# workers stay balanced and that a killed worker takes few files' results with it.
_MAX_CHUNK = 64


@dataclass(frozen=True)
class FileResult:
    """What one top-level file added to the report, and the chained artifacts it analysed."""

    findings: tuple[Finding, ...]
    artifacts: tuple[ArtifactResult, ...]
    chained: frozenset[str]


def scan_deferred(ctx: ScanContext, files: list[DeferredFile], jobs: int) -> None:
    """Scan ``files`` in ``jobs`` processes and put their results in ``ctx`` where they were
    met (in reverse, so that the places still to fill keep their indexes)."""
    results = _in_order(ctx, files, _collect(ctx, files, jobs))
    for file, result in zip(reversed(files), reversed(results), strict=True):
        ctx.findings[file.findings_at : file.findings_at] = result.findings
        ctx.artifacts[file.artifact_at : file.artifact_at + 1] = result.artifacts


def scan_one(ctx: ScanContext, path: Path, shown: Path, claimed: frozenset[str]) -> FileResult:
    """Scan one file with ``ctx`` as a scan that already analysed ``claimed``."""
    ctx.begin_file(claimed)
    engine.scan_file(ctx, path, shown)
    return FileResult(tuple(ctx.findings), tuple(ctx.artifacts), ctx.chained - claimed)


def _in_order(
    ctx: ScanContext, files: list[DeferredFile], results: list[FileResult | str]
) -> list[FileResult]:
    """The results one process would have given: a file that analysed a chained artifact
    an earlier file had claimed is scanned again knowing the earlier claims."""
    again = _worker_context(ctx.policy, ctx.limits, ctx.roots, ctx.scan_deadline)
    claimed: frozenset[str] = frozenset()
    final: list[FileResult] = []
    try:
        for file, result in zip(files, results, strict=True):
            final.append(_settled(again, file, result, claimed))
            claimed |= final[-1].chained
    finally:
        again.close()
    return final


def _settled(
    again: ScanContext, file: DeferredFile, result: FileResult | str, claimed: frozenset[str]
) -> FileResult:
    if isinstance(result, str):
        return _abandoned(file, result)
    if result.chained & claimed:
        return scan_one(again, file.path, file.shown, claimed)
    return result


def _abandoned(file: DeferredFile, reason: str) -> FileResult:
    message = f"not analysed: {reason}"
    finding = Finding(
        rules.LIMIT_EXCEEDED.id, rules.LIMIT_EXCEEDED.severity, message, Location(str(file.shown))
    )
    artifact = ArtifactResult(str(file.shown), "unknown", complete=False)
    return FileResult((finding,), (artifact,), frozenset())


def _collect(ctx: ScanContext, files: list[DeferredFile], jobs: int) -> list[FileResult | str]:
    """Each file's result, or why it has none (its worker died or ran out of time)."""
    chunks = _chunks(files, jobs)
    share = replace(
        ctx.limits, max_scan_decompressed_bytes=ctx.limits.max_scan_decompressed_bytes // jobs
    )
    pool = ProcessPoolExecutor(
        jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(ctx.policy, share, ctx.roots, ctx.scan_deadline),
    )
    results: list[FileResult | str] = []
    try:
        tasks = [_submit(pool, chunk) for chunk in chunks]
        for chunk, task in zip(chunks, tasks, strict=True):
            results += _chunk_results(pool, task, len(chunk), _budget(ctx, len(chunk)))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results


def _submit(
    pool: ProcessPoolExecutor, chunk: list[DeferredFile]
) -> Future[list[FileResult]] | BaseException:
    """The chunk's task, or why it could not be queued: a worker that died while chunks were
    still being submitted breaks the pool, and every later submit raises."""
    try:
        return pool.submit(_scan_chunk, [(f.path, f.shown) for f in chunk])
    except BrokenProcessPool as error:
        return error


def _chunks(files: list[DeferredFile], jobs: int) -> list[list[DeferredFile]]:
    size = max(1, min(_MAX_CHUNK, math.ceil(len(files) / (jobs * 4))))
    return [files[i : i + size] for i in range(0, len(files), size)]


def _budget(ctx: ScanContext, count: int) -> float:
    """Seconds to wait for a chunk of ``count`` files: each file's budget and one more (a
    worker's start-up), never past the scan's budget by more than one file's."""
    per_file = ctx.limits.file_seconds
    left = (ctx.scan_deadline or time.monotonic()) - time.monotonic()
    return min((count + 1) * per_file, max(left, 0.0) + per_file)


def _chunk_results(
    pool: ProcessPoolExecutor,
    task: Future[list[FileResult]] | BaseException,
    count: int,
    timeout: float,
) -> list[FileResult | str]:
    if isinstance(task, BaseException):
        return [f"its worker process failed ({type(task).__name__}: {task})"] * count
    try:
        return list(task.result(timeout=timeout))
    except TimeoutError:
        _kill_workers(pool)
        return [f"its worker process was still busy after {timeout:.0f} s and was killed"] * count
    except Exception as e:  # a worker that died (BrokenProcessPool) or failed: fail closed
        return [f"its worker process failed ({type(e).__name__}: {e})"] * count


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    """End a pool whose worker hangs; the pending tasks then fail and their files are marked
    incomplete. Python 3.11's executor has no public way to stop a running task (3.14 adds
    terminate_workers), so its processes are killed through the executor's own table."""
    processes: dict[int, multiprocessing.process.BaseProcess] = getattr(pool, "_processes", {})
    for process in list(processes.values()):
        process.kill()


_worker: ScanContext | None = None  # the context of this worker process (one per process)


def _worker_context(
    policy: Policy, limits: Limits, roots: tuple[Path, ...], deadline: float | None
) -> ScanContext:
    ctx = ScanContext(policy=policy, limits=limits, dispatch=engine.dispatch, roots=roots)
    ctx.scan_deadline = deadline  # the scan's budget, opened by the parent (monotonic clock)
    return ctx


def _start_worker(
    policy: Policy, limits: Limits, roots: tuple[Path, ...], deadline: float | None
) -> None:
    global _worker  # noqa: PLW0603 - one context per worker process, kept across its tasks
    _worker = _worker_context(policy, limits, roots, deadline)


def _scan_chunk(files: list[tuple[Path, Path]]) -> list[FileResult]:
    assert _worker is not None, "the pool's initializer sets the worker's context"
    return [scan_one(_worker, path, shown, frozenset()) for path, shown in files]
