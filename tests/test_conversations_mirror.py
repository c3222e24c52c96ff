"""Mirroring: sessions and messages follow the graph's state through interrupts, resume,
fan-out, RemoveMessage, replacement by id, update_state and forks (real PostgreSQL)."""

from __future__ import annotations

import operator
import uuid
from typing import Annotated, Any, TypedDict

import psycopg
import pytest
from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    HumanMessage,
    RemoveMessage,
    ToolMessage,
)
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command, Send, interrupt

from langgraph_pgstore import AsyncDatabase, Database, InvalidInput


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    fanout: Annotated[list[str], operator.add]


def _reply(state: State) -> dict[str, Any]:
    last = state["messages"][-1]
    return {
        "messages": [
            AIMessage(
                content=[{"type": "text", "text": f"echo {last.text}"}],
                usage_metadata={"input_tokens": 3, "output_tokens": 2, "total_tokens": 5},
                tool_calls=[{"name": "lookup", "args": {"q": last.text}, "id": "call1"}],
            )
        ]
    }


def _tool(state: State) -> dict[str, Any]:
    return {"messages": [ToolMessage(content="found", tool_call_id="call1")]}


def _ask(state: State) -> dict[str, Any]:
    answer = interrupt("approve?")
    return {"messages": [HumanMessage(content=f"approved: {answer}")]}


def _fan(state: State) -> list[Send]:
    return [Send("worker", {"messages": [], "fanout": [str(i)]}) for i in range(3)]


def _worker(state: State) -> dict[str, Any]:
    return {"messages": [AIMessage(content=f"worker {state['fanout'][0]}")], "fanout": []}


def build() -> StateGraph:
    g = StateGraph(State)
    g.add_node("reply", _reply)
    g.add_node("tool", _tool)
    g.add_node("ask", _ask)
    g.add_node("worker", _worker)
    g.add_edge(START, "reply")
    g.add_edge("reply", "tool")
    g.add_edge("tool", "ask")
    g.add_conditional_edges("ask", _fan, ["worker"])
    g.add_edge("worker", END)
    return g


def visible(db: Database, thread: str) -> list[tuple[str | None, str, str]]:
    s = db.conversations.get_session_by_thread(thread)
    rows = db.conversations.list_messages(s.id)["items"]
    return [(m.message_id, m.role, m.content) for m in rows]


def state_of(graph: Any, config: dict[str, Any]) -> list[tuple[str | None, str, str]]:
    from langgraph_pgstore.conversations.mirror import role_of

    msgs = graph.get_state(config).values.get("messages", [])
    return [(m.id, role_of(m), m.text) for m in msgs]


def test_mirror_follows_state_through_interrupt_resume_fanout_fork(db: Database) -> None:
    graph = build().compile(checkpointer=db.checkpointer)
    thread = f"t-{uuid.uuid4()}"
    config: dict[str, Any] = {
        "configurable": {"thread_id": thread},
        "metadata": {"user_id": "alice"},
    }

    graph.invoke({"messages": [HumanMessage(content="hi")], "fanout": []}, config)
    assert graph.get_state(config).interrupts  # paused at "ask"
    assert visible(db, thread) == state_of(graph, config)
    assert len(visible(db, thread)) == 3

    session = db.conversations.get_session_by_thread(thread)
    user = db.conversations.find_user(external_id="alice")
    assert user is not None and session.user_id == user.id

    graph.invoke(Command(resume="yes"), config)
    assert visible(db, thread) == state_of(graph, config)
    rows = db.conversations.list_messages(session.id)["items"]
    assert [m.role for m in rows] == ["user", "assistant", "tool", "user"] + ["assistant"] * 3
    assert [m.position for m in rows] == list(range(7))
    ai = rows[1]
    assert ai.content == "echo hi" and ai.content_parts == [{"type": "text", "text": "echo hi"}]
    assert ai.tool_calls and ai.tool_calls[0]["name"] == "lookup"
    assert (ai.input_tokens, ai.output_tokens, ai.total_tokens) == (3, 2, 5)
    assert rows[2].tool_call_id == "call1"
    assert all(m.checkpoint_id for m in rows)
    # exactly once: no duplicate message ids, including removed rows
    everything = db.conversations.list_messages(session.id, include_removed=True)["items"]
    assert len({m.message_id for m in everything}) == len(everything) == 7

    # each row's checkpoint id is a real checkpoint of this thread
    cps = {c.config["configurable"]["checkpoint_id"] for c in db.checkpointer.list(config)}
    assert {m.checkpoint_id for m in rows} <= cps

    # Fork from the checkpoint before "tool" ran: the new branch becomes the visible state.
    history = list(graph.get_state_history(config))
    before_tool = next(h for h in history if h.next == ("tool",))
    fork_cfg = graph.update_state(
        before_tool.config, {"messages": [HumanMessage(content="forked", id="fork-1")]}
    )
    assert visible(db, thread) == state_of(graph, fork_cfg)
    assert [m[2] for m in visible(db, thread)] == ["hi", "echo hi", "forked"]
    hidden = {
        m.message_id
        for m in db.conversations.list_messages(session.id, include_removed=True)["items"]
        if m.removed_at is not None
    }
    assert len(hidden) == 5  # tool, approval and the three workers of the abandoned branch
    # Continue the fork to its end: still equal to the state.
    graph.invoke(None, fork_cfg)
    graph.invoke(Command(resume="again"), {"configurable": {"thread_id": thread}})
    assert visible(db, thread) == state_of(graph, {"configurable": {"thread_id": thread}})


