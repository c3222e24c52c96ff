"""The stores inside LangGraph graphs (injected ``store``, ``get_store()``), and BM25."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.config import get_store
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.store.base import BaseStore
from memhelp import bow_index, rows

from langgraph_pgstore import AsyncDatabase, Database


def _remember_or_recall(store: BaseStore, user: str, text: str) -> str:
    if text.startswith("remember "):
        store.put(("memories", user), str(len(text)), {"text": text[9:]})
        return "ok"
    found = store.search(("memories", user), query=text, limit=1)
    return str(found[0].value["text"]) if found else "nothing"


def test_sync_graph_threads_share_a_users_memories(db: Database) -> None:
    store = db.memory(index=bow_index(fields=["text"]))

    def node(state: MessagesState, config: RunnableConfig, *, store: BaseStore) -> dict[str, Any]:
        user = config["configurable"]["user_id"]
        answer = _remember_or_recall(store, user, str(state["messages"][-1].content))
        return {"messages": [("ai", answer)]}

    graph = (
        StateGraph(MessagesState)
        .add_node("node", node)
        .add_edge(START, "node")
        .compile(checkpointer=db.checkpointer, store=store)
    )

    def ask(thread: str, user: str, text: str) -> str:
        cfg = {"configurable": {"thread_id": thread, "user_id": user}}
        return str(graph.invoke({"messages": [("user", text)]}, cfg)["messages"][-1].content)

    ask("t1", "u1", "remember I like apple pie")
    assert ask("t2", "u1", "apple") == "I like apple pie"
    assert ask("t3", "u2", "apple") == "nothing"


async def test_async_graph_with_sync_and_async_nodes(adb: AsyncDatabase) -> None:
    """An async node awaits the store; a sync node of the same async graph runs in a worker
    thread and uses the sync API (served on the store's loop)."""

    async def note(state: MessagesState) -> dict[str, Any]:
        text = str(state["messages"][-1].content)
        if text.startswith("note "):
            await get_store().aput(("notes",), "n1", {"text": text[5:]})
            return {"messages": [("ai", "saved")]}
        found = await get_store().asearch(("notes",), query=text)
        return {"messages": [("ai", found[0].value["text"] if found else "none")]}

    def count(state: MessagesState) -> dict[str, Any]:
        n = len(get_store().search(("notes",)))
        return {"messages": [("ai", f"{n} notes")]}

    graph = (
        StateGraph(MessagesState)
        .add_node("note", note)
        .add_node("count", count)
        .add_edge(START, "note")
        .add_edge("note", "count")
        .compile(checkpointer=adb.checkpointer, store=adb.memory(index=bow_index(fields=["text"])))
    )
    await graph.ainvoke(
        {"messages": [("user", "note the dog barks")]}, {"configurable": {"thread_id": "a"}}
    )
    out = await graph.ainvoke({"messages": [("user", "dog")]}, {"configurable": {"thread_id": "b"}})
    assert [m.content for m in out["messages"][-2:]] == ["the dog barks", "1 notes"]


def test_pg_textsearch_is_created_and_used_only_where_it_is_sound(db: Database) -> None:
    """``migrate`` creates pg_textsearch when the server offers it (the embedded one does).
    Before 1.3 its corpus statistics don't survive a restart (every BM25 query then returns
    nothing), so the store ranks with ``ts_rank`` there; keyword results are the same
    shape either way: coverage first, the rarer match first within it."""
    from langgraph_pgstore.memory.core import BM25_MIN_VERSION

    available = rows(db.store, "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_textsearch'")
    if not available:
        pytest.skip("pg_textsearch not available on this server")
    installed = rows(
        db.store, "SELECT extversion FROM pg_extension WHERE extname = 'pg_textsearch'"
    )
    assert installed, "migrate should have created pg_textsearch"
    version = tuple(int(p) for p in installed[0]["extversion"].split(".")[:2])
    s = db.memory(search_mode="keyword")
    s.put(("k",), "rare", {"note": "zebra crossing near the station"})
    s.put(("k",), "common", {"note": "the station the station the station"})
    s.put(("k",), "none", {"note": "nothing relevant"})
    assert s.core.has_bm25 == (version >= BM25_MIN_VERSION)
    res = s.search(("k",), query="zebra station")
    assert [r.key for r in res] == ["rare", "common"]
    assert res[0].score == 1.0 and res[1].score == 0.5  # share of the query's terms
    assert {r.key for r in s.search(("k",), query="station", filter={"note": {"$ne": "x"}})} == {
        "rare",
        "common",
    }
    names = {r["indexname"] for r in rows(s, "SELECT indexname FROM pg_indexes")}
    assert ("ix_dyn_memory_items_bm25_english" in names) == s.core.has_bm25
