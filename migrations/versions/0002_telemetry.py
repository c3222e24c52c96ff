"""runs, steps, llm_calls

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("now()")
TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("graph_name", sa.Text()),
        sa.Column("thread_id", sa.Text()),
        sa.Column("user_id", sa.Text()),
        sa.Column("status", sa.Text(), server_default=sa.text("'running'"), nullable=False),
        sa.Column("input_summary", JSONB()),
        sa.Column("output_summary", JSONB()),
        sa.Column("error_type", sa.Text()),
        sa.Column("error_message", sa.Text()),
        sa.Column("trace_id", sa.Text()),
        sa.Column("idempotency_key", sa.Text()),
        sa.Column("metadata", JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("started_at", TZ, server_default=NOW, nullable=False),
        sa.Column("completed_at", TZ),
        sa.CheckConstraint(
            "status IN ('running', 'success', 'error', 'interrupted', 'cancelled')",
            name="ck_runs_status",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.UniqueConstraint("idempotency_key", name="uq_runs_idempotency_key"),
    )
    op.create_index("ix_runs_thread_id_started_at", "runs", ["thread_id", "started_at"])
    op.create_index("ix_runs_user_id_started_at", "runs", ["user_id", "started_at"])
    op.create_index("ix_runs_started_at", "runs", ["started_at"])
    op.create_index("ix_runs_trace_id", "runs", ["trace_id"])
    op.create_table(
        "steps",
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("run_id", UUID(as_uuid=True), nullable=False),
        sa.Column("parent_step_id", UUID(as_uuid=True)),
        sa.Column("kind", sa.Text(), server_default=sa.text("'node'"), nullable=False),
        sa.Column("node_name", sa.Text(), nullable=False),
        sa.Column("step_number", sa.Integer()),
        sa.Column("triggers", ARRAY(sa.Text())),
        sa.Column("checkpoint_ns", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("task_id", sa.Text()),
        sa.Column("attempt", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("input_data", JSONB()),
        sa.Column("output_data", JSONB()),
        sa.Column("status", sa.Text(), server_default=sa.text("'running'"), nullable=False),
        sa.Column("error_type", sa.Text()),
        sa.Column("error_message", sa.Text()),
        sa.Column("started_at", TZ, server_default=NOW, nullable=False),
        sa.Column("completed_at", TZ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_steps_run_id_runs", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_steps"),
    )
    op.create_index("ix_steps_run_id_started_at", "steps", ["run_id", "started_at"])
    op.create_table(
        "llm_calls",
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("run_id", UUID(as_uuid=True), nullable=False),
        sa.Column("step_id", UUID(as_uuid=True)),
        sa.Column("thread_id", sa.Text()),
        sa.Column("operation_name", sa.Text(), server_default=sa.text("'chat'"), nullable=False),
        sa.Column("provider_name", sa.Text()),
        sa.Column("request_model", sa.Text()),
        sa.Column("response_model", sa.Text()),
        sa.Column("response_id", sa.Text()),
        sa.Column("finish_reasons", ARRAY(sa.Text())),
        sa.Column("input_tokens", sa.Integer()),
        sa.Column("output_tokens", sa.Integer()),
        sa.Column("total_tokens", sa.Integer()),
        sa.Column("cache_read_input_tokens", sa.Integer()),
        sa.Column("cache_creation_input_tokens", sa.Integer()),
        sa.Column("reasoning_output_tokens", sa.Integer()),
        sa.Column("cost_usd", sa.Numeric(18, 8)),
        sa.Column("latency_ms", sa.Float()),
        sa.Column("time_to_first_chunk_ms", sa.Float()),
        sa.Column("streamed", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("status", sa.Text(), server_default=sa.text("'running'"), nullable=False),
        sa.Column("error_type", sa.Text()),
        sa.Column("error_message", sa.Text()),
        sa.Column("started_at", TZ, server_default=NOW, nullable=False),
        sa.Column("completed_at", TZ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_llm_calls_run_id_runs", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_llm_calls"),
    )
    op.create_index("ix_llm_calls_run_id", "llm_calls", ["run_id"])
    op.create_index("ix_llm_calls_step_id", "llm_calls", ["step_id"])
    op.create_index("ix_llm_calls_request_model_started_at", "llm_calls", ["request_model", "started_at"])


def downgrade() -> None:
    op.drop_table("llm_calls")
    op.drop_table("steps")
    op.drop_table("runs")
