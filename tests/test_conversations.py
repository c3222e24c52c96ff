"""Repository API against the real database: users, sessions, messages, analysis, deletion,
purge, embeddings and bad input. Every behaviour runs over ``Conversations`` (sync) and
``AsyncConversations`` (its ``a``-prefixed coroutines), through one driver."""

from __future__ import annotations

import hashlib
import inspect
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypedDict

import psycopg
import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, RemoveMessage
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from savers import Side

from langgraph_pgstore import (
    AsyncConversations,
    AsyncDatabase,
    ChainAnalysis,
    ChainLink,
    Conversations,
    Database,
    InvalidInput,
    NotFound,
)


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def _chat(state: State) -> dict[str, Any]:
    return {"messages": [AIMessage(f"re: {state['messages'][-1].text}")]}


def _graph(checkpointer: Any) -> Any:
    g = StateGraph(State)
    g.add_node("chat", _chat)
    g.add_edge(START, "chat")
    return g.compile(checkpointer=checkpointer)


def _config(thread: str, user: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}, "metadata": {"user_id": user}}


def run_chat(db: Database, thread: str, user: str, texts: list[str]) -> None:
    """A sync graph turn per text (for the other test modules)."""
    graph = _graph(db.checkpointer)
    for t in texts:
        graph.invoke({"messages": [HumanMessage(t)]}, _config(thread, user))


class Hub:
    """One test body over both twins: ``await hub.c.list_messages(...)`` calls the sync
    method, or the async twin's ``alist_messages``; graphs run with ``invoke`` or
    ``ainvoke`` on the hub's own checkpointer."""

    def __init__(self, db: Database | AsyncDatabase) -> None:
        self.db = db
        self.is_async = isinstance(db, AsyncDatabase)
        self.c = _Driver(db.conversations)
        self.url = db.url

    async def chat(self, thread: str, user: str, texts: list[str]) -> None:
        graph = _graph(self.db.checkpointer)
        for t in texts:
            inputs = {"messages": [HumanMessage(t)]}
            if self.is_async:
                await graph.ainvoke(inputs, _config(thread, user))
            else:
                graph.invoke(inputs, _config(thread, user))

    async def update_state(self, thread: str, user: str, values: dict[str, Any]) -> None:
        graph = _graph(self.db.checkpointer)
        if self.is_async:
            await graph.aupdate_state(_config(thread, user), values)
        else:
            graph.update_state(_config(thread, user), values)


class _Driver:
    def __init__(self, target: Conversations | AsyncConversations) -> None:
        self.target = target
        self.is_async = isinstance(target, AsyncConversations)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if self.is_async:
            return getattr(self.target, "a" + name)  # type: ignore[no-any-return]
        fn = getattr(self.target, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return fn(*args, **kwargs)

        return call

    @property
    def embedder(self) -> Any:
        return self.target.embedder

    @embedder.setter
    def embedder(self, fn: Any) -> None:
        self.target.embedder = fn


@pytest.fixture
def hub(side: Side) -> Hub:
    """The conversations API of ``side`` (sync then async), with this module's helpers."""
    return Hub(side.db)


def table_counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
        ]
        return {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}  # type: ignore[index]


def test_async_twin_uses_langgraphs_naming() -> None:
    """Every public method of ``Conversations`` has an ``a``-prefixed coroutine twin, and the
    async class has no coroutine under a plain name."""
    from langgraph_pgstore.conversations.repository import _Base

    shared = {n for n, _ in inspect.getmembers(_Base, inspect.isfunction)}  # no I/O
    sync = {n for n, _ in inspect.getmembers(Conversations, inspect.isfunction)} - shared
    sync = {n for n in sync if not n.startswith("_")}
    members = dict(inspect.getmembers(AsyncConversations, inspect.isfunction))
    coros = {n for n, f in members.items() if inspect.iscoroutinefunction(f) and n[0] != "_"}
    assert {"a" + n for n in sync} == coros
    assert not sync & set(members)  # no plain names left on the async class


