"""Reading telemetry back: sans-IO operations shared by the sync and async APIs.

Each function returns an ``Op`` (see ``_ops``); ``Telemetry`` runs it with ``run`` and
``AsyncTelemetry`` with ``arun``. Filters are fixed SQL fragments chosen by which arguments are
given; grouping keys come from an allowlist, never from the caller's string.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, TypedDict
from uuid import UUID

from .._ops import Op, Query
from ..errors import InvalidInput, NotFound

__all__ = [
    "GroupBy",
    "RunDetail",
    "RunPage",
    "get_run",
    "list_runs",
    "run_stats",
    "run_totals",
    "stats",
]

GroupBy = Literal["session", "user", "model", "day", "graph"]

GET_RUN = "SELECT * FROM runs WHERE id = %s"
GET_STEPS = "SELECT * FROM steps WHERE run_id = %s ORDER BY started_at, step_number, id"
GET_LLM_CALLS = "SELECT * FROM llm_calls WHERE run_id = %s ORDER BY started_at, id"

RUN_STATS = """
SELECT r.id AS run_id, r.status, r.started_at, r.completed_at,
       EXTRACT(EPOCH FROM (r.completed_at - r.started_at)) * 1000 AS duration_ms,
       (SELECT count(*) FROM steps s WHERE s.run_id = r.id AND s.kind = 'node') AS step_count,
       (SELECT count(*) FROM steps s WHERE s.run_id = r.id AND s.kind = 'tool') AS tool_calls,
       c.llm_calls, c.input_tokens, c.output_tokens, c.total_tokens,
       c.cache_read_input_tokens, c.reasoning_output_tokens, c.cost_usd, c.cost_unknown_calls
  FROM runs r
  CROSS JOIN LATERAL (
    SELECT count(*) AS llm_calls, sum(input_tokens) AS input_tokens,
           sum(output_tokens) AS output_tokens, sum(total_tokens) AS total_tokens,
           sum(cache_read_input_tokens) AS cache_read_input_tokens,
           sum(reasoning_output_tokens) AS reasoning_output_tokens,
           sum(cost_usd) AS cost_usd,
           count(*) FILTER (WHERE cost_usd IS NULL) AS cost_unknown_calls
      FROM llm_calls WHERE run_id = r.id) c
 WHERE r.id = %s
"""

# Grouped stats over runs; {key} and {where} are filled from the allowlists below only.
STATS_BY_RUN_KEY = """
WITH r AS (SELECT * FROM runs r WHERE {where}),
s AS (SELECT run_id, count(*) AS n FROM steps
       WHERE kind = 'node' AND run_id IN (SELECT id FROM r) GROUP BY run_id),
c AS (SELECT run_id, count(*) AS n, sum(input_tokens) AS input_tokens,
             sum(output_tokens) AS output_tokens, sum(total_tokens) AS total_tokens,
             sum(cost_usd) AS cost_usd,
             count(*) FILTER (WHERE cost_usd IS NULL) AS cost_unknown_calls
        FROM llm_calls WHERE run_id IN (SELECT id FROM r) GROUP BY run_id)
SELECT {key} AS key, count(*) AS runs,
       count(*) FILTER (WHERE r.status = 'error') AS errors,
       COALESCE(sum(s.n), 0) AS steps, COALESCE(sum(c.n), 0) AS llm_calls,
       sum(c.input_tokens) AS input_tokens, sum(c.output_tokens) AS output_tokens,
       sum(c.total_tokens) AS total_tokens, sum(c.cost_usd) AS cost_usd,
       COALESCE(sum(c.cost_unknown_calls), 0) AS cost_unknown_calls,
       avg(EXTRACT(EPOCH FROM (r.completed_at - r.started_at)) * 1000) AS avg_duration_ms
  FROM r LEFT JOIN s ON s.run_id = r.id LEFT JOIN c ON c.run_id = r.id
 GROUP BY 1 ORDER BY 1
"""

STATS_BY_MODEL = """
SELECT COALESCE(c.request_model, c.response_model) AS key,
       count(DISTINCT c.run_id) AS runs,
       count(*) FILTER (WHERE c.status = 'error') AS errors,
       count(*) AS llm_calls,
       sum(c.input_tokens) AS input_tokens, sum(c.output_tokens) AS output_tokens,
       sum(c.total_tokens) AS total_tokens, sum(c.cost_usd) AS cost_usd,
       count(*) FILTER (WHERE c.cost_usd IS NULL) AS cost_unknown_calls,
       avg(c.latency_ms) AS avg_latency_ms,
       avg(c.time_to_first_chunk_ms) AS avg_time_to_first_chunk_ms
  FROM llm_calls c JOIN runs r ON r.id = c.run_id
 WHERE {where}
 GROUP BY 1 ORDER BY 1
