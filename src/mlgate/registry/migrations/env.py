"""Alembic environment: migrations run on the connection mlgate hands over."""

from __future__ import annotations

from alembic import context

from mlgate.registry.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - mlgate always passes its connection
    raise RuntimeError("mlgate migrations run through `mlgate registry migrate`")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