async def test_users_get_or_create_update_and_bulk_upsert(hub: Hub) -> None:
    c = hub.c
    u, created = await c.get_or_create_user("ext-1", email="a@example.com", name="A")
    assert created and u.name == "A" and u.owner_id == "ext-1"
    again, created = await c.get_or_create_user("ext-1")
    assert not created and again.id == u.id
    # email is an attribute, never a match key: another id with the same email is another user
    other, created = await c.get_or_create_user("ext-x", email="a@example.com")
    assert created and other.id != u.id
    users = await c.upsert_users(
        [{"external_id": "ext-1", "name": "A2"}, {"external_id": "ext-2", "email": "b@x.io"}]
    )
    assert [x.external_id for x in users] == ["ext-1", "ext-2"]
    assert users[0].name == "A2" and users[0].email == "a@example.com"
    assert (await c.get_user("ext-1")).name == "A2"
    assert (await c.get_user_by_id(u.id)).external_id == "ext-1"  # internal ids: by-id only
    assert await c.find_user("a@example.com") is None
    assert len(await c.list_users()) == 3
    # updates: by external id, or by internal id through the by-id method
    changed = await c.update_user("ext-1", email="new@example.com", metadata={"plan": "pro"})
    assert changed.email == "new@example.com" and changed.name == "A2"
    assert changed.metadata == {"plan": "pro"} and changed.updated_at >= u.updated_at
    by_id = await c.update_user_by_id(u.id, name="Ada", metadata={"tz": "UTC"})
    assert by_id.name == "Ada" and by_id.metadata == {"plan": "pro", "tz": "UTC"}
    with pytest.raises(NotFound):
        await c.update_user("nobody", name="x")
    with pytest.raises(NotFound):
        await c.update_user_by_id(uuid.uuid4(), name="x")
    with pytest.raises(InvalidInput):
        await c.update_user("ext-1", name="nul\x00")
    # a UUID-shaped external id is an external id like any other
    shaped = str(uuid.uuid4())
    v, created = await c.get_or_create_user(shaped)
    assert created and (await c.get_user(shaped)).id == v.id and v.id != uuid.UUID(shaped)
    with pytest.raises(NotFound):
        await c.get_user_by_id(uuid.uuid4())
    with pytest.raises(NotFound):
        await c.get_user("nobody")
    with pytest.raises(InvalidInput, match="must be a UUID"):
        await c.get_user_by_id("not-a-uuid")
    with pytest.raises(InvalidInput):
        await c.upsert_users([{"external_id": "ok"}, {"name": "no id"}])
    assert len(await c.list_users()) == 4  # nothing half-written


async def test_sessions_list_archive_rename_paginate_stats(hub: Hub) -> None:
    c = hub.c
    for i in range(5):
        await hub.chat(f"thread-{i}", "alice", [f"hello {i}"])
    await hub.chat("thread-bob", "bob", ["yo"])
    page = await c.list_sessions("alice", limit=2)
    seen = [s.thread_id for s in page["items"]]
    while page["next_cursor"]:
        page = await c.list_sessions("alice", limit=2, cursor=page["next_cursor"])
        seen += [s.thread_id for s in page["items"]]
    assert sorted(seen) == [f"thread-{i}" for i in range(5)] and len(seen) == 5
    s0 = await c.get_session_by_thread("thread-0")
    assert s0.message_count == 2 and s0.owner_id == "alice"
    assert (await c.archive_session(s0.id)).status == "archived"
    renamed = await c.rename_session(s0.id, "First chat")
    assert renamed.title == "First chat" and renamed.message_count == 2
    active = (await c.list_sessions("alice", status="active"))["items"]
    archived = (await c.list_sessions("alice", status="archived"))["items"]
    assert len(active) == 4 and [s.id for s in archived] == [s0.id]
    stats = await c.session_stats(s0.id)
    assert stats.message_count == 2 and stats.by_role == {"user": 1, "assistant": 1}
    with pytest.raises(InvalidInput):
        await c.list_sessions(status="deleted")
    with pytest.raises(InvalidInput, match="cursor"):
        await c.list_sessions(cursor="garbage!")
    with pytest.raises(InvalidInput, match="limit"):
        await c.list_sessions(limit=0)
    assert (await c.list_sessions("nobody"))["items"] == []


