"""Database tables of the registry (SQLAlchemy Core), shared by SQLite and PostgreSQL.

Timestamps are ISO-8601 UTC strings so that both backends store and compare them alike;
JSON documents (scan report, BOM, signature, details) are stored as text.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

Stamp = String(32)
Digest = String(64)

settings = Table(
    "settings",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

principals = Table(
    "principals",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("roles", String(256), nullable=False),
    Column("created_at", Stamp, nullable=False),
    Column("created_by", String(128), nullable=False),
)

models = Table(
    "models",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False, unique=True),
    Column("owner", String(128), nullable=False),
    Column("created_at", Stamp, nullable=False),
)

versions = Table(
    "versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("source_kind", String(16), nullable=False),
    Column("source_uri", Text, nullable=False),
    Column("repo_id", String(256)),
    Column("revision", String(128)),
    Column("requested_revision", String(256)),
    Column("content_digest", Digest, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("file_count", Integer, nullable=False),
    Column("formats", Text, nullable=False),
    Column("license", String(256)),
    Column("owner", String(128), nullable=False),
    Column("ingested_at", Stamp, nullable=False),
    Column("ingested_by", String(128), nullable=False),
    Column("risk", String(16), nullable=False),
    Column("scan_report", Text),
    Column("dynamic_report", Text),
    Column("bom", Text),
    Column("signature", Text),
    Column("signed_by", String(256)),
    Column("converted_from", Integer, ForeignKey("versions.id")),
    UniqueConstraint("model_id", "number", name="uq_versions_model_number"),
)

files = Table(
    "files",
    metadata,
    Column("version_id", Integer, ForeignKey("versions.id"), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("digest", Digest, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("format", String(32), nullable=False),
)
Index("ix_files_digest", files.c.digest)

# What each version was built from or matched (base models, datasets, rule ids), indexed
# when first known so that "which versions does this poisoned base affect" is one indexed
# query (registry/lineage.py); ``origin`` says where the fact came from (card, config...).
lineage = Table(
    "lineage",
    metadata,
    Column("version_id", Integer, ForeignKey("versions.id"), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("value", String(256), primary_key=True),
    Column("origin", String(16), primary_key=True),
)
Index("ix_lineage_kind_value", lineage.c.kind, lineage.c.value)

blobs = Table(
    "blobs",
    metadata,
    Column("digest", Digest, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("created_at", Stamp, nullable=False),
)

decisions = Table(
    "decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version_id", Integer, ForeignKey("versions.id"), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("decision", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", Stamp, nullable=False),
)

state_history = Table(
    "state_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version_id", Integer, ForeignKey("versions.id"), nullable=False),
    Column("from_state", String(16)),
    Column("to_state", String(16), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", Stamp, nullable=False),
)

aliases = Table(
    "aliases",
    metadata,
    Column("model_id", Integer, ForeignKey("models.id"), primary_key=True),
    Column("alias", String(64), primary_key=True),
    Column("version_id", Integer, ForeignKey("versions.id"), nullable=False),
)

alias_history = Table(
    "alias_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id"), nullable=False),
    Column("alias", String(64), nullable=False),
    Column("version_id", Integer, ForeignKey("versions.id")),
    Column("actor", String(128), nullable=False),
    Column("at", Stamp, nullable=False),
)

downloads = Table(
    "downloads",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version_id", Integer, ForeignKey("versions.id"), nullable=False),
    Column("path", String(1024), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("at", Stamp, nullable=False),
)

audit_entries = Table(
    "audit_entries",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", Stamp, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(32), nullable=False),
    Column("subject", String(512), nullable=False),
    Column("details", Text, nullable=False),
    Column("prev_hash", Digest, nullable=False),
    Column("hash", Digest, nullable=False),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("head_hash", Digest, nullable=False),
    Column("at", Stamp, nullable=False),
    Column("key_id", String(128), nullable=False),
    Column("signature", Text, nullable=False),
)

# Bearer tokens of the hub API (issue 18). Only a SHA-256 of the secret is stored: the
# secret is 256 random bits, so a slow password hash would add nothing but latency per request.
tokens = Table(
    "tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("principal", String(128), ForeignKey("principals.name"), nullable=False),
    Column("label", String(128), nullable=False),
    Column("roles", String(256), nullable=False),
    Column("secret_hash", Digest, nullable=False),
    Column("created_at", Stamp, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("expires_at", Stamp),
    Column("revoked_at", Stamp),
    Column("revoked_by", String(128)),
)

# Requests the hub could not answer from the registry and asked its upstream for
# (pull-through). One row per (repo, immutable commit); every requester is recorded.
upstream_requests = Table(
    "upstream_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("repo_id", String(256), nullable=False),
    Column("commit", String(64), nullable=False),
    Column("requested_revision", String(256), nullable=False),
    Column("requested_by", String(128), nullable=False),
    Column("requested_at", Stamp, nullable=False),
    Column("state", String(16), nullable=False),
    Column("version_id", Integer, ForeignKey("versions.id")),
    Column("error", Text),
    UniqueConstraint("repo_id", "commit", name="uq_upstream_requests_repo_commit"),
)

# Background jobs (fetch, scan, rescan...). The queue engine carries them to workers; this
# table is their durable state: idempotent by key, leased while running so that a job whose
# worker was killed is handed out again, with attempts, progress and the last error.
jobs = Table(
    "jobs",
    metadata,
    Column("key", String(512), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("args", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("progress", Text),
    Column("result", Text),
    Column("error", Text),
    Column("lease_until", Stamp),
    Column("worker", String(128)),
    Column("created_at", Stamp, nullable=False),
    Column("updated_at", Stamp, nullable=False),
)
Index("ix_jobs_state", jobs.c.state)
