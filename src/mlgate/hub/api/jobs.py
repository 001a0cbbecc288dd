"""Background jobs: their state and progress (``GET /jobs/{key}``, ``GET /jobs``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from mlgate.hub.api.deps import Reader
from mlgate.hub.api.errors import ERROR_RESPONSES
from mlgate.registry.jobstate import Job, JobState

router = APIRouter(tags=["jobs"], responses=ERROR_RESPONSES)

# A job key: a kind and what it is about ("ingest:org/name:org/name@<commit>").
JobKey = Annotated[str, Path(min_length=3, max_length=512, pattern=r"^[a-z]+:[ -~]+$")]


@router.get("/jobs/{key:path}", response_model=Job)
def job(key: JobKey, registry: Reader) -> dict[str, Any]:
    """One job: state, attempts, progress while it runs, result or error when it ends."""
    return registry.jobs.get(key).to_json()


@router.get("/jobs", response_model=list[Job])
def jobs(
    registry: Reader,
    state: Annotated[JobState | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """The most recently updated jobs (optionally in one state)."""
    return [j.to_json() for j in registry.jobs.recent(state, limit)]
