"""runs, steps and llm_calls: what telemetry records (columns mirror OpenTelemetry gen_ai.*).

No foreign key points at ``sessions``: telemetry is written by a background writer that may
run before the session row exists; runs carry the LangGraph ``thread_id`` instead.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ARRAY,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    Table,
    Text,
    text,
)

from . import metadata
from .types import JSONB, NOW, TZ, UUID

RUN_STATUSES = ("running", "success", "error", "interrupted", "cancelled")

runs = Table(
    "runs",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("graph_name", Text),
    Column("thread_id", Text),
    Column("user_id", Text),
    Column("status", Text, nullable=False, server_default=text("'running'")),
    Column("input_summary", JSONB),
    Column("output_summary", JSONB),
    Column("error_type", Text),
    Column("error_message", Text),
    Column("trace_id", Text),
    Column("idempotency_key", Text, unique=True),
    Column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("started_at", TZ, nullable=False, server_default=NOW),
    Column("completed_at", TZ),
    Column("owner_id", Text),
    CheckConstraint(
        "status IN ('running', 'success', 'error', 'interrupted', 'cancelled')", name="status"
    ),
    Index(None, "thread_id", "started_at"),
    Index(None, "user_id", "started_at"),
    Index(None, "started_at"),
    Index(None, "trace_id"),
    Index(None, "metadata", postgresql_using="gin", postgresql_ops={"metadata": "jsonb_path_ops"}),
    Index(None, "owner_id"),
)


def _run_part(name: str, columns: list[Column[Any]], indexes: list[Index]) -> Table:
    """A table of a run's parts (steps, LLM calls): its own id, the run (deleted with it),
    ``columns``, then how the part ended and whose it is, as in every such table."""
    return Table(
        name,
        metadata,
        Column("id", UUID(as_uuid=True), primary_key=True),
        Column(
            "run_id", UUID(as_uuid=True), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False
        ),
        *columns,
        Column("status", Text, nullable=False, server_default=text("'running'")),
        Column("error_type", Text),
        Column("error_message", Text),
        Column("started_at", TZ, nullable=False, server_default=NOW),
        Column("completed_at", TZ),
        Column("owner_id", Text),
        *indexes,
        Index(None, "owner_id"),
    )


steps = _run_part(
    "steps",
    [
        Column("parent_step_id", UUID(as_uuid=True)),
        Column("kind", Text, nullable=False, server_default=text("'node'")),
        Column("node_name", Text, nullable=False),
        Column("step_number", Integer),
        Column("triggers", ARRAY(Text)),
        Column("checkpoint_ns", Text, nullable=False, server_default=text("''")),
        Column("task_id", Text),
        Column("attempt", Integer, nullable=False, server_default=text("1")),
        Column("input_data", JSONB),
        Column("output_data", JSONB),
    ],
    [Index(None, "run_id", "started_at")],
)

llm_calls = _run_part(
    "llm_calls",
    [
        Column("step_id", UUID(as_uuid=True)),
        Column("thread_id", Text),
        Column("operation_name", Text, nullable=False, server_default=text("'chat'")),
        Column("provider_name", Text),
        Column("request_model", Text),
        Column("response_model", Text),
        Column("response_id", Text),
        Column("finish_reasons", ARRAY(Text)),
        Column("input_tokens", Integer),
        Column("output_tokens", Integer),
        Column("total_tokens", Integer),
        Column("cache_read_input_tokens", Integer),
        Column("cache_creation_input_tokens", Integer),
        Column("reasoning_output_tokens", Integer),
        Column("cost_usd", Numeric(18, 8)),
        Column("latency_ms", Float),
        Column("time_to_first_chunk_ms", Float),
        Column("streamed", Boolean, nullable=False, server_default=text("false")),
    ],
    [Index(None, "run_id"), Index(None, "step_id"), Index(None, "request_model", "started_at")],
)