async def test_owner_scope_reads_another_users_session_as_not_found(hub: Hub) -> None:
    c = hub.c
    await hub.chat("t-a", "alice", ["mine"])
    s = await c.get_session_by_thread("t-a")
    assert (await c.get_session(s.id, owner_id="alice")).id == s.id
    for read in (
        c.get_session(s.id, owner_id="bob"),
        c.get_session_by_thread("t-a", owner_id="bob"),
        c.list_messages(s.id, owner_id="bob"),
        c.count_messages(s.id, owner_id="bob"),
        c.session_stats(s.id, owner_id="bob"),
        c.get_analysis(s.id, owner_id="bob"),
    ):
        with pytest.raises(NotFound):
            await read
    assert len((await c.list_messages(s.id, owner_id="alice"))["items"]) == 2


async def test_messages_paging_forward_and_from_the_end(hub: Hub) -> None:
    c = hub.c
    await hub.chat("long", "carol", [f"question {i}" for i in range(12)])
    s = await c.get_session_by_thread("long")
    assert await c.count_messages(s.id) == 24
    positions: list[int] = []
    page = await c.list_messages(s.id, limit=10)
    positions += [m.position for m in page["items"]]
    while page["next_cursor"]:
        page = await c.list_messages(s.id, limit=10, cursor=page["next_cursor"])
        positions += [m.position for m in page["items"]]
    assert positions == list(range(24))
    last = await c.list_messages(s.id, limit=5, last=True)
    assert [m.position for m in last["items"]] == list(range(19, 24))
    assert last["items"][-1].content == "re: question 11"
    older = await c.list_messages(s.id, limit=5, cursor=last["next_cursor"])
    assert [m.position for m in older["items"]] == list(range(14, 19))  # still in order
    only_users = await c.list_messages(s.id, role="user", limit=100)
    assert len(only_users["items"]) == 12 and {m.role for m in only_users["items"]} == {"user"}
    assert only_users["next_cursor"] is None
    hits = await c.search_messages("QUESTION 1", session_id=s.id, limit=100)
    assert {m.content for m in hits} >= {"question 1", "question 10", "re: question 11"}
    assert await c.search_messages("100%", user="carol") == []
    with pytest.raises(NotFound):
        await c.list_messages(uuid.uuid4())
    with pytest.raises(InvalidInput, match="cursor"):
        await c.list_messages(s.id, cursor="bm9wZQ")


async def test_removed_messages_hidden_counted_apart_and_listed_on_request(hub: Hub) -> None:
    c = hub.c
    await hub.chat("rm", "dora", ["one", "two"])
    s = await c.get_session_by_thread("rm")
    first = (await c.list_messages(s.id))["items"][0]
    await hub.update_state("rm", "dora", {"messages": [RemoveMessage(id=first.message_id)]})
    visible = (await c.list_messages(s.id))["items"]
    assert [m.content for m in visible] == ["re: one", "two", "re: two"]
    assert await c.count_messages(s.id) == 3
    assert await c.count_messages(s.id, include_removed=True) == 4
    assert (await c.get_session(s.id)).message_count == 3  # visible ones only
    everything = (await c.list_messages(s.id, include_removed=True))["items"]
    assert everything[0].content == "one" and everything[0].removed_at is not None


async def test_add_and_delete_messages_by_hand(hub: Hub) -> None:
    c = hub.c
    session = await c.create_session("by-hand", user="erin", title="Notes")
    assert session.owner_id == "erin" and session.message_count == 0
    a = await c.add_message(session.id, "user", "first", metadata={"k": 1})
    b = await c.add_message(session.id, "assistant", "second", message_id="m-2", name="bot")
    assert (a.position, b.position) == (0, 1) and a.metadata == {"k": 1}
    assert b.message_id == "m-2" and a.message_id and a.owner_id == "erin"
    deleted = await c.delete_message(session.id, a.message_id)
    assert deleted.id == a.id
    assert [m.content for m in (await c.list_messages(session.id))["items"]] == ["second"]
    assert (await c.get_session(session.id)).message_count == 1
    with pytest.raises(NotFound):
        await c.delete_message(session.id, a.message_id)  # gone
    with pytest.raises(NotFound, match="session"):
        await c.delete_message(uuid.uuid4(), "m-2")
    # A message mirrored from a graph belongs to its state: removing it is the graph's job.
    await hub.chat("graph-thread", "erin", ["hello"])
    mirrored = await c.list_messages((await c.get_session_by_thread("graph-thread")).id)
    item = mirrored["items"][0]
    with pytest.raises(InvalidInput, match="RemoveMessage"):
        await c.delete_message(item.session_id, item.message_id)
    assert await c.count_messages(item.session_id) == 2


