"""Pull-through at the Hugging Face routes: a repo this hub does not have is asked of the
upstream (:mod:`mlgate.hub.pullthrough`) and answered ``GatedRepo`` until it is served.

Only repos the registry does not know at all are pulled: a revision missing from a model
the organisation already has is ``RevisionNotFound``, never a fetch. Otherwise anyone
who can publish an upstream repo under an internal model's name could get a version of
it into that model's history (dependency confusion, applied to models).
"""

from __future__ import annotations

from fastapi import Request

from mlgate.hub.commits import commit_id
from mlgate.hub.hf.errors import REPO_NOT_FOUND, HfError, gated
from mlgate.hub.hf.revisions import Resolved, resolve
from mlgate.hub.jobs import JobQueue
from mlgate.hub.pullthrough import PullStatus, UpstreamNotFound
from mlgate.hub.pullthrough import request as request_upstream
from mlgate.hub.settings import HubSettings
from mlgate.registry.errors import RegistryError
from mlgate.registry.service import Registry


def resolve_or_pull(request: Request, registry: Registry, repo: str, revision: str) -> Resolved:
    """:func:`resolve`, falling back to the upstream for a repo the registry lacks."""
    try:
        return resolve(registry, repo, revision)
    except HfError as e:
        settings: HubSettings = request.app.state.settings
        if e.code != REPO_NOT_FOUND or settings.upstream is None:
            raise
    queue: JobQueue = request.app.state.queue
    try:
        state = request_upstream(registry, settings, queue, repo, revision)
    except UpstreamNotFound as e:
        raise HfError(404, f"{e} (asked of the upstream)", e.error_code) from None
    except RegistryError as e:  # the upstream unreachable or refusing: say so, change nothing
        raise HfError(502, f"pull-through of {repo}@{revision} failed: {e}") from None
    if state.status is not PullStatus.SERVED or state.version is None:
        raise gated(f"{repo}@{state.commit[:12]} {state.message}")
    version = registry.downloads.serving_view(state.version.ref)
    return Resolved(version, commit_id(version))
