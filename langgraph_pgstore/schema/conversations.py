"""users, sessions (one per LangGraph thread), messages and chain_analysis_results.

Every table has ``owner_id`` (the owning user's external id, NULL = shared; migration 0005):
row-level security compares it with the transaction's tenant (see ``tenancy``).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Computed,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Table,
    Text,
    text,
)

from . import metadata
from .types import JSONB, NOW, TZ, UUID, UUID_DEFAULT, Vector

users = Table(
    "users",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=UUID_DEFAULT),
    Column("external_id", Text, nullable=False, unique=True),  # the identity
    Column("email", Text),  # an attribute, never a match key
    Column("name", Text),
    Column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("created_at", TZ, nullable=False, server_default=NOW),
    Column("updated_at", TZ, nullable=False, server_default=NOW),
    Column("owner_id", Text, Computed("external_id", persisted=True)),
    Index(None, "owner_id"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=UUID_DEFAULT),
    Column("thread_id", Text, nullable=False, unique=True),
    Column("user_id", UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE")),
    Column("title", Text),
    Column("status", Text, nullable=False, server_default=text("'active'")),
    Column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("created_at", TZ, nullable=False, server_default=NOW),
    Column("updated_at", TZ, nullable=False, server_default=NOW),
    Column("owner_id", Text),
    CheckConstraint("status IN ('active', 'archived')", name="status"),
    Index(None, "user_id", "status", "updated_at"),
    Index(None, "owner_id"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column(
        "session_id",
        UUID(as_uuid=True),
        ForeignKey("sessions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("message_id", Text),
    Column("position", Integer, nullable=False),
    Column("role", Text, nullable=False),
    Column("name", Text),
    Column("content", Text, nullable=False, server_default=text("''")),
    Column("content_parts", JSONB),
    Column("tool_calls", JSONB),
    Column("tool_call_id", Text),
    Column("input_tokens", Integer),
    Column("output_tokens", Integer),
    Column("total_tokens", Integer),
    Column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("checkpoint_ns", Text, nullable=False, server_default=text("''")),
    Column("checkpoint_id", Text),
    Column("created_at", TZ, nullable=False, server_default=text("clock_timestamp()")),
    Column("removed_at", TZ),
    Column("embedding", Vector()),
    Column("owner_id", Text),
    Index(None, "session_id", "created_at", "id"),
    Index(None, "session_id", "position", "id"),
    Index(None, "session_id", "message_id", unique=True),
    Index(None, "owner_id"),
)

chain_analysis_results = Table(
    "chain_analysis_results",
    metadata,
    Column(
        "session_id",
        UUID(as_uuid=True),
        ForeignKey("sessions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("vulnerabilities", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("chain_links", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("problem_behavior", Text),
    Column("prompting_event", Text),
    Column("consequences", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("solutions", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("summary", Text),
    Column("created_at", TZ, nullable=False, server_default=NOW),
    Column("updated_at", TZ, nullable=False, server_default=NOW),
    Column("owner_id", Text),
    Index(None, "owner_id"),
)