"""

_KEYS: dict[str, str] = {
    "session": "r.thread_id",
    "user": "r.user_id",
    "graph": "r.graph_name",
    "day": "(r.started_at AT TIME ZONE 'UTC')::date",
}

# Filter name -> SQL fragment over alias r (runs). Only these are ever concatenated.
_FILTERS: dict[str, str] = {
    "owner_id": "r.owner_id = %s",
    "user_id": "r.user_id = %s",
    "thread_id": "r.thread_id = %s",
    "graph_name": "r.graph_name = %s",
    "status": "r.status = %s",
    "since": "r.started_at >= %s",
    "until": "r.started_at < %s",
}

LIST_RUNS = """
SELECT r.* FROM runs r
 WHERE {where}
 ORDER BY r.started_at DESC, r.id DESC
 LIMIT %s
"""
_CURSOR = "(r.started_at, r.id) < (%s, %s)"


class RunDetail(TypedDict):
    """A run row with its steps and LLM calls (each a dict of the table's columns)."""

    run: dict[str, Any]
    steps: list[dict[str, Any]]
    llm_calls: list[dict[str, Any]]


class RunPage(TypedDict):
    """One page of runs, newest first; pass ``next_cursor`` back to get the next page."""

    runs: list[dict[str, Any]]
    next_cursor: str | None


def as_uuid(value: UUID | str) -> UUID:
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError as exc:
        raise InvalidInput(f"not a run id: {value!r}") from exc


def _where(filters: dict[str, Any]) -> tuple[str, list[Any]]:
    parts, params = ["TRUE"], []
    for name, value in filters.items():
        if value is None:
            continue
        if name not in _FILTERS:
            raise InvalidInput(f"unknown filter {name!r}")
        if name in ("since", "until") and not isinstance(value, datetime):
            raise InvalidInput(f"{name} must be a datetime, not {type(value).__name__}")
        parts.append(_FILTERS[name])
        params.append(value)
    return " AND ".join(parts), params


def get_run(run_id: UUID | str) -> Op[RunDetail]:
    """The run with its steps and LLM calls, in start order."""
    rid = as_uuid(run_id)
    rows = yield Query(GET_RUN, (rid,))
    if not rows:
        raise NotFound(f"no run {rid}")
    steps = yield Query(GET_STEPS, (rid,))
    calls = yield Query(GET_LLM_CALLS, (rid,))
    return RunDetail(
        run=dict(rows[0]), steps=[dict(s) for s in steps], llm_calls=[dict(c) for c in calls]
    )


def run_stats(run_id: UUID | str) -> Op[dict[str, Any]]:
    """Step count, tool calls, LLM calls, tokens, cost (None when unknown) and duration."""
    rid = as_uuid(run_id)
    rows = yield Query(RUN_STATS, (rid,))
    if not rows:
        raise NotFound(f"no run {rid}")
    return dict(rows[0])


def stats(by: GroupBy, **filters: Any) -> Op[list[dict[str, Any]]]:
    """Aggregates per session (thread), user, graph, model or UTC day, one dict per group.

    Filters: user_id, thread_id, graph_name, status, since, until (datetimes).
    """
    where, params = _where(filters)
    if by == "model":
        sql = STATS_BY_MODEL.format(where=where)
    elif by in _KEYS:
        sql = STATS_BY_RUN_KEY.format(key=_KEYS[by], where=where)
    else:
        raise InvalidInput(f"stats(by=...) must be one of {sorted([*_KEYS, 'model'])}, not {by!r}")
    rows = yield Query(sql, params)
    return [dict(r) for r in rows]


def encode_cursor(started_at: datetime, run_id: UUID) -> str:
    raw = f"{started_at.isoformat()}|{run_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ts, _, rid = raw.partition("|")
        return datetime.fromisoformat(ts), UUID(rid)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput(f"invalid cursor {cursor!r}") from exc


def list_runs(*, limit: int = 50, cursor: str | None = None, **filters: Any) -> Op[RunPage]:
    """Runs newest first; keyset pagination on (started_at, id).

    Filters: user_id, thread_id, graph_name, status, since, until (datetimes).
    """
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
        raise InvalidInput(f"limit must be an int in 1..1000, not {limit!r}")
    where, params = _where(filters)
    if cursor is not None:
        where += " AND " + _CURSOR
        params.extend(decode_cursor(cursor))
    rows = yield Query(LIST_RUNS.format(where=where), [*params, limit + 1])
    page = [dict(r) for r in rows[:limit]]
    nxt = encode_cursor(page[-1]["started_at"], page[-1]["id"]) if len(rows) > limit else None
    return RunPage(runs=page, next_cursor=nxt)


RUN_TOTALS = """
SELECT run_id, count(*) AS llm_calls, sum(input_tokens) AS input_tokens,
       sum(output_tokens) AS output_tokens, sum(total_tokens) AS total_tokens,
       sum(cost_usd) AS cost_usd, count(*) FILTER (WHERE cost_usd IS NULL) AS cost_unknown_calls
  FROM llm_calls WHERE run_id = ANY(%s)
 GROUP BY run_id
"""


def run_totals(run_ids: Sequence[UUID]) -> Op[dict[UUID, dict[str, Any]]]:
    """LLM calls, tokens and cost of each of ``run_ids`` (the ids of a ``list_runs`` page) in
    one query, not one per run; runs without LLM calls are absent from the result."""
    if not run_ids:
        return {}
    rows = yield Query(RUN_TOTALS, (list(run_ids),))
    return {r["run_id"]: dict(r) for r in rows}
