"""Read operations the HTTP API and the CLI share (sans-IO, see ``_ops``).

Every list is keyset-paginated (``limit`` + an opaque ``cursor``), newest first for runs and
sessions, oldest first for messages; every operation takes an optional ``user_id`` that scopes
it to one caller, so a row of another user reads as "not found", never as "forbidden".

Users are matched on ``runs.user_id`` (free text written by telemetry) and, for sessions, on
``users.id`` or ``users.external_id`` (the id the host application knows).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from .._ops import Op, Query
from ..errors import InvalidInput, NotFound

__all__ = [
    "Page",
    "decode_cursor",
    "encode_cursor",
    "get_run",
    "get_session",
    "list_llm_calls",
    "list_messages",
    "list_runs",
    "list_sessions",
    "list_steps",
    "parse_uuid",
    "purge_runs_older_than",
    "purge_user",
    "run_stats",
]

MAX_LIMIT = 500

Page = dict[str, Any]
"""``{"items": [...], "next_cursor": str | None}``."""

# -- SQL ----------------------------------------------------------------------------------

# Parameters: status, status, graph_name, graph_name, thread_id, thread_id, user_id, user_id,
# cursor_ts, cursor_ts, cursor_id, limit.
LIST_RUNS = """
SELECT id, graph_name, thread_id, user_id, status, error_type, error_message, trace_id,
       metadata, started_at, completed_at,
       (EXTRACT(EPOCH FROM (completed_at - started_at)) * 1000)::float8 AS duration_ms
FROM runs
WHERE (%s::text IS NULL OR status = %s)
  AND (%s::text IS NULL OR graph_name = %s)
  AND (%s::text IS NULL OR thread_id = %s)
  AND (%s::text IS NULL OR user_id = %s)
  AND (%s::timestamptz IS NULL OR (started_at, id) < (%s, %s::uuid))
ORDER BY started_at DESC, id DESC
LIMIT %s
"""

# Parameters: run id, user_id, user_id.
GET_RUN = """
SELECT id, graph_name, thread_id, user_id, status, input_summary, output_summary, error_type,
       error_message, trace_id, idempotency_key, metadata, started_at, completed_at,
       (EXTRACT(EPOCH FROM (completed_at - started_at)) * 1000)::float8 AS duration_ms
FROM runs
WHERE id = %s AND (%s::text IS NULL OR user_id = %s)
"""

LIST_STEPS = """
SELECT id, parent_step_id, kind, node_name, step_number, triggers, checkpoint_ns, task_id,
       attempt, status, error_type, error_message, started_at, completed_at,
       (EXTRACT(EPOCH FROM (completed_at - started_at)) * 1000)::float8 AS duration_ms
FROM steps WHERE run_id = %s
ORDER BY started_at, step_number NULLS LAST, id
"""

LIST_LLM_CALLS = """
SELECT id, step_id, operation_name, provider_name, request_model, response_model, finish_reasons,
       input_tokens, output_tokens, total_tokens, cache_read_input_tokens,
       cache_creation_input_tokens, reasoning_output_tokens, cost_usd::float8 AS cost_usd,
       latency_ms, time_to_first_chunk_ms, streamed, status, error_type, error_message,
       started_at, completed_at
FROM llm_calls WHERE run_id = %s
ORDER BY started_at, id
"""

RUN_STATS = """
SELECT
  (SELECT count(*) FROM steps WHERE run_id = %(id)s) AS step_count,
  (SELECT count(*) FROM steps WHERE run_id = %(id)s AND status = 'error') AS failed_steps,
  count(*) AS llm_call_count,
  coalesce(sum(input_tokens), 0) AS input_tokens,
  coalesce(sum(output_tokens), 0) AS output_tokens,
  coalesce(sum(total_tokens), 0) AS total_tokens,
  coalesce(sum(cost_usd), 0)::float8 AS cost_usd,
  avg(latency_ms) AS avg_latency_ms
FROM llm_calls c
WHERE c.run_id = %(id)s
"""

RUN_MODELS = """
SELECT coalesce(response_model, request_model) AS model, count(*) AS calls,
       coalesce(sum(total_tokens), 0) AS total_tokens,
       coalesce(sum(cost_usd), 0)::float8 AS cost_usd
