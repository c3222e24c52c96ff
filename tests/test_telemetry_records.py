"""The record types, the generated SQL and the schema declaration agree column for column."""

from __future__ import annotations

import psycopg
import pytest

from langgraph_pgstore.schema.telemetry import llm_calls, runs, steps
from langgraph_pgstore.telemetry import records, sql

TABLES = [
    (runs, records.RUN_COLS, sql.UPSERT_RUNS),
    (steps, records.STEP_COLS, sql.UPSERT_STEPS),
    (llm_calls, records.LLM_COLS, sql.UPSERT_LLM_CALLS),
]


@pytest.mark.parametrize(("table", "cols", "upsert"), TABLES, ids=lambda t: getattr(t, "name", ""))
def test_record_columns_match_the_schema(table, cols, upsert) -> None:
    assert list(cols) == [c.name for c in table.columns]
    insert_list = upsert.split("(", 1)[1].split(")", 1)[0]
    assert [c.strip() for c in insert_list.split(",")] == list(cols)
    recordset = upsert.split(" AS s(", 1)[1].split(")\n", 1)[0]
    assert [c.split()[0] for c in recordset.split(", ")] == list(cols)


def test_records_match_the_migrated_database(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        for table, cols, _ in TABLES:
            rows = conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                "ORDER BY ordinal_position",
                (table.name,),
            ).fetchall()
            assert [r[0] for r in rows] == list(cols), table.name
