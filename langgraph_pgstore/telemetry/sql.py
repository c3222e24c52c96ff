"""The writer's SQL: one upsert per table, generated from the record types, and the write op.

A batch is sent as one JSON array per table and expanded by the server
(``jsonb_to_recordset``): one statement and one parameter per table, serialised by the C JSON
encoder, instead of a parameter per column per row. For ``steps``::

    INSERT INTO steps AS t (id, run_id, ..., kind, ..., started_at, completed_at)
    SELECT s.id, s.run_id, ..., COALESCE(s.kind, 'node'), ...,
           COALESCE(to_timestamp(s.started_at), now()), to_timestamp(s.completed_at)
      FROM jsonb_to_recordset(%s::jsonb)
           AS s(id uuid, run_id uuid, ..., kind text, ..., started_at float8, completed_at float8)
    ON CONFLICT (id) DO UPDATE SET
        run_id = COALESCE(EXCLUDED.run_id, t.run_id), ...,
        kind = CASE WHEN EXCLUDED.kind IS NOT DISTINCT FROM 'node' THEN t.kind
                    ELSE EXCLUDED.kind END, ...

Every column keeps what the database has unless this batch knows better: NULL (or, for a
column with a default, the default itself) means "not known from this batch". So starts and
ends written in different batches, in either order, meet in one row (a terminal status never
goes back to 'running', an end-only row's ``now()`` start never replaces a real one), and
writing a batch twice (a retry, a spill replayed) changes nothing. Times travel as epoch
seconds, jsonb values as JSON spliced in unparsed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from .._ops import Op, Query
from ..tenancy import SET_TENANT_SQL
from .records import LlmCall, Run, Step
from .rows import RawJson, Rows

__all__ = [
    "CLOSE_ORPHAN_LLM_CALLS",
    "CLOSE_ORPHAN_STEPS",
    "UPSERT_LLM_CALLS",
    "UPSERT_RUNS",
    "UPSERT_RUN_STUBS",
    "UPSERT_STEPS",
    "close_orphans",
    "encode",
    "upsert_sql",
    "write_rows",
]

#: Record annotation (its first type) -> type in the JSON record set.
_SQL_TYPES = {
    "UUID": "uuid",
    "str": "text",
    "int": "int",
    "float": "float8",
    "bool": "boolean",
    "Decimal": "numeric",
    "datetime": "float8",  # epoch seconds, converted with to_timestamp()
    "Any": "jsonb",
    "dict[str, Any]": "jsonb",
    "list[str]": "text[]",
}


def _types(record: type) -> dict[str, str]:
    """Column -> record-set type, from the record's annotations (kept as source text)."""
    out = {}
    for name, ann in record.__annotations__.items():
        text = getattr(ann, "__forward_arg__", ann)
        out[name] = _SQL_TYPES[str(text).split(" | ")[0]]
    return out


def upsert_sql(
    table: str,
    record: type,
    *,
    defaults: Mapping[str, str] = {},
    values: Mapping[str, str] = {},
    updates: Mapping[str, str] = {},
) -> str:
    """The upsert of ``record``'s columns from ``jsonb_to_recordset(%s::jsonb)``.

    ``defaults``: SQL used when the value is NULL on insert (the column's default; also read
    as "unknown" on update); ``values``/``updates``: replace the insert expression / the update
    expression of a column (``{c}`` is the column, ``{v}`` the record-set value).
    """
    types = _types(record)
    cols = list(types)
    ins, sets = [], []
    for c in cols:
        v = f"to_timestamp(s.{c})" if c.endswith("_at") else f"s.{c}"
        if c in values:
            ins.append(values[c].format(c=c, v=v))
        elif c in defaults:
            ins.append(f"COALESCE({v}, {defaults[c]})")
        else:
            ins.append(v)
        if c == "id":
            continue
        if c in updates:
            expr = updates[c].format(c=c, v=v)
        elif c in defaults:
            unknown = f"EXCLUDED.{c} IS NOT DISTINCT FROM {defaults[c]}"
            expr = f"CASE WHEN {unknown} THEN t.{c} ELSE EXCLUDED.{c} END"
        else:
            expr = f"COALESCE(EXCLUDED.{c}, t.{c})"
        sets.append(f"    {c} = {expr}")
    recordset = ", ".join(f"{c} {t}" for c, t in types.items())
    return (
        f"INSERT INTO {table} AS t ({', '.join(cols)})\n"
        f"SELECT {', '.join(ins)}\n"
        f"  FROM jsonb_to_recordset(%s::jsonb) AS s({recordset})\n"
        f"ON CONFLICT (id) DO UPDATE SET\n" + ",\n".join(sets)
    )


UPSERT_RUN_STUBS = """
INSERT INTO runs (id, owner_id) SELECT * FROM unnest(%s::uuid[], %s::text[])
ON CONFLICT (id) DO NOTHING
"""
#: The first owner of a row stays its owner.
_FIRST_OWNER = {"owner_id": "COALESCE(t.{c}, EXCLUDED.{c})"}

UPSERT_RUNS = upsert_sql(
    "runs",
    Run,
    defaults={"status": "'running'", "metadata": "'{}'::jsonb", "started_at": "now()"},
    # a reused idempotency key is not an error: the later run is recorded without it
    values={
        "idempotency_key": "(SELECT {v} WHERE NOT EXISTS (SELECT 1 FROM runs x"
        " WHERE x.idempotency_key = {v} AND x.id <> s.id))"
    },
    updates={"idempotency_key": "COALESCE(t.{c}, EXCLUDED.{c})", **_FIRST_OWNER},
)

