"""Reading telemetry back: sans-IO operations shared by the sync and async APIs, the CLI and
the HTTP API (this module owns every read of runs, steps and llm_calls).

Each function returns an ``Op`` (see ``_ops``); ``Telemetry`` runs it with ``run`` and
``AsyncTelemetry`` with ``arun``. Results are the record types of ``records.py`` (integers as
``int``, money as ``Decimal``, durations as float milliseconds); lists are ``paging.Page``.
Filters are fixed SQL fragments chosen by which arguments are given; grouping keys come from
an allowlist, never from the caller's string.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal, TypedDict, cast
from uuid import UUID

from psycopg.types.json import Jsonb

from .._ops import Op, Query
from ..errors import InvalidInput, NotFound
from ..paging import Page, check_limit, decode_cursor, page, parse_id
from ..tenancy import require_admin
from .records import (
    LLM_COLS,
    RUN_COLS,
    STEP_COLS,
    GroupStats,
    LlmCall,
    Run,
    RunDetail,
    RunStats,
    Step,
)

__all__ = [
    "FILTERS",
    "GroupBy",
    "GroupStats",
    "RunDetail",
    "RunFilters",
    "RunPage",
    "find_run",
    "get_run",
    "list_runs",
    "purge_runs_older_than",
    "run_stats",
    "run_totals",
    "stats",
]

GroupBy = Literal["session", "user", "model", "day", "graph"]
RunPage = Page[Run]


class RunFilters(TypedDict, total=False):
    """Filters of ``list_runs`` and ``stats`` (all optional, combined with AND)."""

    owner_id: str | None
    user_id: str | None
    thread_id: str | None
    graph_name: str | None
    status: str | None
    trace_id: str | None
    idempotency_key: str | None
    metadata: Mapping[str, Any] | None
    """Runs whose metadata contains this object (``{"tenant": "acme"}``)."""
    since: datetime | None
    """Runs started at or after this time."""
    until: datetime | None
    """Runs started before this time."""


def _select(alias: str, cols: tuple[str, ...]) -> str:
    return ", ".join(f"{alias}.{c}" for c in cols)


RUN_SELECT = _select("r", RUN_COLS)
GET_RUN = f"SELECT {RUN_SELECT} FROM runs r WHERE r.id = %s"
GET_STEPS = (
    f"SELECT {_select('s', STEP_COLS)} FROM steps s WHERE s.run_id = %s"
    " ORDER BY s.started_at, s.step_number, s.id"
)
GET_LLM_CALLS = (
    f"SELECT {_select('c', LLM_COLS)} FROM llm_calls c WHERE c.run_id = %s"
    " ORDER BY c.started_at, c.id"
)

RUN_STATS = """
SELECT r.id AS run_id, r.status, r.started_at, r.completed_at,
       (EXTRACT(EPOCH FROM (r.completed_at - r.started_at)) * 1000)::float8 AS duration_ms,
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
# Sums of bigints are numeric in PostgreSQL: cast back so counts stay integers.
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
       COALESCE(sum(s.n), 0)::bigint AS steps, COALESCE(sum(c.n), 0)::bigint AS llm_calls,
       sum(c.input_tokens)::bigint AS input_tokens, sum(c.output_tokens)::bigint AS output_tokens,
       sum(c.total_tokens)::bigint AS total_tokens, sum(c.cost_usd) AS cost_usd,
       COALESCE(sum(c.cost_unknown_calls), 0)::bigint AS cost_unknown_calls,
       avg(EXTRACT(EPOCH FROM (r.completed_at - r.started_at)) * 1000)::float8
         AS avg_duration_ms
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
       avg(c.latency_ms)::float8 AS avg_latency_ms,
       avg(c.time_to_first_chunk_ms)::float8 AS avg_time_to_first_chunk_ms
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

#: Filter name -> SQL fragment over alias r (runs). Only these are ever concatenated.
#: ``metadata`` matches runs whose metadata contains the given object (``@>``, GIN-indexed).
FILTERS: dict[str, str] = {
    "owner_id": "r.owner_id = %s",
    "user_id": "r.user_id = %s",
    "thread_id": "r.thread_id = %s",
    "graph_name": "r.graph_name = %s",
    "status": "r.status = %s",
    "trace_id": "r.trace_id = %s",
    "idempotency_key": "r.idempotency_key = %s",
    "metadata": "r.metadata @> %s",
    "since": "r.started_at >= %s",
    "until": "r.started_at < %s",
}

LIST_RUNS = f"""
SELECT {RUN_SELECT} FROM runs r
 WHERE {{where}}
 ORDER BY r.started_at DESC, r.id DESC
 LIMIT %s
"""
_CURSOR = "(r.started_at, r.id) < (%s, %s)"

