"""How a hub is run: where its registry is, its upstream, its queue and its request limits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlgate.registry.sources.base import SourceLimits

# Where the management API lives on a hub (the remote client needs it without FastAPI).
API_PREFIX = "/api/mlgate/v1"


@dataclass(frozen=True)
class HubSettings:
    """``data_dir`` and ``registry_url`` as for every registry command; ``upstream`` a Hugging
    Face-compatible endpoint for pull-through (None: no pull-through); ``queue_url`` where
    background jobs go (None: the embedded queue in ``data_dir``; ``redis://...`` for workers
    on other machines)."""

    data_dir: Path
    registry_url: str | None = None
    upstream: str | None = None
    upstream_token: str | None = None
    queue_url: str | None = None
    # A request body larger than this is refused before it is read (HTTP 413).
    max_body_bytes: int = 1024 * 1024
    # Requests per minute per token (or per client address without one); over it, HTTP 429.
    rate_limit_per_minute: int = 1200
    # Uploads (``POST /uploads``, then one ``PUT`` per file, exempt from ``max_body_bytes``):
    # bytes per session and per file, and sessions one user may hold open at once.
    max_upload_bytes: int = 64 * 1024**3
    max_upload_file_bytes: int = 64 * 1024**3
    max_open_uploads: int = 16
    # Requests handled at once per uvicorn worker (threads running routes): a few, see app.py;
    # more only helps when the database is far away (PostgreSQL across a network).
    threads: int = 4

    @property
    def upload_limits(self) -> SourceLimits:
        """What one upload session may hold: a local ingest's limits, with the hub's sizes."""
        return SourceLimits(
            max_total_bytes=self.max_upload_bytes, max_file_bytes=self.max_upload_file_bytes
        )
