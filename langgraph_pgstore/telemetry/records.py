"""One record type per telemetry table: the writer fills them, the queries return them.

The column lists (``RUN_COLS`` ...), the generated upserts (``sql.py``) and the ``SELECT``
lists of the queries all derive from these fields, so adding a column is: the migration, the
``schema/telemetry.py`` declaration and one field here (``tests/test_telemetry_records.py``
checks the three agree). TypedDicts rather than classes because both ends are dicts anyway
(psycopg's ``dict_row`` in, named query parameters and JSON out) and callers index them.
Integers are ``int``, money ``Decimal``, durations ``float`` milliseconds.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, TypedDict
from uuid import UUID

__all__ = [
    "LLM_COLS",
    "RUN_COLS",
    "STEP_COLS",
    "GroupStats",
    "LlmCall",
    "Run",
    "RunDetail",
    "RunStats",
    "Step",
]


class Run(TypedDict):
    """A row of ``runs``: one invocation of a graph (the LangGraph root run)."""

    id: UUID
    graph_name: str | None
    thread_id: str | None
    user_id: str | None
    status: str
    input_summary: Any
    output_summary: Any
    error_type: str | None
    error_message: str | None
    trace_id: str | None
    idempotency_key: str | None
    metadata: dict[str, Any]
    started_at: datetime
    completed_at: datetime | None
    owner_id: str | None


class Step(TypedDict):
    """A row of ``steps``: a node execution (``kind='node'``) or a tool call (``'tool'``)."""

    id: UUID
    run_id: UUID
    parent_step_id: UUID | None
    kind: str
    node_name: str
    step_number: int | None
    triggers: list[str] | None
    checkpoint_ns: str
    task_id: str | None
    attempt: int
    input_data: Any
    output_data: Any
    status: str
    error_type: str | None
    error_message: str | None
    started_at: datetime
    completed_at: datetime | None
    owner_id: str | None


class LlmCall(TypedDict):
    """A row of ``llm_calls`` (names mirror OpenTelemetry ``gen_ai.*``)."""

    id: UUID
    run_id: UUID
    step_id: UUID | None
    thread_id: str | None
    operation_name: str
    provider_name: str | None
    request_model: str | None
    response_model: str | None
    response_id: str | None
    finish_reasons: list[str] | None
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    cache_read_input_tokens: int | None
    cache_creation_input_tokens: int | None
    reasoning_output_tokens: int | None
    cost_usd: Decimal | None
    latency_ms: float | None
    time_to_first_chunk_ms: float | None
    streamed: bool
    status: str
    error_type: str | None
    error_message: str | None
    started_at: datetime
    completed_at: datetime | None
    owner_id: str | None


RUN_COLS: tuple[str, ...] = tuple(Run.__annotations__)
STEP_COLS: tuple[str, ...] = tuple(Step.__annotations__)
LLM_COLS: tuple[str, ...] = tuple(LlmCall.__annotations__)


class RunDetail(TypedDict):
    """A run with its steps and LLM calls, each list in start order."""

    run: Run
    steps: list[Step]
    llm_calls: list[LlmCall]


class RunStats(TypedDict):
    """Totals of one run; token sums and cost are None when no call reported them."""

    run_id: UUID
    status: str
    started_at: datetime
    completed_at: datetime | None
    duration_ms: float | None
    step_count: int
    tool_calls: int
    llm_calls: int
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    cache_read_input_tokens: int | None
    reasoning_output_tokens: int | None
    cost_usd: Decimal | None
    cost_unknown_calls: int


class GroupStats(TypedDict, total=False):
    """One group of ``stats(by=...)``: ``key`` is the session, user, graph, model or day.

    ``steps``/``avg_duration_ms`` are absent when grouping by model, which has
    ``avg_latency_ms``/``avg_time_to_first_chunk_ms`` instead.
    """

    key: Any
    runs: int
    errors: int
    steps: int
    llm_calls: int
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    cost_usd: Decimal | None
    cost_unknown_calls: int
    avg_duration_ms: float | None
    avg_latency_ms: float | None
    avg_time_to_first_chunk_ms: float | None
