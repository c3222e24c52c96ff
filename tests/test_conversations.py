"""Repository API against the real database: users, sessions, messages, analysis, deletion,
purge, embeddings and bad input (sync and async)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, TypedDict

import psycopg
import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages

from langgraph_pgstore import (
    AsyncDatabase,
    ChainAnalysis,
    ChainLink,
    Database,
    InvalidInput,
    NotFound,
)


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def _chat(state: State) -> dict[str, Any]:
    return {"messages": [AIMessage(f"re: {state['messages'][-1].text}")]}


def run_chat(db: Database, thread: str, user: str, texts: list[str]) -> None:
    g = StateGraph(State)
    g.add_node("chat", _chat)
    g.add_edge(START, "chat")
    graph = g.compile(checkpointer=db.checkpointer)
    cfg: dict[str, Any] = {"configurable": {"thread_id": thread}, "metadata": {"user_id": user}}
    for t in texts:
        graph.invoke({"messages": [HumanMessage(t)]}, cfg)


def table_counts(db: Database) -> dict[str, int]:
    with psycopg.connect(db.url) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
        ]
        return {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}  # type: ignore[index]


def test_users_get_or_create_and_bulk_upsert(db: Database) -> None:
    c = db.conversations
    u, created = c.get_or_create_user("ext-1", email="a@example.com", name="A")
    assert created and u.name == "A" and u.owner_id == "ext-1"
    again, created = c.get_or_create_user("ext-1")
    assert not created and again.id == u.id
    # email is an attribute, never a match key: another id with the same email is another user
    other, created = c.get_or_create_user("ext-x", email="a@example.com")
    assert created and other.id != u.id
    users = c.upsert_users(
        [{"external_id": "ext-1", "name": "A2"}, {"external_id": "ext-2", "email": "b@x.io"}]
    )
    assert [x.external_id for x in users] == ["ext-1", "ext-2"]
    assert users[0].name == "A2" and users[0].email == "a@example.com"
    assert c.get_user("ext-1").name == "A2"
    assert c.get_user_by_id(u.id).external_id == "ext-1"  # internal ids: by-id methods only
    assert c.find_user("a@example.com") is None
    assert len(c.list_users()) == 3
    # a UUID-shaped external id is an external id like any other
    shaped = str(uuid.uuid4())
    v, created = c.get_or_create_user(shaped)
    assert created and c.get_user(shaped).id == v.id and v.id != uuid.UUID(shaped)
    with pytest.raises(NotFound):
        c.get_user_by_id(uuid.uuid4())
    with pytest.raises(NotFound):
        c.get_user("nobody")
    with pytest.raises(InvalidInput):
        c.get_user_by_id("not-a-uuid")
    with pytest.raises(InvalidInput):
        c.upsert_users([{"external_id": "ok"}, {"name": "no id"}])
    assert len(c.list_users()) == 4  # nothing half-written


def test_sessions_list_archive_rename_paginate_stats(db: Database) -> None:
    c = db.conversations
    for i in range(5):
        run_chat(db, f"thread-{i}", "alice", [f"hello {i}"])
    run_chat(db, "thread-bob", "bob", ["yo"])
    page = c.list_sessions("alice", limit=2)
    seen = [s.thread_id for s in page.items]
    while page.next_cursor:
        page = c.list_sessions("alice", limit=2, cursor=page.next_cursor)
        seen += [s.thread_id for s in page.items]
    assert sorted(seen) == [f"thread-{i}" for i in range(5)] and len(seen) == 5
    s0 = c.get_session_by_thread("thread-0")
    assert c.archive_session(s0.id).status == "archived"
    assert c.rename_session(s0.id, "First chat").title == "First chat"
    active = c.list_sessions("alice", status="active").items
    archived = c.list_sessions("alice", status="archived").items
    assert len(active) == 4 and [s.id for s in archived] == [s0.id]
    stats = c.session_stats(s0.id)
    assert stats.message_count == 2 and stats.by_role == {"user": 1, "assistant": 1}
    with pytest.raises(InvalidInput):
        c.list_sessions(status="deleted")
    with pytest.raises(InvalidInput):
        c.list_sessions(cursor="garbage!")
    assert c.list_sessions("nobody").items == []


def test_messages_paging_count_search(db: Database) -> None:
    c = db.conversations
    run_chat(db, "long", "carol", [f"question {i}" for i in range(30)])
    s = c.get_session_by_thread("long")
    assert c.count_messages(s.id) == 60
    first = c.list_messages(s.id, limit=10)
    assert [m.position for m in first] == list(range(10))
    nxt = c.list_messages(s.id, limit=10, after=first[-1].position)
    assert [m.position for m in nxt] == list(range(10, 20))
    last = c.list_messages(s.id, limit=5, last=True)
    assert [m.position for m in last] == list(range(55, 60))
    assert last[-1].content == "re: question 29"
    only_users = c.list_messages(s.id, role="user", limit=100)
    assert len(only_users) == 30 and all(m.role == "user" for m in only_users)
    hits = c.search_messages("QUESTION 1", session_id=s.id, limit=100)
    assert {m.content for m in hits} >= {"question 1", "question 10", "re: question 19"}
    assert c.search_messages("100%", user="carol") == []
    added = c.add_message(s.id, "system", "note by hand", metadata={"k": 1})
    assert added.position == 60 and added.metadata == {"k": 1}
    with pytest.raises(NotFound):
        c.list_messages(uuid.uuid4())


def test_bad_input_is_rejected_and_nothing_written(db: Database) -> None:
    c = db.conversations
    run_chat(db, "t", "dave", ["hi"])
    s = c.get_session_by_thread("t")
    before = c.count_messages(s.id)
    for bad in ("nul\x00byte", "lone \udc80 surrogate"):
        with pytest.raises(InvalidInput):
            c.add_message(s.id, "user", bad)
    with pytest.raises(InvalidInput):
        c.add_message(s.id, "user", "ok", metadata={"x": {1, 2}})  # a set isn't JSON
    with pytest.raises(InvalidInput):
        c.add_message(s.id, "user", "ok", metadata={"x": float("nan")})
    with pytest.raises(InvalidInput):
        c.get_or_create_user(external_id="bad\x00id")
    with pytest.raises(InvalidInput):
        c.rename_session(s.id, "t\x00")
    with pytest.raises(NotFound):
        c.add_message(uuid.uuid4(), "user", "to nowhere")
    big = "é" * 3_000_000
    assert c.add_message(s.id, "user", big).content == big  # large: stored faithfully
    assert c.count_messages(s.id) == before + 1
    c.delete_session(s.id)
    with pytest.raises(NotFound):
        c.add_message(s.id, "user", "after delete")
    with pytest.raises(NotFound):
        c.rename_session(s.id, "gone")
    with pytest.raises(NotFound):
        c.delete_session(s.id)


def test_analysis_upsert_get_and_node_helper(db: Database) -> None:
    c = db.conversations
    run_chat(db, "dbt", "erin", ["I skipped class"])
    s = c.get_session_by_thread("dbt")
    assert c.get_analysis(s.id) is None
    t0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    a = ChainAnalysis(
        vulnerabilities=["slept badly"],
        chain_links=[ChainLink(kind="thought", description="it's pointless", timestamp=t0)],
        problem_behavior="skipping class",
        prompting_event="exam",
        consequences=["fell behind"],
        solutions=["call a friend"],
        summary="s1",
    )
    stored = c.upsert_analysis(s.id, a)
    assert stored.chain_links[0].timestamp == t0 and stored.summary == "s1"
    again = c.save_analysis_for_thread("dbt", {**a.model_dump(), "summary": "s2"})
    assert again.summary == "s2" and again.created_at == stored.created_at
    got = c.get_analysis(s.id)
    assert got is not None and got.chain_links[0].timestamp == t0 and got.summary == "s2"
    with pytest.raises(InvalidInput):
        c.upsert_analysis(s.id, {"chain_links": [{"description": "no kind"}]})
    with pytest.raises(InvalidInput):
        c.upsert_analysis(s.id, {"summary": "nul\x00"})
    assert c.get_analysis(s.id).summary == "s2"  # type: ignore[union-attr]
    with pytest.raises(NotFound):
        c.upsert_analysis(uuid.uuid4(), a)


def _insert_telemetry(db: Database, thread: str, user: str) -> None:
    with psycopg.connect(db.url, autocommit=True) as conn:
        run_id = uuid.uuid4()
        conn.execute(
            "INSERT INTO runs (id, thread_id, user_id) VALUES (%s, %s, %s)", (run_id, thread, user)
        )
        conn.execute(
            "INSERT INTO steps (id, run_id, node_name) VALUES (%s, %s, 'chat')",
            (uuid.uuid4(), run_id),
        )
        conn.execute(
            "INSERT INTO llm_calls (id, run_id, thread_id) VALUES (%s, %s, %s)",
            (uuid.uuid4(), run_id, thread),
        )


def test_delete_session_removes_everything_of_its_thread(db: Database) -> None:
    c = db.conversations
    run_chat(db, "keep", "fay", ["stay"])
    run_chat(db, "drop", "fay", ["go", "away"])
    _insert_telemetry(db, "drop", "fay")
    s = c.get_session_by_thread("drop")
    c.upsert_analysis(s.id, ChainAnalysis(summary="x"))
    before = table_counts(db)
    counts = c.delete_session(s.id)
    assert counts["messages"] == 4 and counts["chain_analysis_results"] == 1
    assert counts["runs"] == 1 and counts["checkpoints"] > 0
    with psycopg.connect(db.url) as conn:
        for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes", "runs", "llm_calls"):
            n = conn.execute(f"SELECT count(*) FROM {table} WHERE thread_id = 'drop'").fetchone()
            assert n == (0,), table
        assert conn.execute("SELECT count(*) FROM steps").fetchone() == (0,)
        assert (
            conn.execute("SELECT count(*) FROM checkpoints WHERE thread_id = 'keep'").fetchone()[0]
            > 0
        )  # type: ignore[index]
    after = table_counts(db)
    assert after["messages"] == before["messages"] - 4 and after["sessions"] == 1
    # the thread can be used again: a fresh session is created
    run_chat(db, "drop", "fay", ["again"])
    assert c.count_messages(c.get_session_by_thread("drop").id) == 2


def test_purge_user_leaves_no_row_referring_to_them(db: Database) -> None:
    c = db.conversations
    run_chat(db, "g1", "gina", ["secret one"])
    run_chat(db, "g2", "gina", ["secret two"])
    run_chat(db, "h1", "hank", ["other"])
    _insert_telemetry(db, "g1", "gina")  # raw rows without owner, in gina's thread
    _insert_telemetry(db, "h1", "hank")
    gina = c.find_user("gina")
    assert gina is not None
    c.upsert_analysis(c.get_session_by_thread("g1").id, ChainAnalysis(summary="gina's"))
    with db.on_behalf_of("gina"):
        db.store.put(("users", "gina", "memories"), "m1", {"text": "likes tea"})
        db.store.put(("notes",), "m2", {"text": "any namespace is hers"})
    with db.on_behalf_of("hank"):
        db.store.put(("users", "hank", "memories"), "m1", {"text": "likes coffee"})
    db.store.put(("users", "gina", "shared"), "m1", {"text": "shared, whatever the label"})
    before = table_counts(db)

    counts = c.purge_user("gina")
    assert counts["users"] == 1 and counts["sessions"] == 2 and counts["messages"] == 4
    assert counts["runs"] == 1 and counts["memory_items"] == 2

    keys = ["gina", str(gina.id)]
    with psycopg.connect(db.url) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
        ]
        for t in tables:  # the whole row as text must mention neither key
            for k in keys:
                n = conn.execute(
                    f'SELECT count(*) FROM "{t}" x WHERE x::text ~ %s AND x::text !~ %s',
                    (rf"(^|[^a-z_]){k}([^a-z_]|$)", "shared, whatever the label"),
                ).fetchone()
                assert n == (0,), (t, k)
            cols = {
                r[0]
                for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = %s",
                    (t,),
                )
            }
            if "thread_id" in cols:  # bytea blobs don't show text: check by thread
                n = conn.execute(
                    f"SELECT count(*) FROM \"{t}\" WHERE thread_id IN ('g1', 'g2')"
                ).fetchone()
                assert n == (0,), t
    after = table_counts(db)
    assert after["users"] == before["users"] - 1
    assert c.count_messages(c.get_session_by_thread("h1").id) == 2  # hank untouched
    assert db.store.get(("users", "hank", "memories"), "m1") is not None
    assert db.store.get(("users", "gina", "shared"), "m1") is not None  # not hers: shared
    with pytest.raises(NotFound):
        c.purge_user("gina")


def _hash_embed(texts: list[str]) -> list[list[float]]:
    """A deterministic 8-d embedder: equal texts give equal vectors."""
    out = []
    for t in texts:
        h = hashlib.sha256(t.lower().encode()).digest()
        out.append([b / 255 + 0.01 for b in h[:8]])
    return out


def test_embeddings_background_and_search(db: Database) -> None:
    c = db.conversations
    c.embedder = _hash_embed
    run_chat(db, "e1", "ivy", ["apples", "pears"])
    run_chat(db, "e2", "jon", ["apples"])
    c.flush()
    with psycopg.connect(db.url) as conn:
        assert conn.execute("SELECT count(*) FROM messages WHERE embedding IS NULL").fetchone() == (
            0,
        )
        idx = conn.execute(
            "SELECT indexname FROM pg_indexes WHERE indexname LIKE 'ix_dyn_%%'"
        ).fetchall()
        assert idx == [("ix_dyn_messages_embedding_8",)]
    hits = c.search_similar("apples", user="ivy", limit=3)
    assert hits[0].message.content == "apples" and hits[0].distance < 1e-6
    assert {h.message.session_id for h in hits} == {c.get_session_by_thread("e1").id}
    only_e2 = c.search_similar("apples", session_id=c.get_session_by_thread("e2").id)
    assert {h.message.content for h in only_e2} == {"apples", "re: apples"}


def test_vector_search_without_pgvector_column_raises(db: Database) -> None:
    from langgraph_pgstore import ExtensionMissing

    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute("ALTER TABLE messages DROP COLUMN embedding")
    db.recorder.has_vector = None
    run_chat(db, "nv", "kim", ["still mirrored"])
    c = db.conversations
    assert c.count_messages(c.get_session_by_thread("nv").id) == 2
    with pytest.raises(ExtensionMissing):
        c.search_similar([0.1, 0.2])
    c.embedder = _hash_embed
    with pytest.raises(ExtensionMissing):
        c.embed_pending()


async def test_async_repository(adb: AsyncDatabase) -> None:
    c = adb.conversations
    user, created = await c.get_or_create_user("async-user")
    assert created
    s = await c.create_session("async-thread", user=user, title="T")
    assert s.title == "T" and s.user_id == user.id
    m = await c.add_message(s.id, "user", "hello async")
    assert (await c.list_messages(s.id))[0].id == m.id
    assert await c.count_messages(s.id) == 1
    assert (await c.archive_session(s.id)).status == "archived"
    page = await c.list_sessions(user, status="archived")
    assert [x.id for x in page.items] == [s.id]
    await c.upsert_analysis(s.id, ChainAnalysis(summary="a"))
    assert (await c.get_analysis(s.id)).summary == "a"  # type: ignore[union-attr]
    c.embedder = _hash_embed
    assert await c.embed_pending() == 1
    hits = await c.search_similar("hello async", session_id=s.id)
    assert hits[0].message.id == m.id
    counts = await c.purge_user(user)
    assert counts["messages"] == 1 and counts["chain_analysis_results"] == 1
    with pytest.raises(NotFound):
        await c.get_session(s.id)