FROM llm_calls WHERE run_id = %s
GROUP BY 1 ORDER BY 1 NULLS LAST
"""

# Sessions are owned through users: the caller's id may be users.id or users.external_id.
SESSION_OWNER = "(%s::text IS NULL OR s.user_id::text = %s OR u.external_id = %s)"

# Parameters: status, status, owner x3, cursor_ts, cursor_ts, cursor_id, limit.
LIST_SESSIONS = f"""
SELECT s.id, s.thread_id, s.user_id, u.external_id AS user_external_id, s.title, s.status,
       s.metadata, s.created_at, s.updated_at,
       (SELECT count(*) FROM messages m WHERE m.session_id = s.id) AS message_count
FROM sessions s LEFT JOIN users u ON u.id = s.user_id
WHERE (%s::text IS NULL OR s.status = %s)
  AND {SESSION_OWNER}
  AND (%s::timestamptz IS NULL OR (s.updated_at, s.id) < (%s, %s::uuid))
ORDER BY s.updated_at DESC, s.id DESC
LIMIT %s
"""

GET_SESSION = f"""
SELECT s.id, s.thread_id, s.user_id, u.external_id AS user_external_id, s.title, s.status,
       s.metadata, s.created_at, s.updated_at,
       (SELECT count(*) FROM messages m WHERE m.session_id = s.id) AS message_count
FROM sessions s LEFT JOIN users u ON u.id = s.user_id
WHERE s.id = %s AND {SESSION_OWNER}
"""

# Parameters: session id, after id (exclusive), limit.
LIST_MESSAGES = """
SELECT id, message_id, position, role, name, content, content_parts, tool_calls, tool_call_id,
       input_tokens, output_tokens, total_tokens, metadata, created_at
FROM messages WHERE session_id = %s AND id > %s
ORDER BY id
LIMIT %s
"""

FIND_USER = """
SELECT id FROM users WHERE id::text = %s OR external_id = %s
"""

DELETE_USER_RUNS = "DELETE FROM runs WHERE user_id = ANY(%s) RETURNING id"
DELETE_USER = "DELETE FROM users WHERE id = ANY(%s) RETURNING id"
COUNT_USER_SESSIONS = "SELECT count(*) AS n FROM sessions WHERE user_id = ANY(%s)"
COUNT_USER_MESSAGES = """
SELECT count(*) AS n FROM messages m JOIN sessions s ON s.id = m.session_id
WHERE s.user_id = ANY(%s)
"""

# Only finished runs: a running one is still being written by telemetry.
DELETE_OLD_RUNS = """
DELETE FROM runs WHERE started_at < now() - %s AND status <> 'running' RETURNING id
"""


# -- helpers ------------------------------------------------------------------------------


def parse_uuid(value: str | UUID, what: str = "id") -> UUID:
    """``InvalidInput`` (HTTP 422, CLI exit 2) for anything that is not a UUID."""
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError as exc:
        raise InvalidInput(f"{what} must be a UUID, got {value!r}") from exc


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    return limit


def encode_cursor(*parts: Any) -> str:
    """Opaque keyset cursor: URL-safe base64 of a JSON list."""
    raw = json.dumps([p.isoformat() if isinstance(p, datetime) else str(p) for p in parts])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, n: int) -> list[str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"malformed cursor {cursor!r}") from exc
    if not isinstance(parts, list) or len(parts) != n or not all(isinstance(p, str) for p in parts):
        raise InvalidInput(f"malformed cursor {cursor!r}")
    return parts


def _time_cursor(cursor: str | None) -> tuple[datetime | None, UUID | None]:
    if cursor is None:
        return None, None
    ts, ident = decode_cursor(cursor, 2)
    try:
        when = datetime.fromisoformat(ts)
    except ValueError as exc:
        raise InvalidInput(f"malformed cursor {cursor!r}") from exc
    return when, parse_uuid(ident, "cursor")


def _page(rows: list[dict[str, Any]], limit: int, key: tuple[str, ...]) -> Page:
    more = len(rows) > limit
    items = rows[:limit]
    nxt = encode_cursor(*(items[-1][k] for k in key)) if more and items else None
    return {"items": items, "next_cursor": nxt}


# -- operations ---------------------------------------------------------------------------


def list_runs(
    *,
    limit: int = 50,
    cursor: str | None = None,
    status: str | None = None,
    graph_name: str | None = None,
    thread_id: str | None = None,
    user_id: str | None = None,
) -> Op[Page]:
    """Runs newest first, filtered; ``next_cursor`` continues after the last item."""
    limit = _limit(limit)
    ts, ident = _time_cursor(cursor)
    rows = yield Query(
        LIST_RUNS,
        (
            status,
            status,
            graph_name,
            graph_name,
            thread_id,
            thread_id,
            user_id,
            user_id,
            ts,
            ts,
            ident,
            limit + 1,
        ),
    )
    return _page(rows, limit, ("started_at", "id"))


def get_run(run_id: str | UUID, *, user_id: str | None = None) -> Op[dict[str, Any]]:
    """One run; ``NotFound`` when absent or owned by another user."""
    rid = parse_uuid(run_id, "run id")
    rows = yield Query(GET_RUN, (rid, user_id, user_id))
    if not rows:
        raise NotFound(f"no run {rid}")
    return dict(rows[0])


def list_steps(run_id: str | UUID, *, user_id: str | None = None) -> Op[list[dict[str, Any]]]:
    """The run's step timeline, in start order."""
    run = yield from get_run(run_id, user_id=user_id)
    rows = yield Query(LIST_STEPS, (run["id"],))
    return [dict(r) for r in rows]