UPSERT_STEPS = upsert_sql(
    "steps",
    Step,
    defaults={
        "kind": "'node'",
        "node_name": "'?'",
        "checkpoint_ns": "''",
        "attempt": "1",
        "status": "'running'",
        "started_at": "now()",
    },
    updates=_FIRST_OWNER,
)

UPSERT_LLM_CALLS = upsert_sql(
    "llm_calls",
    LlmCall,
    defaults={
        "operation_name": "'chat'",
        "streamed": "false",
        "status": "'running'",
        "started_at": "now()",
    },
    updates=_FIRST_OWNER,
)

# Orphans take the run's terminal status (and its error when they have none of their own):
# a cancelled LLM call never reports an end. {table} is one of the two literals below.
_CLOSE_ORPHANS = """
UPDATE {table} o SET status = r.status, completed_at = r.completed_at,
       error_type = COALESCE(o.error_type, r.error_type),
       error_message = COALESCE(o.error_message, r.error_message)
  FROM runs r
 WHERE r.id = ANY(%s::uuid[]) AND o.run_id = r.id AND o.status = 'running'
   AND r.status <> 'running'
"""
CLOSE_ORPHAN_STEPS = _CLOSE_ORPHANS.format(table="steps")
CLOSE_ORPHAN_LLM_CALLS = _CLOSE_ORPHANS.format(table="llm_calls")


def _plain(value: Any) -> str:
    return str(value)  # UUID, Decimal


def encode(rows: Sequence[Mapping[str, Any]]) -> str:
    """The JSON array of ``rows``; ``RawJson`` values are spliced in without re-parsing."""
    parts = []
    for row in rows:
        raw = [(k, v) for k, v in row.items() if type(v) is RawJson]
        if not raw:
            parts.append(json.dumps(row, default=_plain, ensure_ascii=False))
            continue
        plain = {k: v for k, v in row.items() if type(v) is not RawJson}
        text = json.dumps(plain, default=_plain, ensure_ascii=False)
        spliced = "".join(f', "{k}": {v}' for k, v in raw)
        parts.append(text[:-1] + spliced + "}")
    return "[" + ", ".join(parts) + "]"


def _unique_idempotency_keys(runs: dict[UUID, dict[str, Any]]) -> None:
    """Within one statement two new runs can't both claim a key: the later one goes without."""
    seen: set[str] = set()
    for row in runs.values():
        key = row.get("idempotency_key")
        if key is not None:
            if key in seen:
                row["idempotency_key"] = None
            seen.add(key)


def write_rows(rows: Rows) -> Op[None]:
    """Write one batch: per tenant of its runs (unscoped rows first, so nothing needs
    resetting), the tenant set in the transaction, then run stubs, one upsert per table and the
    closing of orphans of ended runs. With no tenant in the batch nothing extra is sent.

    Stub ``runs`` rows come first for every run a step or call points at: a start lost to
    overflow (or rejected) must not make its children fail the foreign key.
    """
    groups = sorted({rows.tenants.get(rid) for rid in _run_ids(rows)}, key=lambda t: t or "")
    for tenant in groups:
        part = _part(rows, tenant) if groups != [None] else rows
        if tenant is not None:
            yield Query(SET_TENANT_SQL, (tenant,))
        yield from _write_part(part)


def _run_ids(rows: Rows) -> set[UUID]:
    return (
        set(rows.runs)
        | {r["run_id"] for r in rows.steps.values()}
        | {r["run_id"] for r in rows.calls.values()}
        | set(rows.ended)
    )


def _part(rows: Rows, tenant: str | None) -> Rows:
    """The rows of runs written for ``tenant``."""

    def mine(rid: UUID) -> bool:
        return rows.tenants.get(rid) == tenant

    return Rows(
        runs={k: v for k, v in rows.runs.items() if mine(k)},
        steps={k: v for k, v in rows.steps.items() if mine(v["run_id"])},
        calls={k: v for k, v in rows.calls.items() if mine(v["run_id"])},
        ended=[rid for rid in rows.ended if mine(rid)],
    )


def _write_part(rows: Rows) -> Op[None]:
    referenced = {r["run_id"]: r["owner_id"] for r in (*rows.steps.values(), *rows.calls.values())}
    stubs = [(rid, owner) for rid, owner in referenced.items() if rid not in rows.runs]
    if stubs:
        yield Query(UPSERT_RUN_STUBS, ([r for r, _ in stubs], [o for _, o in stubs]))
    _unique_idempotency_keys(rows.runs)
    for sql, table in (
        (UPSERT_RUNS, rows.runs),
        (UPSERT_STEPS, rows.steps),
        (UPSERT_LLM_CALLS, rows.calls),
    ):
        if table:
            yield Query(sql, (encode(list(table.values())),))
    if rows.ended:
        yield from close_orphans(rows.ended)


def close_orphans(ended: list[UUID]) -> Op[None]:
    """Steps and calls of ended runs still 'running' take the run's terminal status."""
    yield Query(CLOSE_ORPHAN_STEPS, (ended,))
    yield Query(CLOSE_ORPHAN_LLM_CALLS, (ended,))
