"""LangMem on our stores (sync and async), with a fake tool-calling model (no network):
memories extracted from a conversation, consolidated on a second one, found by search, owned
by the run's user and removed with that user."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langgraph.graph import START, MessagesState, StateGraph
from memhelp import CharacterEmbeddings, FakeToolModel, rows

from langgraph_pgstore import AsyncDatabase, Database

langmem = pytest.importorskip("langmem")

NS = ("memories", "{langgraph_user_id}")


@pytest.fixture(params=["sync", "async"])
async def hub(request: pytest.FixtureRequest, db_url: str) -> AsyncIterator[Any]:
    if request.param == "sync":
        with Database.connect(db_url, max_size=4) as db:
            yield db
    else:
        async with AsyncDatabase.connect(db_url, max_size=4) as adb:
            yield adb


def _index() -> dict[str, Any]:
    return {"dims": 32, "embed": CharacterEmbeddings(32), "fields": ["content.content"]}


async def _invoke(hub: Any, graph: Any, text: str, thread: str, user: str) -> dict[str, Any]:
    config = {
        "configurable": {"thread_id": thread, "langgraph_user_id": user},
        "metadata": {"user_id": user},
    }
    inputs = {"messages": [("user", text)]}
    if isinstance(hub, AsyncDatabase):
        return dict(await graph.ainvoke(inputs, config))
    return dict(await asyncio.to_thread(graph.invoke, inputs, config))


def _manager_graph(hub: Any, store: Any) -> Any:
    """A chat that answers, then lets LangMem's memory manager extract and consolidate."""
    manager = langmem.create_memory_store_manager(FakeToolModel(), namespace=NS)

    def chat(state: MessagesState) -> dict[str, Any]:
        return {"messages": [AIMessage("ok")]}

    def remember(state: MessagesState) -> dict[str, Any]:
        manager.invoke({"messages": state["messages"]})
        return {}

    async def aremember(state: MessagesState) -> dict[str, Any]:
        await manager.ainvoke({"messages": state["messages"]})
        return {}

    builder = StateGraph(MessagesState)
    builder.add_node("chat", chat)
    builder.add_node("remember", aremember if isinstance(hub, AsyncDatabase) else remember)
    builder.add_edge(START, "chat")
    builder.add_edge("chat", "remember")
    return builder.compile(checkpointer=hub.checkpointer, store=store)


def _memories(store: Any, user: str) -> list[tuple[str, str]]:
    found = rows(
        store,
        "SELECT key, value #>> '{content,content}' AS content FROM memory_items"
        " WHERE prefix = %s ORDER BY key",
        (f"memories.{user}",),
    )
    return [(r["key"], r["content"]) for r in found]


async def test_memory_manager_extracts_consolidates_and_searches(hub: Any) -> None:
    store = hub.memory(index=_index())
    graph = _manager_graph(hub, store)
    await _invoke(hub, graph, "I drink coffee every morning.", "t1", "ada")
    first = _memories(store, "ada")
    assert [c for _, c in first] == ["User drinks coffee every morning"]
    await _invoke(hub, graph, "I switched from coffee to green tea.", "t2", "ada")
    second = _memories(store, "ada")
    assert second == [(first[0][0], "User switched from coffee to green tea")]  # same memory
    await _invoke(hub, graph, "I live in Lisbon.", "t3", "bob")
    assert [c for _, c in _memories(store, "bob")] == ["User lives in Lisbon"]
    search = store.asearch if isinstance(hub, AsyncDatabase) else store.search
    hits = search(("memories", "ada"), query="what does the user drink?")
    hits = await hits if isinstance(hub, AsyncDatabase) else hits
    assert [h.value["content"]["content"] for h in hits] == [
        "User switched from coffee to green tea"
    ]
    # owned by the run's user (config metadata), whatever the namespace says
    owners = rows(store, "SELECT prefix, owner_id FROM memory_items ORDER BY prefix")
    assert owners == [
        {"prefix": "memories.ada", "owner_id": "ada"},
        {"prefix": "memories.bob", "owner_id": "bob"},
    ]
    assert {r["owner_id"] for r in rows(store, "SELECT owner_id FROM memory_vectors")} == {
        "ada",
        "bob",
    }
    purge = hub.apurge_user if isinstance(hub, AsyncDatabase) else hub.purge_user
    counts = purge("ada")
    counts = await counts if isinstance(hub, AsyncDatabase) else counts
    assert counts["memory_items"] == 1
    assert _memories(store, "ada") == [] and len(_memories(store, "bob")) == 1


async def test_memory_tools_in_an_agent(hub: Any) -> None:
    from langgraph.prebuilt import ToolNode, tools_condition

    store = hub.memory(index={**_index(), "fields": ["content"]})
    tools = [langmem.create_manage_memory_tool(NS), langmem.create_search_memory_tool(NS)]
    model = FakeToolModel().bind_tools(tools)

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    async def aagent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", aagent if isinstance(hub, AsyncDatabase) else agent)
    builder.add_node("tools", ToolNode(tools))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    graph = builder.compile(checkpointer=hub.checkpointer, store=store)
    out = await _invoke(hub, graph, "I am allergic to peanuts", "a1", "ada")
    assert out["messages"][-1].content == "Noted."
    out = await _invoke(hub, graph, "What am I allergic to?", "a2", "ada")
    assert out["messages"][-1].content == "From memory: User is allergic to peanuts"
    out = await _invoke(hub, graph, "What am I allergic to?", "b1", "bob")
    assert out["messages"][-1].content == "From memory: nothing"
