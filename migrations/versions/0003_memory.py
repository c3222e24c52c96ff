"""memory_items, memory_vectors (semantic memory store)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

``memory_vectors`` needs pgvector; without the extension only ``memory_items`` is created
and vector features raise ExtensionMissing. Per-dimension HNSW indexes are created at run
time (``ix_dyn_`` prefix, ignored by autogenerate).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("now()")


def _has_vector() -> bool:
    bind = op.get_bind()
    return (
        bind.exec_driver_sql("SELECT 1 FROM pg_extension WHERE extname = 'vector'").first()
        is not None
    )


def upgrade() -> None:
    op.create_table(
        "memory_items",
        sa.Column("prefix", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", JSONB(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("ttl_minutes", sa.Double()),
        sa.Column("source", sa.Text()),
        sa.Column("importance", sa.Double()),
        sa.Column("access_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_accessed_at", sa.DateTime(timezone=True)),
        sa.Column("search_text", sa.Text()),
        sa.Column("search_tsv", TSVECTOR()),
        sa.PrimaryKeyConstraint("prefix", "key", name="pk_memory_items"),
    )
    op.create_index(
        "ix_memory_items_prefix_pattern",
        "memory_items",
        ["prefix"],
        postgresql_ops={"prefix": "text_pattern_ops"},
    )
    op.create_index(
        "ix_memory_items_expires_at",
        "memory_items",
        ["expires_at"],
        postgresql_where=sa.text("expires_at IS NOT NULL"),
    )
    op.create_index(
        "ix_memory_items_prefix_source",
        "memory_items",
        ["prefix", "source"],
        postgresql_where=sa.text("source IS NOT NULL"),
    )
    op.create_index(
        "ix_memory_items_search_tsv", "memory_items", ["search_tsv"], postgresql_using="gin"
    )
    if _has_vector():
        op.create_table(
            "memory_vectors",
            sa.Column("prefix", sa.Text(), nullable=False),
            sa.Column("key", sa.Text(), nullable=False),
            sa.Column("field_name", sa.Text(), nullable=False),
            sa.Column("dims", sa.SmallInteger(), nullable=False),
            sa.Column("embedding", Vector(), nullable=False),
            sa.CheckConstraint("dims > 0", name="ck_memory_vectors_dims_positive"),
            sa.ForeignKeyConstraint(
                ["prefix", "key"],
                ["memory_items.prefix", "memory_items.key"],
                name="fk_memory_vectors_prefix_memory_items",
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("prefix", "key", "field_name", name="pk_memory_vectors"),
        )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS memory_vectors")
    op.drop_table("memory_items")
