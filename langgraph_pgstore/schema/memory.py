"""Semantic memory tables behind the BaseStore adapter (``langgraph_pgstore.memory``).

``memory_items`` holds one row per (namespace, key); ``memory_vectors`` one row per indexed
field. The vector column has no fixed size: per-dimension HNSW indexes
(``ix_dyn_memory_vectors_hnsw_<dims>``, partial on ``dims``) are created at run time by the
store, so one table serves stores with different embedding models.
"""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    Double,
    ForeignKeyConstraint,
    Index,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import TSVECTOR

from . import metadata
from .types import JSONB, NOW, TZ, Vector


def _item_key() -> tuple[Column[str], Column[str]]:
    """(namespace prefix, key): the primary key of an item, which its vectors reference."""
    return Column("prefix", Text, nullable=False), Column("key", Text, nullable=False)


memory_items = Table(
    "memory_items",
    metadata,
    *_item_key(),
    Column("value", JSONB, nullable=False),
    Column("created_at", TZ, server_default=NOW, nullable=False),
    Column("updated_at", TZ, server_default=NOW, nullable=False),
    Column("expires_at", TZ),
    Column("ttl_minutes", Double),
    Column("source", Text),
    Column("importance", Double),
    Column("access_count", Integer, server_default=text("0"), nullable=False),
    Column("last_accessed_at", TZ),
    Column("search_text", Text),
    Column("search_tsv", TSVECTOR),
    Column("owner_id", Text),  # the owning user's external id; NULL = shared (readable by all)
    PrimaryKeyConstraint("prefix", "key", name="pk_memory_items"),
    Index(
        "ix_memory_items_prefix_pattern", "prefix", postgresql_ops={"prefix": "text_pattern_ops"}
    ),
    Index(
        "ix_memory_items_expires_at", "expires_at", postgresql_where=text("expires_at IS NOT NULL")
    ),
    Index(
        "ix_memory_items_prefix_source",
        "prefix",
        "source",
        postgresql_where=text("source IS NOT NULL"),
    ),
    Index("ix_memory_items_search_tsv", "search_tsv", postgresql_using="gin"),
    Index("ix_memory_items_owner_id", "owner_id"),
)

memory_vectors = Table(
    "memory_vectors",
    metadata,
    *_item_key(),
    Column("field_name", Text, nullable=False),
    Column("dims", SmallInteger, nullable=False),
    Column("embedding", Vector(), nullable=False),
    Column("owner_id", Text),
    PrimaryKeyConstraint("prefix", "key", "field_name", name="pk_memory_vectors"),
    ForeignKeyConstraint(
        ["prefix", "key"],
        ["memory_items.prefix", "memory_items.key"],
        name="fk_memory_vectors_prefix_memory_items",
        ondelete="CASCADE",
    ),
    CheckConstraint("dims > 0", name="dims_positive"),
    Index("ix_memory_vectors_owner_id", "owner_id"),
)

__all__ = ["memory_items", "memory_vectors"]