def test_remove_and_replace_by_id(db: Database) -> None:
    g = StateGraph(State)
    g.add_node("noop", lambda s: {})
    g.add_edge(START, "noop")
    graph = g.compile(checkpointer=db.checkpointer)
    thread = f"t-{uuid.uuid4()}"
    config: dict[str, Any] = {"configurable": {"thread_id": thread}}
    graph.invoke(
        {
            "messages": [
                HumanMessage("a", id="a"),
                AIMessage("b", id="b"),
                HumanMessage("c", id="c"),
            ],
            "fanout": [],
        },
        config,
    )
    graph.update_state(config, {"messages": [RemoveMessage(id="b")]})
    assert [m[0] for m in visible(db, thread)] == ["a", "c"]
    graph.update_state(config, {"messages": [HumanMessage("c2", id="c")]})
    assert visible(db, thread) == [("a", "user", "a"), ("c", "user", "c2")]
    s = db.conversations.get_session_by_thread(thread)
    assert db.conversations.count_messages(s.id) == 2
    assert db.conversations.count_messages(s.id, include_removed=True) == 3
    assert visible(db, thread) == state_of(graph, config)


def test_mirroring_off_writes_no_rows(db: Database) -> None:
    db.mirror_messages = False
    graph = build().compile(checkpointer=db.checkpointer)
    config: dict[str, Any] = {"configurable": {"thread_id": "off"}}
    graph.invoke({"messages": [HumanMessage("hi")], "fanout": []}, config)
    with psycopg.connect(db.url) as conn:
        assert conn.execute("SELECT count(*) FROM sessions").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM messages").fetchone() == (0,)


def test_mirror_is_atomic_with_the_checkpoint(db: Database) -> None:
    """A failing mirror write rolls the checkpoint back too: neither is half-written."""
    graph = build().compile(checkpointer=db.checkpointer)
    config: dict[str, Any] = {"configurable": {"thread_id": "atomic"}}
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute("ALTER TABLE messages ADD CONSTRAINT no_echo CHECK (content NOT LIKE 'echo%')")
    with pytest.raises(InvalidInput):
        graph.invoke({"messages": [HumanMessage("hi")], "fanout": []}, config)
    with psycopg.connect(db.url) as conn:
        n_msgs = conn.execute("SELECT count(*) FROM messages").fetchone()
    # the checkpoints that committed are exactly those whose messages committed
    assert n_msgs == (1,)
    tuple_ = db.checkpointer.get_tuple(config)
    assert tuple_ is not None
    assert [m.text for m in tuple_.checkpoint["channel_values"]["messages"]] == ["hi"]


def test_nul_and_surrogates_are_stored_lossy_not_failing(db: Database) -> None:
    g = StateGraph(State)
    g.add_node("noop", lambda s: {})
    g.add_edge(START, "noop")
    graph = g.compile(checkpointer=db.checkpointer)
    config: dict[str, Any] = {"configurable": {"thread_id": "bad"}}
    big = "x" * 2_000_000
    graph.invoke(
        {
            "messages": [
                HumanMessage("a\x00b", id="n"),
                HumanMessage("s\ud800", id="s"),
                HumanMessage(big, id="big"),
            ],
            "fanout": [],
        },
        config,
    )
    s = db.conversations.get_session_by_thread("bad")
    rows = {m.message_id: m for m in db.conversations.list_messages(s.id)["items"]}
    assert rows["n"].content == "a\ufffdb" and rows["n"].metadata["lossy"] is True
    assert rows["s"].content == "s\ufffd" and rows["s"].metadata["lossy"] is True
    assert rows["big"].content == big and "lossy" not in rows["big"].metadata
    # the checkpoint keeps the exact original
    msgs = graph.get_state(config).values["messages"]
    assert msgs[0].content == "a\x00b"


async def test_async_mirror_matches_state(adb: AsyncDatabase) -> None:
    graph = build().compile(checkpointer=adb.checkpointer)
    thread = f"t-{uuid.uuid4()}"
    config: dict[str, Any] = {"configurable": {"thread_id": thread}, "metadata": {"user_id": "bob"}}
    await graph.ainvoke({"messages": [HumanMessage(content="hi")], "fanout": []}, config)
    await graph.ainvoke(Command(resume="ok"), config)
    session = await adb.conversations.aget_session_by_thread(thread)
    rows = (await adb.conversations.alist_messages(session.id))["items"]
    state = (await graph.aget_state(config)).values["messages"]
    assert [(m.message_id, m.content) for m in rows] == [(m.id, m.text) for m in state]
    user = await adb.conversations.afind_user(external_id="bob")
    assert user is not None and session.user_id == user.id


def test_session_deleted_behind_the_cache_is_recreated(db: Database) -> None:
    """Another process deletes the session: the next put recreates it, no error, no loss."""
    graph = build().compile(checkpointer=db.checkpointer)
    config: dict[str, Any] = {"configurable": {"thread_id": "behind"}}
    graph.invoke({"messages": [HumanMessage("hi")], "fanout": []}, config)
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute("DELETE FROM sessions WHERE thread_id = 'behind'")
    graph.invoke(Command(resume="yes"), config)
    assert visible(db, "behind") == state_of(graph, config)
    assert len(visible(db, "behind")) == 7