async def test_resolve_session_by_prefix_or_thread(hub: Hub) -> None:
    from langgraph_pgstore._ops import arun, run
    from langgraph_pgstore.conversations import ops

    await hub.chat("resolve-me", "fred", ["x"])
    s = await hub.c.get_session_by_thread("resolve-me")

    async def resolve(ref: str, **kw: Any) -> uuid.UUID:
        op = ops.resolve_session(ref, **kw)
        if hub.is_async:
            return await arun(hub.db.pool, op)  # type: ignore[arg-type]
        return run(hub.db.pool, op)  # type: ignore[arg-type]

    assert await resolve(str(s.id)) == s.id
    assert await resolve(str(s.id)[:8]) == s.id
    assert await resolve("resolve-me") == s.id
    with pytest.raises(NotFound):
        await resolve("resolve-me", owner_id="someone-else")
    with pytest.raises(NotFound):
        await resolve("no-such-thread")


async def test_bad_input_is_rejected_and_nothing_written(hub: Hub) -> None:
    c = hub.c
    await hub.chat("t", "dave", ["hi"])
    s = await c.get_session_by_thread("t")
    before = await c.count_messages(s.id)
    for bad in ("nul\x00byte", "lone \udc80 surrogate"):
        with pytest.raises(InvalidInput):
            await c.add_message(s.id, "user", bad)
    with pytest.raises(InvalidInput):
        await c.add_message(s.id, "user", "ok", metadata={"x": {1, 2}})  # a set isn't JSON
    with pytest.raises(InvalidInput):
        await c.add_message(s.id, "user", "ok", metadata={"x": float("nan")})
    with pytest.raises(InvalidInput):
        await c.get_or_create_user(external_id="bad\x00id")
    with pytest.raises(InvalidInput):
        await c.rename_session(s.id, "t\x00")
    with pytest.raises(NotFound):
        await c.add_message(uuid.uuid4(), "user", "to nowhere")
    big = "é" * 3_000_000
    assert (await c.add_message(s.id, "user", big)).content == big  # large: stored faithfully
    assert await c.count_messages(s.id) == before + 1
    await c.delete_session(s.id)
    with pytest.raises(NotFound):
        await c.add_message(s.id, "user", "after delete")
    with pytest.raises(NotFound):
        await c.rename_session(s.id, "gone")
    with pytest.raises(NotFound):
        await c.delete_session(s.id)


async def test_analysis_upsert_get_and_node_helper(hub: Hub) -> None:
    c = hub.c
    await hub.chat("dbt", "erin", ["I skipped class"])
    s = await c.get_session_by_thread("dbt")
    assert await c.get_analysis(s.id) is None
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
    stored = await c.upsert_analysis(s.id, a)
    assert stored.chain_links[0].timestamp == t0 and stored.summary == "s1"
    again = await c.save_analysis_for_thread("dbt", {**a.model_dump(), "summary": "s2"})
    assert again.summary == "s2" and again.created_at == stored.created_at
    got = await c.get_analysis(s.id)
    assert got is not None and got.chain_links[0].timestamp == t0 and got.summary == "s2"
    with pytest.raises(InvalidInput):
        await c.upsert_analysis(s.id, {"chain_links": [{"description": "no kind"}]})
    with pytest.raises(InvalidInput):
        await c.upsert_analysis(s.id, {"summary": "nul\x00"})
    assert (await c.get_analysis(s.id)).summary == "s2"  # type: ignore[union-attr]
    with pytest.raises(NotFound):
        await c.upsert_analysis(uuid.uuid4(), a)
    with pytest.raises(NotFound):
        await c.save_analysis_for_thread("no-such-thread", a)


