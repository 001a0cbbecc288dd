"""The webhook's lookup cache (mlgate.webhook.cache) on real registries, SQLite and
PostgreSQL. A cache hit is observed by changing a version's state behind the registry's
back (a direct SQL update, which appends nothing to the audit log): the cache keeps its
answer until its entry expires. An audited change (revoke, alias move) drops it at the next
request; the webhooks' own admission records do not."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest
from registry_models import release, write_benign
from registry_support import as_user
from sqlalchemy import update

from mlgate.hub.commits import commit_id
from mlgate.hub.hf.errors import GATED, HfError
from mlgate.registry import schema
from mlgate.webhook.cache import LookupCache

NAME = "org/tiny"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def published(registry: Any, tmp_path: Path) -> Any:
    registry.add_user("mlgate-webhook", "reader")
    return release(registry, write_benign(tmp_path / "m"), NAME, alias="prod")


def webhook(registry: Any) -> Any:
    return as_user(registry, "mlgate-webhook")


def quarantine_silently(registry: Any) -> None:
    """Change the state without an audit entry: only a fresh read can see it."""
    with registry.engine.begin() as conn:
        conn.execute(update(schema.versions).values(state="quarantined"))


def test_hit_until_expiry_then_fresh(registry: Any, published: Any) -> None:
    clock = Clock()
    cache, hook = LookupCache(ttl=5.0, clock=clock), webhook(registry)
    assert cache.lookups(hook)(NAME, "prod").version.number == published.number
    quarantine_silently(registry)
    assert cache.lookups(hook)(NAME, "prod").version.number == published.number  # cached
    clock.now = 5.0
    with pytest.raises(HfError) as refused:
        cache.lookups(hook)(NAME, "prod")
    assert refused.value.code == GATED


def test_audited_change_drops_the_cache(registry: Any, published: Any) -> None:
    cache, hook = LookupCache(ttl=3600.0), webhook(registry)
    lookup, pinned = cache.lookups(hook), commit_id(published)
    for revision in (pinned, "prod", "main"):
        lookup(NAME, revision)
    registry.revoke(published.ref, "CVE in the tokenizer")
    lookup = cache.lookups(hook)
    with pytest.raises(HfError) as refused:
        lookup(NAME, pinned)
    assert "revoked by alice: CVE in the tokenizer" in refused.value.message
    for revision in ("prod", "main"):  # the alias fell with its only version
        with pytest.raises(HfError):
            lookup(NAME, revision)


def test_admission_records_keep_the_cache(registry: Any, published: Any) -> None:
    cache, hook = LookupCache(ttl=3600.0), webhook(registry)
    cache.lookups(hook)(NAME, "prod")
    quarantine_silently(registry)
    hook.auditing.record_admission("Pod/ns/p", {"allowed": True})
    assert cache.lookups(hook)(NAME, "prod").version.number == published.number


def test_refusals_are_cached_and_raised_afresh(registry: Any, published: Any) -> None:
    cache, hook = LookupCache(ttl=3600.0), webhook(registry)
    errors = []
    for _ in range(2):
        with pytest.raises(HfError) as refused:
            cache.lookups(hook)("org/unknown", "main")
        errors.append(refused.value)
    assert errors[0] is not errors[1]
    assert errors[0].message == errors[1].message
    release(registry, write_benign(registry.data_dir.parent / "u"), "org/unknown")
    assert cache.lookups(hook)("org/unknown", "main").version.number == 1  # ingest audited


def test_size_is_bounded(registry: Any, published: Any) -> None:
    cache, hook = LookupCache(ttl=3600.0, size=2), webhook(registry)
    lookup = cache.lookups(hook)
    for name in ("a/1", "a/2", "a/3", NAME):
        with pytest.raises(HfError) if name != NAME else nullcontext():
            lookup(name, "main")
    assert len(cache._entries) == 2
    assert set(cache._entries) == {("a/3", "main"), (NAME, "main")}


def test_changed_since_reads_only_later_entries(registry: Any, published: Any) -> None:
    hook = webhook(registry)
    head, changed = hook.auditing.changed_since(0)
    assert changed and head > 0
    assert hook.auditing.changed_since(head) == (head, False)
    hook.auditing.record_admission("Pod/ns/p", {"allowed": True})
    assert hook.auditing.changed_since(head) == (head + 1, False)
    registry.revoke(published.ref, "bad")
    assert hook.auditing.changed_since(head + 1)[1] is True
