"""What one user owns, across every table: claim, export (right of access), purge (erasure).

A row belongs to a user when its ``owner_id`` is the user's external id. A thread belongs to
the user who owns its session or its checkpoints; rows of such a thread that have no owner
(written before the user was known, e.g. a first turn without ``user_id``, or with message
mirroring off) belong to that user too. Nothing is inferred from namespace labels, emails or
internal ids.

Export and purge are maintenance: they run through the admin path (a role that bypasses
row-level security, or any role while tenancy is off) and refuse otherwise
(:func:`tenancy.require_admin`).
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from langgraph.checkpoint.serde.base import SerializerProtocol
from psycopg import sql

from ._ops import Op, Query
from .errors import NotFound
from .tenancy import OWNED_TABLES, require_admin, validate_id

__all__ = ["claim_thread", "export_user", "jsonable", "purge_user"]

#: A user's threads: those of their sessions and of their checkpoints.
THREADS_SQL = """
SELECT thread_id FROM sessions WHERE owner_id = %(u)s
UNION SELECT DISTINCT thread_id FROM checkpoints WHERE owner_id = %(u)s
"""
PRESENT_SQL = "SELECT t FROM unnest(%s::text[]) AS t WHERE to_regclass(t) IS NOT NULL"

_IN_THREADS = "owner_id IS NULL AND thread_id = ANY(%(threads)s)"
_IN_SESSIONS = (
    "owner_id IS NULL AND session_id IN "
    "(SELECT id FROM sessions WHERE thread_id = ANY(%(threads)s))"
)
_IN_RUNS = (
    "owner_id IS NULL AND run_id IN (SELECT id FROM runs WHERE thread_id = ANY(%(threads)s) "
    "AND (owner_id IS NULL OR owner_id = %(u)s))"
)
#: Which rows of each table are the user's, children before parents (the purge order).
ROWS_OF_USER: dict[str, str] = {
    "checkpoint_writes": f"owner_id = %(u)s OR ({_IN_THREADS})",
    "checkpoint_blobs": f"owner_id = %(u)s OR ({_IN_THREADS})",
    "checkpoints": f"owner_id = %(u)s OR ({_IN_THREADS})",
    "llm_calls": f"owner_id = %(u)s OR ({_IN_THREADS})",
    "steps": f"owner_id = %(u)s OR ({_IN_RUNS})",
    "runs": f"owner_id = %(u)s OR ({_IN_THREADS})",
    "memory_vectors": "owner_id = %(u)s",
    "memory_items": "owner_id = %(u)s",
    "chain_analysis_results": f"owner_id = %(u)s OR ({_IN_SESSIONS})",
    "messages": f"owner_id = %(u)s OR ({_IN_SESSIONS})",
    "sessions": f"owner_id = %(u)s OR ({_IN_THREADS})",
    "users": "owner_id = %(u)s",
}
assert set(ROWS_OF_USER) == set(OWNED_TABLES)

#: When a thread's session gets its first owner, the thread's unowned rows become theirs.
CLAIM_SQL = (
    "UPDATE checkpoints SET owner_id = %(u)s WHERE thread_id = %(thread)s AND owner_id IS NULL",
    "UPDATE checkpoint_blobs SET owner_id = %(u)s "
    "WHERE thread_id = %(thread)s AND owner_id IS NULL",
    "UPDATE checkpoint_writes SET owner_id = %(u)s "
    "WHERE thread_id = %(thread)s AND owner_id IS NULL",
    "UPDATE messages SET owner_id = %(u)s WHERE session_id = %(session)s AND owner_id IS NULL",
    "UPDATE chain_analysis_results SET owner_id = %(u)s "
    "WHERE session_id = %(session)s AND owner_id IS NULL",
    "UPDATE runs SET owner_id = %(u)s WHERE thread_id = %(thread)s AND owner_id IS NULL",
    "UPDATE steps SET owner_id = %(u)s WHERE owner_id IS NULL "
    "AND run_id IN (SELECT id FROM runs WHERE thread_id = %(thread)s AND owner_id = %(u)s)",
    "UPDATE llm_calls SET owner_id = %(u)s WHERE thread_id = %(thread)s AND owner_id IS NULL",
)


def claim_thread(thread_id: str, session_id: UUID, owner: str) -> Op[None]:
    """Give ``owner`` the rows of a thread that have none (its session just got its owner)."""
    params = {"u": owner, "thread": thread_id, "session": session_id}
    for statement in CLAIM_SQL:
        yield Query(statement, params)


def _selection(external_id: str) -> Op[tuple[dict[str, Any], list[str]]]:
    """Parameters of :data:`ROWS_OF_USER` and the tables present (memory_vectors needs
    pgvector)."""
    u = validate_id(external_id)
    threads = [r["thread_id"] for r in (yield Query(THREADS_SQL, {"u": u}))]
    present = {r["t"] for r in (yield Query(PRESENT_SQL, (list(ROWS_OF_USER),)))}
    return {"u": u, "threads": threads}, [t for t in ROWS_OF_USER if t in present]


def purge_user(external_id: str) -> Op[dict[str, int]]:
    """Delete every row the user owns, in every table; returns rows deleted per table.

    ``NotFound`` when there is neither a users row nor any owned row.
    """
    yield from require_admin("purge_user")
    params, tables = yield from _selection(external_id)
    counts: dict[str, int] = {}
    for table in tables:
        rows = yield Query(
            sql.SQL(
                "WITH d AS (DELETE FROM {} WHERE {} RETURNING 1) SELECT count(*) AS n FROM d"
            ).format(sql.Identifier(table), sql.SQL(ROWS_OF_USER[table])),
            params,
        )
        counts[table] = int(rows[0]["n"])
    if not any(counts.values()):
        raise NotFound(f"no user {params['u']!r} and no rows owned by them")
    return counts


#: Checkpoint tables whose ``blob`` column is decoded with the saver's serializer.
_BLOB_TABLES = ("checkpoint_blobs", "checkpoint_writes")


def export_user(external_id: str, serde: SerializerProtocol) -> Op[dict[str, Any]]:
    """Everything held about the user, as JSON-ready data (checkpoint blobs decoded).

    ``{"external_id", "exported_at", "user": users row | None, "tables": {table: [rows]}}``.
    """
    yield from require_admin("export_user")
    params, tables = yield from _selection(external_id)
    out: dict[str, list[dict[str, Any]]] = {}
    for table in tables:
        rows = yield Query(
            sql.SQL("SELECT * FROM {} WHERE {}").format(
                sql.Identifier(table), sql.SQL(ROWS_OF_USER[table])
            ),
            params,
        )
        out[table] = [_export_row(table, dict(r), serde) for r in rows]
    users = out.get("users", [])
    if not users and not any(out.values()):
        raise NotFound(f"no user {params['u']!r} and no rows owned by them")
    return {
        "external_id": params["u"],
        "exported_at": datetime.now(UTC).isoformat(),
        "user": users[0] if users else None,
        "tables": out,
    }


def _export_row(table: str, row: dict[str, Any], serde: SerializerProtocol) -> dict[str, Any]:
    if table in _BLOB_TABLES:
        kind, blob = row.pop("type"), row.pop("blob")
        row["type"] = kind
        row["value"] = (
            None if kind == "empty" or blob is None else (serde.loads_typed((kind, bytes(blob))))
        )
    if isinstance(row.get("embedding"), str):  # pgvector's text form is a JSON array
        row["embedding"] = json.loads(row["embedding"])
    return {k: jsonable(v) for k, v in row.items()}


def jsonable(value: Any) -> Any:
    """A JSON-serialisable copy: messages and models dumped, times as ISO-8601, bytes base64."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return {"base64": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if hasattr(value, "model_dump"):
        return jsonable(value.model_dump())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if hasattr(value, "_asdict"):  # NamedTuple (Send, Interrupt, ...)
        return jsonable(value._asdict())
    return repr(value)