def _insert_telemetry(url: str, thread: str, user: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
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


async def test_delete_session_removes_everything_of_its_thread(hub: Hub) -> None:
    c = hub.c
    await hub.chat("keep", "fay", ["stay"])
    await hub.chat("drop", "fay", ["go", "away"])
    _insert_telemetry(hub.url, "drop", "fay")
    s = await c.get_session_by_thread("drop")
    await c.upsert_analysis(s.id, ChainAnalysis(summary="x"))
    before = table_counts(hub.url)
    counts = await c.delete_session(s.id)
    assert counts["messages"] == 4 and counts["chain_analysis_results"] == 1
    assert counts["runs"] == 1 and counts["llm_calls"] == 1 and counts["checkpoints"] > 0
    with psycopg.connect(hub.url) as conn:
        for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes", "runs", "llm_calls"):
            n = conn.execute(f"SELECT count(*) FROM {table} WHERE thread_id = 'drop'").fetchone()
            assert n == (0,), table
        assert conn.execute("SELECT count(*) FROM steps").fetchone() == (0,)
        kept = conn.execute("SELECT count(*) FROM checkpoints WHERE thread_id = 'keep'").fetchone()
        assert kept is not None and kept[0] > 0
    after = table_counts(hub.url)
    assert after["messages"] == before["messages"] - 4 and after["sessions"] == 1
    # the thread can be used again: a fresh session is created
    await hub.chat("drop", "fay", ["again"])
    assert await c.count_messages((await c.get_session_by_thread("drop")).id) == 2


async def test_purge_user_leaves_no_row_referring_to_them(hub: Hub) -> None:
    c = hub.c
    await hub.chat("g1", "gina", ["secret one"])
    await hub.chat("g2", "gina", ["secret two"])
    await hub.chat("h1", "hank", ["other"])
    _insert_telemetry(hub.url, "g1", "gina")  # raw rows without owner, in gina's thread
    _insert_telemetry(hub.url, "h1", "hank")
    gina = await c.find_user("gina")
    assert gina is not None
    await c.upsert_analysis((await c.get_session_by_thread("g1")).id, ChainAnalysis(summary="g"))
    with Database.connect(hub.url) as db:  # the store's own tests cover it async
        with db.on_behalf_of("gina"):
            db.store.put(("users", "gina", "memories"), "m1", {"text": "likes tea"})
            db.store.put(("notes",), "m2", {"text": "any namespace is hers"})
        with db.on_behalf_of("hank"):
            db.store.put(("users", "hank", "memories"), "m1", {"text": "likes coffee"})
        db.store.put(("users", "gina", "shared"), "m1", {"text": "shared, whatever the label"})
    before = table_counts(hub.url)

    counts = await c.purge_user("gina")
    assert counts["users"] == 1 and counts["sessions"] == 2 and counts["messages"] == 4
    assert counts["runs"] == 1 and counts["memory_items"] == 2

    keys = ["gina", str(gina.id)]
    with psycopg.connect(hub.url) as conn:
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
    after = table_counts(hub.url)
    assert after["users"] == before["users"] - 1
    assert await c.count_messages((await c.get_session_by_thread("h1")).id) == 2  # hank's
    with pytest.raises(NotFound):
        await c.purge_user("gina")


def _hash_embed(texts: list[str]) -> list[list[float]]:
    """A deterministic 8-d embedder: equal texts give equal vectors."""
    out = []
    for t in texts:
        h = hashlib.sha256(t.lower().encode()).digest()
        out.append([b / 255 + 0.01 for b in h[:8]])
    return out


async def test_embeddings_background_and_search(hub: Hub) -> None:
    c = hub.c
    c.embedder = _hash_embed
    await hub.chat("e1", "ivy", ["apples", "pears"])
    await hub.chat("e2", "jon", ["apples"])
    await c.flush()
    with psycopg.connect(hub.url) as conn:
        pending = conn.execute("SELECT count(*) FROM messages WHERE embedding IS NULL").fetchone()
        assert pending == (0,)
        idx = conn.execute(
            "SELECT indexname FROM pg_indexes WHERE indexname LIKE 'ix_dyn_%%'"
        ).fetchall()
        assert idx == [("ix_dyn_messages_embedding_8",)]
    hits = await c.search_similar("apples", user="ivy", limit=3)
    assert hits[0].message.content == "apples" and hits[0].distance < 1e-6
    assert {h.message.session_id for h in hits} == {(await c.get_session_by_thread("e1")).id}
    only_e2 = await c.search_similar("apples", session_id=(await c.get_session_by_thread("e2")).id)
    assert {h.message.content for h in only_e2} == {"apples", "re: apples"}
    status = hub.db.conversations.embedder_status()
    assert status.enabled and status.healthy and status.embedded >= 6 and status.errors == 0


async def test_embedder_survives_failures_and_health_reports_them(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing embedder is logged, retried with backoff and shown by health(); the graph
    never fails; once it recovers, everything gets embedded."""
    c = hub.c
    broken = {"on": True}

    def flaky(texts: list[str]) -> list[list[float]]:
        if broken["on"]:
            raise ConnectionError("embedding service down")
        return _hash_embed(texts)

    c.embedder = flaky
    with caplog.at_level(logging.WARNING, logger="langgraph_pgstore.conversations"):
        await hub.chat("flaky", "kim", ["one"])  # the turn succeeds whatever the embedder does
        with pytest.raises(ConnectionError):
            await c.flush()  # the background's error, surfaced once
    assert "embedding service down" in caplog.text
    status = hub.db.conversations.embedder_status()
    assert not status.healthy and status.errors >= 1 and "ConnectionError" in status.last_error
    report = hub.db.health() if not hub.is_async else await hub.db.ahealth()  # type: ignore[union-attr]
    assert report.background["conversations embedder"]["healthy"] is False
    assert any("embedder is failing" in p for p in report.problems)
    assert report.ok  # the database itself is fine
    broken["on"] = False
    await hub.chat("flaky", "kim", ["two"])
    await c.flush()
    with psycopg.connect(hub.url) as conn:
        pending = conn.execute("SELECT count(*) FROM messages WHERE embedding IS NULL").fetchone()
        assert pending == (0,)
    assert hub.db.conversations.embedder_status().healthy


async def test_vector_search_without_pgvector_column_raises(hub: Hub) -> None:
    from langgraph_pgstore import ExtensionMissing

    with psycopg.connect(hub.url, autocommit=True) as conn:
        conn.execute("ALTER TABLE messages DROP COLUMN embedding")
    hub.db.recorder.has_vector = None
    await hub.chat("nv", "kim", ["still mirrored"])
    c = hub.c
    assert await c.count_messages((await c.get_session_by_thread("nv")).id) == 2
    with pytest.raises(ExtensionMissing):
        await c.search_similar([0.1, 0.2])
    c.embedder = _hash_embed
    with pytest.raises(ExtensionMissing):
        await c.embed_pending()


def test_models_name_real_columns() -> None:
    """The SELECT lists are derived from the models: every field is a column (or computed)."""
    from langgraph_pgstore.conversations import models
    from langgraph_pgstore.schema import conversations as schema

    pairs = [
        (models.User, schema.users, set()),
        (models.Session, schema.sessions, {"message_count"}),
        (models.Message, schema.messages, set()),
        (models.StoredChainAnalysis, schema.chain_analysis_results, set()),
    ]
    for model, table, computed in pairs:
        assert set(model.model_fields) - computed <= set(table.columns.keys()), model


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_embedding_under_tenancy_acts_for_the_caller_scope(
    kind: str, app_url: str, db_url: str
) -> None:
    """With tenancy on and an application role, the background embedder acts for no tenant
    (it serves every commit); ``flush()`` inside a tenant's scope embeds that tenant's."""
    if kind == "sync":
        with Database.connect(app_url, migrate=False) as db:
            await _embed_as_tenant(Hub(db))
    else:
        async with AsyncDatabase.connect(app_url, migrate=False) as adb:
            await _embed_as_tenant(Hub(adb))
    with psycopg.connect(db_url) as conn:  # the owner sees every row
        rows = conn.execute(
            "SELECT owner_id, count(*) FILTER (WHERE embedding IS NULL) FROM messages GROUP BY 1"
        ).fetchall()
    assert rows == [("ivy", 0)]


async def _embed_as_tenant(hub: Hub) -> None:
    hub.c.embedder = _hash_embed
    with hub.db.tenant("ivy"):
        await hub.chat("t-ivy", "ivy", ["apples", "pears"])
        await hub.c.flush()
        hits = await hub.c.search_similar("pears", limit=1)
    assert hits[0].message.content == "pears"
    assert hub.db.conversations.embedder_status().healthy
