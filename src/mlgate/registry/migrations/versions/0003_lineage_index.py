"""lineage: what each version was built from or matched, indexed for incident response

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 02:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lineage",
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["version_id"], ["versions.id"]),
        sa.PrimaryKeyConstraint("version_id", "kind", "value", "origin"),
    )
    op.create_index("ix_lineage_kind_value", "lineage", ["kind", "value"], unique=False)
    # Versions recorded before the index existed: what their stored scan reports and BOMs
    # say (their model cards are not re-read here; a migration touches no blobs).
    from mlgate.registry.lineage import backfill  # noqa: PLC0415

    backfill(op.get_bind())


def downgrade() -> None:
    op.drop_index("ix_lineage_kind_value", table_name="lineage")
    op.drop_table("lineage")
