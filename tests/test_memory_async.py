"""The async store runs the same ops through the async driver; check the seams."""

from __future__ import annotations

import asyncio

import pytest
from langgraph.store.base import PutOp, SearchOp

from langgraph_pgstore import AsyncDatabase, InvalidInput

DIMS = 4


async def aembed(texts: list[str]) -> list[list[float]]:
    await asyncio.sleep(0)
    return [[float("cat" in t), float("dog" in t), float("car" in t), 0.01] for t in texts]


async def test_async_roundtrip_search_and_ttl(adb: AsyncDatabase) -> None:
    s = adb.memory(index={"dims": DIMS, "embed": aembed, "fields": ["t"]}, search_mode="vector")
    await s.aput(("u", "1"), "a", {"t": "my cat", "n": 3})
    await s.aput(("u", "1"), "b", {"t": "my car", "n": 12})
    await s.aput(("u", "2"), "c", {"t": "a dog"}, ttl=0.001)
    item = await s.aget(("u", "1"), "a")
    assert item is not None and item.value["n"] == 3
    res = await s.asearch(("u",), query="cat", limit=1)
    assert [r.key for r in res] == ["a"] and res[0].score == pytest.approx(1.0, abs=1e-3)
    assert [r.key for r in await s.asearch(("u",), filter={"n": {"$gt": 5}})] == ["b"]
    assert await s.alist_namespaces(max_depth=1) == [("u",)]
    await asyncio.sleep(0.2)
    assert await s.aget(("u", "2"), "c") is None
    assert await s.sweep_ttl() == 1
    await s.adelete(("u", "1"), "a")
    assert await s.aget(("u", "1"), "a") is None


async def test_async_bad_input_rolls_back(adb: AsyncDatabase) -> None:
    s = adb.store
    with pytest.raises(InvalidInput):
        await s.abatch([PutOp(("ok",), "a", {"x": 1}), PutOp(("bad.label",), "b", {"x": 1})])
    with pytest.raises(InvalidInput):
        await s.abatch([SearchOp(("ok",), {"x": {"$like": 1}})])
    assert await s.asearch(("ok",)) == []


async def test_async_graph_uses_store(adb: AsyncDatabase) -> None:
    from langgraph.config import get_store
    from langgraph.graph import START, MessagesState, StateGraph

    async def node(state: MessagesState) -> dict[str, object]:
        store = get_store()
        text = state["messages"][-1].content
        if text.startswith("note "):
            await store.aput(("notes",), "n1", {"t": text[5:]})
            return {"messages": [("ai", "saved")]}
        found = await store.asearch(("notes",), query=text)
        return {"messages": [("ai", found[0].value["t"] if found else "none")]}

    builder = StateGraph(MessagesState)
    builder.add_node("node", node)
    builder.add_edge(START, "node")
    store = adb.memory(index={"dims": DIMS, "embed": aembed, "fields": ["t"]})
    graph = builder.compile(checkpointer=adb.checkpointer, store=store)
    await graph.ainvoke(
        {"messages": [("user", "note the dog barks")]}, {"configurable": {"thread_id": "a"}}
    )
    out = await graph.ainvoke({"messages": [("user", "dog")]}, {"configurable": {"thread_id": "b"}})
    assert out["messages"][-1].content == "the dog barks"


async def test_sync_calls_from_worker_thread(adb: AsyncDatabase) -> None:
    """A sync node in an async graph runs in a thread and calls store.put/get."""
    s = adb.store
    await s.setup()
    await asyncio.to_thread(s.put, ("w",), "k", {"v": 1})
    item = await asyncio.to_thread(s.get, ("w",), "k")
    assert item is not None and item.value == {"v": 1}
    with pytest.raises(InvalidInput):
        s.get(("w",), "k")  # on the loop itself: refused instead of deadlocking
