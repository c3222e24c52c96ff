"""Row-level security: an application role scoped to user A can't see, count or delete B's rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from langchain_core.messages import AIMessage
from langgraph.graph import START, MessagesState, StateGraph
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from langgraph_pgstore import ConfigurationError, Database, NotFound

GRANTS = (
    "GRANT CONNECT ON DATABASE {db} TO {role}",
    "GRANT USAGE ON SCHEMA public TO {role}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
    "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
)
TABLES = ("users", "sessions", "messages", "runs", "steps", "memory_items")


@pytest.fixture
def app_url(db_url: str) -> Iterator[str]:
    """A login role with DML rights only (not the tables' owner, so policies bind it)."""
    role = f"app_{uuid.uuid4().hex[:8]}"
    dbname = conninfo_to_dict(db_url)["dbname"]
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        for grant in GRANTS:
            conn.execute(
                sql.SQL(grant).format(db=sql.Identifier(dbname), role=sql.Identifier(role))
            )
    yield make_conninfo(db_url, user=role)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def _seed(db: Database) -> None:
    """Two users, each with a thread (sessions, messages), a recorded run and a memory."""

    def reply(state: MessagesState) -> dict[str, list[AIMessage]]:
        return {"messages": [AIMessage("ok")]}

    builder = StateGraph(MessagesState)
    builder.add_node("reply", reply)
    builder.add_edge(START, "reply")
    graph = db.telemetry.instrument(builder.compile(checkpointer=db.checkpointer))
    for user in ("alice", "bob"):
        config = {"configurable": {"thread_id": f"t-{user}"}, "metadata": {"user_id": user}}
        graph.invoke({"messages": [("user", f"I am {user}")]}, config)
        db.store.put(("users", user), "profile", {"name": user})
    assert db.telemetry.flush(10)


def _counts(db: Database) -> dict[str, int]:
    with db.pool.connection() as conn:
        return {
            t: conn.execute(f"SELECT count(*) AS n FROM {t}").fetchone()["n"]  # type: ignore[index]
            for t in TABLES
        }


def test_tenant_sees_only_its_own_rows(db: Database, app_url: str) -> None:
    _seed(db)
    everything = _counts(db)
    assert everything["sessions"] == 2 and everything["memory_items"] == 2
    bob_session = db.conversations.get_session_by_thread("t-bob")

    with Database.connect(app_url, tenant="alice") as alice:
        seen = _counts(alice)
        assert seen["sessions"] == 1 and seen["users"] == 1 and seen["runs"] == 1
        assert seen["memory_items"] == 1
        assert 0 < seen["messages"] < everything["messages"]
        assert [s.thread_id for s in alice.conversations.list_sessions().items] == ["t-alice"]
        with pytest.raises(NotFound):
            alice.conversations.get_session(bob_session.id)
        assert alice.store.get(("users", "bob"), "profile") is None
        assert alice.store.get(("users", "alice"), "profile") is not None
        assert [r["user_id"] for r in alice.telemetry.list_runs()["items"]] == ["alice"]
        with alice.pool.connection() as conn:
            gone = conn.execute("DELETE FROM sessions WHERE thread_id = 't-bob'").rowcount
            assert gone == 0
            denied = "INSERT INTO runs (id, user_id) VALUES (gen_random_uuid(), 'bob')"
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(denied)

    assert _counts(db) == everything  # bob's rows all still there
    with Database.connect(app_url, tenant="bob") as bob:
        assert [s.thread_id for s in bob.conversations.list_sessions().items] == ["t-bob"]


def test_unscoped_role_sees_everything_and_tenant_is_validated(db: Database, app_url: str) -> None:
    _seed(db)
    with Database.connect(app_url) as app:
        assert _counts(app) == _counts(db)
    with pytest.raises(ConfigurationError):
        Database.connect(app_url, tenant="alice' OR true --").__enter__()