def list_llm_calls(run_id: str | UUID, *, user_id: str | None = None) -> Op[list[dict[str, Any]]]:
    """The run's LLM calls, in start order."""
    run = yield from get_run(run_id, user_id=user_id)
    rows = yield Query(LIST_LLM_CALLS, (run["id"],))
    return [dict(r) for r in rows]


def run_stats(run_id: str | UUID, *, user_id: str | None = None) -> Op[dict[str, Any]]:
    """Token, cost and latency totals of one run, and a per-model breakdown."""
    run = yield from get_run(run_id, user_id=user_id)
    rows = yield Query(RUN_STATS, {"id": run["id"]})
    stats = dict(rows[0])
    stats["models"] = [dict(r) for r in (yield Query(RUN_MODELS, (run["id"],)))]
    stats["run_id"] = run["id"]
    stats["status"] = run["status"]
    stats["duration_ms"] = run["duration_ms"]
    return stats


def list_sessions(
    *,
    limit: int = 50,
    cursor: str | None = None,
    status: str | None = None,
    user_id: str | None = None,
) -> Op[Page]:
    """Sessions most recently updated first."""
    limit = _limit(limit)
    ts, ident = _time_cursor(cursor)
    rows = yield Query(
        LIST_SESSIONS, (status, status, user_id, user_id, user_id, ts, ts, ident, limit + 1)
    )
    return _page(rows, limit, ("updated_at", "id"))


def get_session(session_id: str | UUID, *, user_id: str | None = None) -> Op[dict[str, Any]]:
    """One session; ``NotFound`` when absent or owned by another user."""
    sid = parse_uuid(session_id, "session id")
    rows = yield Query(GET_SESSION, (sid, user_id, user_id, user_id))
    if not rows:
        raise NotFound(f"no session {sid}")
    return dict(rows[0])


def list_messages(
    session_id: str | UUID,
    *,
    limit: int = 100,
    cursor: str | None = None,
    user_id: str | None = None,
) -> Op[Page]:
    """A session's messages in conversation order."""
    limit = _limit(limit)
    after = 0
    if cursor is not None:
        (raw,) = decode_cursor(cursor, 1)
        try:
            after = int(raw)
        except ValueError as exc:
            raise InvalidInput(f"malformed cursor {cursor!r}") from exc
    session = yield from get_session(session_id, user_id=user_id)
    rows = yield Query(LIST_MESSAGES, (session["id"], after, limit + 1))
    return _page(rows, limit, ("id",))


def purge_user(user: str) -> Op[dict[str, int]]:
    """Delete a user (by id or external id) with their sessions, messages and runs.

    Runs are matched on the given id and on the user's internal id, since telemetry may
    have recorded either.
    """
    if not user:
        raise InvalidInput("user id must not be empty")
    rows = yield Query(FIND_USER, (user, user))
    ids = [r["id"] for r in rows]
    sessions = (yield Query(COUNT_USER_SESSIONS, (ids,)))[0]["n"]
    messages = (yield Query(COUNT_USER_MESSAGES, (ids,)))[0]["n"]
    run_keys = [user, *(str(i) for i in ids)]
    runs = yield Query(DELETE_USER_RUNS, (run_keys,))
    users = yield Query(DELETE_USER, (ids,))  # sessions and messages cascade
    return {"users": len(users), "sessions": sessions, "messages": messages, "runs": len(runs)}


def purge_runs_older_than(days: float) -> Op[int]:
    """Retention: delete finished runs (steps and LLM calls cascade) older than ``days``."""
    if not days > 0:
        raise InvalidInput(f"retention must be a positive number of days, got {days}")
    rows = yield Query(DELETE_OLD_RUNS, (timedelta(days=days),))
    return len(rows)