# Retention. Only finished runs: a running one is still being written by telemetry.
DELETE_OLD_RUNS = """
DELETE FROM runs WHERE started_at < now() - %s AND status <> 'running' RETURNING id
"""


def _where(filters: Mapping[str, Any]) -> tuple[str, list[Any]]:
    parts, params = ["TRUE"], []
    for name, value in filters.items():
        if value is None:
            continue
        if name not in FILTERS:
            raise InvalidInput(f"unknown filter {name!r} (known: {', '.join(FILTERS)})")
        if name in ("since", "until") and not isinstance(value, datetime):
            raise InvalidInput(f"{name} must be a datetime, not {type(value).__name__}")
        if name == "metadata":
            if not isinstance(value, Mapping):
                raise InvalidInput(f"metadata must be a dict, not {type(value).__name__}")
            value = Jsonb(dict(value))
        elif name not in ("since", "until") and not isinstance(value, str):
            raise InvalidInput(f"{name} must be a string, not {type(value).__name__}")
        parts.append(FILTERS[name])
        params.append(value)
    return " AND ".join(parts), params


def get_run(run_id: UUID | str) -> Op[RunDetail]:
    """The run with its steps and LLM calls, in start order."""
    rid = parse_id(run_id, "run id")
    rows = yield Query(GET_RUN, (rid,))
    if not rows:
        raise NotFound(f"no run {rid}")
    steps = yield Query(GET_STEPS, (rid,))
    calls = yield Query(GET_LLM_CALLS, (rid,))
    return RunDetail(
        run=cast(Run, dict(rows[0])),
        steps=[cast(Step, dict(s)) for s in steps],
        llm_calls=[cast(LlmCall, dict(c)) for c in calls],
    )


def find_run(*, idempotency_key: str | None = None, trace_id: str | None = None) -> Op[Run]:
    """The newest run with this idempotency key or trace id (both indexed); ``NotFound``."""
    if (idempotency_key is None) == (trace_id is None):
        raise InvalidInput("find_run needs exactly one of idempotency_key or trace_id")
    where, params = _where({"idempotency_key": idempotency_key, "trace_id": trace_id})
    rows = yield Query(LIST_RUNS.format(where=where), [*params, 1])
    if not rows:
        what = "idempotency key" if idempotency_key is not None else "trace id"
        raise NotFound(f"no run with {what} {idempotency_key or trace_id!r}")
    return cast(Run, dict(rows[0]))


def run_stats(run_id: UUID | str) -> Op[RunStats]:
    """Step count, tool calls, LLM calls, tokens, cost (None when unknown) and duration."""
    rid = parse_id(run_id, "run id")
    rows = yield Query(RUN_STATS, (rid,))
    if not rows:
        raise NotFound(f"no run {rid}")
    return cast(RunStats, dict(rows[0]))


def stats(by: GroupBy, **filters: Any) -> Op[list[GroupStats]]:
    """Aggregates per session (thread), user, graph, model or UTC day, one dict per group.

    Filters: those of :func:`list_runs`.
    """
    where, params = _where(filters)
    if by == "model":
        sql = STATS_BY_MODEL.format(where=where)
    elif by in _KEYS:
        sql = STATS_BY_RUN_KEY.format(key=_KEYS[by], where=where)
    else:
        raise InvalidInput(f"by must be one of {sorted([*_KEYS, 'model'])}, not {by!r}")
    rows = yield Query(sql, params)
    return [cast(GroupStats, dict(r)) for r in rows]


def list_runs(*, limit: int = 50, cursor: str | None = None, **filters: Any) -> Op[RunPage]:
    """Runs newest first; keyset pagination on (started_at, id).

    Filters: user_id, thread_id, graph_name, status, trace_id, idempotency_key (strings),
    metadata (a dict the run's metadata contains), since, until (datetimes, on started_at).
    """
    limit = check_limit(limit)
    where, params = _where(filters)
    if cursor is not None:
        where += " AND " + _CURSOR
        params.extend(decode_cursor(cursor, datetime.fromisoformat, UUID))
    rows = yield Query(LIST_RUNS.format(where=where), [*params, limit + 1])
    runs = [cast(Run, dict(r)) for r in rows]
    return page(runs, limit, lambda r: (r["started_at"], r["id"]))


def purge_runs_older_than(days: float) -> Op[int]:
    """Retention: delete finished runs (steps and LLM calls cascade) older than ``days``.
    Maintenance: the admin path only."""
    if isinstance(days, bool) or not isinstance(days, int | float) or not days > 0:
        raise InvalidInput(f"days must be a positive number, got {days!r}")
    yield from require_admin("purge_runs_older_than (retention)")
    rows = yield Query(DELETE_OLD_RUNS, (timedelta(days=days),))
    return len(rows)


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
