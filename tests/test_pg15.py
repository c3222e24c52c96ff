"""The no-pgvector path on Debian's PostgreSQL 15: migrations, checkpointer, clear errors."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from alembic import command
from langgraph.graph import END, START, MessagesState, StateGraph
from pg15 import find_bindir, postgres15
from psycopg.conninfo import make_conninfo

from langgraph_pgstore import AsyncDatabase, Database, ExtensionMissing, Settings
from langgraph_pgstore._ops import run
from langgraph_pgstore.conversations.ops import embed_pending
from langgraph_pgstore.migrate import (
    alembic_config,
    downgrade,
    engine_for_url,
    head_revision,
    migrate,
)

pytestmark = pytest.mark.pg15

BINDIR, WHY_NOT = find_bindir()


@pytest.fixture(scope="module")
def pg15_url() -> Iterator[str]:
    if BINDIR is None:
        pytest.skip(WHY_NOT)
    with postgres15() as admin_url:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE agent")
        url = make_conninfo(admin_url, dbname="agent")
        migrate(url)
        yield url


def _graph() -> StateGraph:
    def reply(state: MessagesState) -> dict[str, list[tuple[str, str]]]:
        return {"messages": [("ai", f"seen {len(state['messages'])}")]}

    builder = StateGraph(MessagesState)
    builder.add_node("reply", reply)
    builder.add_edge(START, "reply")
    builder.add_edge("reply", END)
    return builder


def test_server_is_15_without_pgvector(pg15_url: str) -> None:
    with psycopg.connect(pg15_url) as conn:
        assert conn.info.server_version // 10000 == 15
        available = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
        ).fetchall()
        assert available == []


def test_migrations_without_pgvector(pg15_url: str) -> None:
    assert migrate(pg15_url) == head_revision()  # idempotent
    with psycopg.connect(pg15_url) as conn:
        cols = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'messages'"
        ).fetchall()
    names = {c[0] for c in cols}
    assert {"content", "role", "session_id"} <= names
    assert "embedding" not in names
    engine = engine_for_url(pg15_url, Settings.resolve(pg15_url))
    try:
        with engine.connect() as conn:
            command.check(alembic_config(conn))  # vector column skipped on purpose
    finally:
        engine.dispose()
    downgrade(pg15_url, "base")
    assert migrate(pg15_url) == head_revision()


def test_checkpointer_graph_runs(pg15_url: str) -> None:
    with Database.connect(pg15_url, max_size=2) as db:
        graph = _graph().compile(checkpointer=db.checkpointer)
        config = {"configurable": {"thread_id": "pg15-sync"}}
        graph.invoke({"messages": [("human", "hello")]}, config)
        graph.invoke({"messages": [("human", "again")]}, config)
        state = graph.get_state(config)
        assert [m.content for m in state.values["messages"]] == [
            "hello",
            "seen 1",
            "again",
            "seen 3",
        ]
        assert len(list(graph.get_state_history(config))) >= 4


async def test_async_checkpointer_graph_runs(pg15_url: str) -> None:
    async with AsyncDatabase.connect(pg15_url, max_size=2) as adb:
        graph = _graph().compile(checkpointer=adb.checkpointer)
        config = {"configurable": {"thread_id": "pg15-async"}}
        await graph.ainvoke({"messages": [("human", "hello")]}, config)
        state = await graph.aget_state(config)
        assert [m.content for m in state.values["messages"]] == ["hello", "seen 1"]


def test_health_reports_vector_missing(pg15_url: str) -> None:
    with Database.connect(pg15_url, max_size=2) as db:
        report = db.health()
    assert report.ok  # degraded, not unhealthy: checkpoints still work
    assert report.server_version is not None and report.server_version.startswith("15")
    assert "vector" not in report.extensions or not report.extensions["vector"]["installed"]
    assert any("pgvector" in p for p in report.problems)
    assert report.revision == head_revision()


def test_vector_feature_raises_extension_missing(pg15_url: str) -> None:
    def embed(texts: list[str]) -> list[list[float]]:
        return [[0.1, 0.2, 0.3] for _ in texts]

    with (
        Database.connect(pg15_url, max_size=2) as db,
        pytest.raises(ExtensionMissing, match="vector") as info,
    ):
        run(db.pool, embed_pending(embed))  # type: ignore[arg-type]
    assert info.value.extension == "vector"
