"""Read operations the HTTP API and the CLI share (sans-IO, see ``_ops``).

Every list is keyset-paginated (``limit`` + an opaque ``cursor``), newest first for runs and
sessions, oldest first for messages; every operation takes an optional ``user_id`` (the
caller's external id) that keeps it to rows whose ``owner_id`` is the caller, so a row of
another user reads as "not found", never as "forbidden". (The router also runs each request
as that tenant, so row-level security enforces the same when the role is subject to it.)

Runs are read through telemetry's ops (``telemetry.queries``) behind an ownership check;
sessions here add what the API needs over ``conversations`` (message counts, keyset cursors
on messages).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from .._ops import Op, Query
from ..errors import InvalidInput, NotFound
from ..paging import parse_id
from ..telemetry import queries as tq

__all__ = [
    "Page",
    "decode_cursor",
    "encode_cursor",
    "get_run",
    "get_session",
    "grouped_stats",
    "list_messages",
    "list_runs",
    "list_sessions",
    "parse_uuid",
    "plain",
    "purge_runs_older_than",
    "run_stats",
]

MAX_LIMIT = 500

Page = dict[str, Any]
"""``{"items": [...], "next_cursor": str | None}``."""

# -- SQL ----------------------------------------------------------------------------------

# Ownership check before delegating to telemetry's reads (which are unscoped).
RUN_OWNER = "SELECT owner_id FROM runs WHERE id = %s"

RUN_MODELS = """
SELECT coalesce(response_model, request_model) AS model, count(*) AS calls,
       coalesce(sum(total_tokens), 0) AS total_tokens,
       coalesce(sum(cost_usd), 0)::float8 AS cost_usd
FROM llm_calls WHERE run_id = %s
GROUP BY 1 ORDER BY 1 NULLS LAST
"""

SESSION_OWNER = "(%s::text IS NULL OR s.owner_id = %s)"

# Parameters: status, status, owner x2, cursor_ts, cursor_ts, cursor_id, limit.
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

# -- helpers ------------------------------------------------------------------------------


parse_uuid = parse_id
"""``InvalidInput`` (HTTP 422, CLI exit 2) for anything that is not a UUID (``paging``'s)."""


def plain(value: Any) -> Any:
    """Decimals (numeric sums, durations) as floats, so JSON carries numbers, not strings."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


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
    """Runs newest first (telemetry's ``list_runs``), as ``{"items", "next_cursor"}``."""
    page = yield from tq.list_runs(
        limit=_limit(limit), cursor=cursor, status=status, graph_name=graph_name,
        thread_id=thread_id, owner_id=user_id,
    )  # fmt: skip
    return {"items": [plain(r) for r in page["items"]], "next_cursor": page["next_cursor"]}


def _owned(run_id: str | UUID, user_id: str | None) -> Op[UUID]:
    """The run's id, or ``NotFound`` when absent or another user's."""
    rid = parse_uuid(run_id, "run id")
    rows = yield Query(RUN_OWNER, (rid,))
    if not rows or (user_id is not None and rows[0]["owner_id"] != user_id):
        raise NotFound(f"no run {rid}")
    return rid


def get_run(run_id: str | UUID, *, user_id: str | None = None) -> Op[dict[str, Any]]:
    """The run with its steps and LLM calls (telemetry's ``get_run``), scoped to the caller."""
    rid = yield from _owned(run_id, user_id)
    detail = yield from tq.get_run(rid)
    out: dict[str, Any] = plain(dict(detail))
    return out


def run_stats(run_id: str | UUID, *, user_id: str | None = None) -> Op[dict[str, Any]]:
    """Telemetry's ``run_stats`` plus a per-model breakdown, scoped to the caller."""
    rid = yield from _owned(run_id, user_id)
    stats = dict((yield from tq.run_stats(rid)))
    stats["models"] = [dict(r) for r in (yield Query(RUN_MODELS, (rid,)))]
    out: dict[str, Any] = plain(stats)
    return out


def grouped_stats(
    by: str,
    *,
    user_id: str | None = None,
    thread_id: str | None = None,
    graph_name: str | None = None,
) -> Op[list[dict[str, Any]]]:
    """Telemetry's ``stats``: totals per session, user, graph, model or UTC day."""
    filters = {"owner_id": user_id, "thread_id": thread_id, "graph_name": graph_name}
    rows = yield from tq.stats(by, **{k: v for k, v in filters.items() if v is not None})  # type: ignore[arg-type]
    return [plain(dict(r)) for r in rows]


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
    rows = yield Query(LIST_SESSIONS, (status, status, user_id, user_id, ts, ts, ident, limit + 1))
    return _page(rows, limit, ("updated_at", "id"))


def get_session(session_id: str | UUID, *, user_id: str | None = None) -> Op[dict[str, Any]]:
    """One session; ``NotFound`` when absent or owned by another user."""
    sid = parse_uuid(session_id, "session id")
    rows = yield Query(GET_SESSION, (sid, user_id, user_id))
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


def purge_runs_older_than(days: float) -> Op[int]:
    """Retention: telemetry's ``purge_runs_older_than`` (the admin path only)."""
    return tq.purge_runs_older_than(days)
