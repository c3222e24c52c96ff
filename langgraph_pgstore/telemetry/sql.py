"""The writer's SQL: upserts generated from the record types, and the write operation.

Each upsert is ``INSERT ... ON CONFLICT (id) DO UPDATE`` where every column keeps what the
database has unless this batch knows better (``COALESCE(new, old)``), so starts and ends
written in different batches, in either order, meet in one row, and writing a batch twice
(a retry after a lost connection, a spill replayed) changes nothing. For ``runs``::

    INSERT INTO runs AS t (id, graph_name, ..., status, ...)
    VALUES (%(id)s, %(graph_name)s, ..., COALESCE(%(status)s, 'running'), ...)
    ON CONFLICT (id) DO UPDATE SET
        graph_name = COALESCE(%(graph_name)s, t.graph_name), ...,
        status = CASE WHEN %(status)s IS NULL OR %(status)s = 'running' THEN t.status
                      ELSE %(status)s END, ...

Parameters are the row dicts of ``rows.py`` (named, one per column).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from .._ops import Op, Query
from .records import LLM_COLS, RUN_COLS, STEP_COLS
from .rows import Rows

__all__ = [
    "CLOSE_ORPHAN_LLM_CALLS",
    "CLOSE_ORPHAN_STEPS",
    "UPSERT_LLM_CALLS",
    "UPSERT_RUNS",
    "UPSERT_RUN_STUBS",
    "UPSERT_STEPS",
    "close_orphans",
    "upsert_sql",
    "write_rows",
]

#: A terminal status never goes back to 'running' (an end may be written before its start).
_STATUS = "CASE WHEN {p} IS NULL OR {p} = 'running' THEN t.{c} ELSE {p} END"


def upsert_sql(
    table: str,
    cols: Sequence[str],
    *,
    defaults: Mapping[str, str] = {},
    values: Mapping[str, str] = {},
    updates: Mapping[str, str] = {},
) -> str:
    """``INSERT ... ON CONFLICT (id) DO UPDATE`` over ``cols`` with named parameters.

    ``defaults``: SQL used when the parameter is NULL on insert (the column's default);
    ``values``/``updates``: replace the insert value / the update expression of a column
    (``{p}`` is the parameter, ``{c}`` the column). Every other column updates as
    ``COALESCE(%(col)s, t.col)``.
    """
    ins, sets = [], []
    for c in cols:
        p = f"%({c})s"
        if c in values:
            ins.append(values[c].format(p=p, c=c))
        elif c in defaults:
            ins.append(f"COALESCE({p}, {defaults[c]})")
        else:
            ins.append(p)
        if c != "id":
            expr = updates.get(c, "COALESCE({p}, t.{c})")
            sets.append(f"    {c} = {expr.format(p=p, c=c)}")
    return (
        f"INSERT INTO {table} AS t ({', '.join(cols)})\n"
        f"VALUES ({', '.join(ins)})\n"
        f"ON CONFLICT (id) DO UPDATE SET\n" + ",\n".join(sets)
    )


UPSERT_RUN_STUBS = "INSERT INTO runs (id) SELECT unnest(%s::uuid[]) ON CONFLICT (id) DO NOTHING"

UPSERT_RUNS = upsert_sql(
    "runs",
    RUN_COLS,
    defaults={"status": "'running'", "metadata": "'{}'::jsonb", "started_at": "now()"},
    # a reused idempotency key is not an error: the later run is recorded without it
    values={
        "idempotency_key": "(SELECT {p}::text WHERE NOT EXISTS (SELECT 1 FROM runs x"
        " WHERE x.idempotency_key = {p} AND x.id <> %(id)s))"
    },
    updates={"status": _STATUS, "idempotency_key": "COALESCE(t.{c}, EXCLUDED.{c})"},
)

UPSERT_STEPS = upsert_sql(
    "steps",
    STEP_COLS,
    defaults={
        "kind": "'node'",
        "checkpoint_ns": "''",
        "attempt": "1",
        "status": "'running'",
        "started_at": "now()",
    },
    updates={"status": _STATUS},
)

UPSERT_LLM_CALLS = upsert_sql(
    "llm_calls",
    LLM_COLS,
    defaults={
        "operation_name": "'chat'",
        "streamed": "false",
        "status": "'running'",
        "started_at": "now()",
    },
    updates={"status": _STATUS},
)

# Orphans take the run's terminal status (and its error when they have none of their own):
# a cancelled LLM call never reports an end.
CLOSE_ORPHAN_STEPS = """
UPDATE steps s SET status = r.status, completed_at = r.completed_at,
       error_type = COALESCE(s.error_type, r.error_type),
       error_message = COALESCE(s.error_message, r.error_message)
  FROM runs r
 WHERE r.id = ANY(%s::uuid[]) AND s.run_id = r.id AND s.status = 'running'
   AND r.status <> 'running'
"""
CLOSE_ORPHAN_LLM_CALLS = """
UPDATE llm_calls c SET status = r.status, completed_at = r.completed_at,
       error_type = COALESCE(c.error_type, r.error_type),
       error_message = COALESCE(c.error_message, r.error_message)
  FROM runs r
 WHERE r.id = ANY(%s::uuid[]) AND c.run_id = r.id AND c.status = 'running'
   AND r.status <> 'running'
"""


def write_rows(rows: Rows) -> Op[None]:
    """Write one batch: run stubs, upserts, then close orphans of the runs that ended.

    Stub ``runs`` rows come first for every run a step or call points at: a start lost to
    overflow (or rejected) must not make its children fail the foreign key.
    """
    referenced = {r["run_id"] for r in rows.steps.values()} | {
        r["run_id"] for r in rows.calls.values()
    }
    stubs = [rid for rid in referenced if rid not in rows.runs]
    if stubs:
        yield Query(UPSERT_RUN_STUBS, (stubs,))
    for sql, table in (
        (UPSERT_RUNS, rows.runs),
        (UPSERT_STEPS, rows.steps),
        (UPSERT_LLM_CALLS, rows.calls),
    ):
        if table:
            params: list[Mapping[str, Any]] = list(table.values())
            yield Query(sql, many=params)
    if rows.ended:
        yield from close_orphans(rows.ended)


def close_orphans(ended: list[UUID]) -> Op[None]:
    """Steps and calls of ended runs still 'running' take the run's terminal status."""
    yield Query(CLOSE_ORPHAN_STEPS, (ended,))
    yield Query(CLOSE_ORPHAN_LLM_CALLS, (ended,))
