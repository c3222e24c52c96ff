"""runs.metadata GIN index: find runs by the caller's metadata (``metadata @> {...}``)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

Runs keep every JSON-serialisable key of ``config["metadata"]``; ``list_runs(metadata=...)``
and ``stats(metadata=...)`` filter with containment, which this index serves.
``trace_id`` (btree) and ``idempotency_key`` (unique) are indexed since 0002.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_runs_metadata",
        "runs",
        ["metadata"],
        postgresql_using="gin",
        postgresql_ops={"metadata": "jsonb_path_ops"},
    )


def downgrade() -> None:
    op.drop_index("ix_runs_metadata", table_name="runs")
