"""users, sessions, messages, chain_analysis_results

Revision ID: 0001
Revises:
Create Date: 2026-11-23

The ``vector`` extension is created when the server offers it; without it the messages
table has no embedding column and vector features raise ExtensionMissing.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("now()")
EMPTY = sa.text("'{}'::jsonb")
EMPTY_LIST = sa.text("'[]'::jsonb")


def _ensure_vector() -> bool:
    bind = op.get_bind()
    installed = bind.exec_driver_sql("SELECT 1 FROM pg_extension WHERE extname = 'vector'").first()
    if installed:
        return True
    available = bind.exec_driver_sql(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
    ).first()
    if available:
        op.execute("CREATE EXTENSION IF NOT EXISTS vector")
        return True
    return False


def upgrade() -> None:
    has_vector = _ensure_vector()
    op.create_table(
        "users",
        sa.Column("id", UUID(as_uuid=True), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("external_id", sa.Text()),
        sa.Column("email", sa.Text()),
        sa.Column("name", sa.Text()),
        sa.Column("metadata", JSONB(), server_default=EMPTY, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("external_id", name="uq_users_external_id"),
        sa.UniqueConstraint("email", name="uq_users_email"),
    )
    op.create_table(
        "sessions",
        sa.Column("id", UUID(as_uuid=True), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("thread_id", sa.Text(), nullable=False),
        sa.Column("user_id", UUID(as_uuid=True)),
        sa.Column("title", sa.Text()),
        sa.Column("status", sa.Text(), server_default=sa.text("'active'"), nullable=False),
        sa.Column("metadata", JSONB(), server_default=EMPTY, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.CheckConstraint("status IN ('active', 'archived')", name="ck_sessions_status"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_sessions_user_id_users", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_sessions"),
        sa.UniqueConstraint("thread_id", name="uq_sessions_thread_id"),
    )
    op.create_index("ix_sessions_user_id_status_updated_at", "sessions", ["user_id", "status", "updated_at"])
    columns = [
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("session_id", UUID(as_uuid=True), nullable=False),
        sa.Column("message_id", sa.Text()),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("name", sa.Text()),
        sa.Column("content", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("content_parts", JSONB()),
        sa.Column("tool_calls", JSONB()),
        sa.Column("tool_call_id", sa.Text()),
        sa.Column("input_tokens", sa.Integer()),
        sa.Column("output_tokens", sa.Integer()),
        sa.Column("total_tokens", sa.Integer()),
        sa.Column("metadata", JSONB(), server_default=EMPTY, nullable=False),
        sa.Column("checkpoint_ns", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("checkpoint_id", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("clock_timestamp()"), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True)),
    ]
    if has_vector:
        columns.append(sa.Column("embedding", Vector()))
    op.create_table(
        "messages",
        *columns,
        sa.ForeignKeyConstraint(["session_id"], ["sessions.id"], name="fk_messages_session_id_sessions", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
    )
    op.create_index("ix_messages_session_id_created_at_id", "messages", ["session_id", "created_at", "id"])
    op.create_index("ix_messages_session_id_position_id", "messages", ["session_id", "position", "id"])
    op.create_index("ix_messages_session_id_message_id", "messages", ["session_id", "message_id"], unique=True)
    op.create_table(
        "chain_analysis_results",
        sa.Column("session_id", UUID(as_uuid=True), nullable=False),
        sa.Column("vulnerabilities", JSONB(), server_default=EMPTY_LIST, nullable=False),
        sa.Column("chain_links", JSONB(), server_default=EMPTY_LIST, nullable=False),
        sa.Column("problem_behavior", sa.Text()),
        sa.Column("prompting_event", sa.Text()),
        sa.Column("consequences", JSONB(), server_default=EMPTY_LIST, nullable=False),
        sa.Column("solutions", JSONB(), server_default=EMPTY_LIST, nullable=False),
        sa.Column("summary", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.ForeignKeyConstraint(["session_id"], ["sessions.id"], name="fk_chain_analysis_results_session_id_sessions", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("session_id", name="pk_chain_analysis_results"),
    )


def downgrade() -> None:
    op.drop_table("chain_analysis_results")
    op.drop_table("messages")
    op.drop_table("sessions")
    op.drop_table("users")
