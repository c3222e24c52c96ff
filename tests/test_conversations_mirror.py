"""Mirroring: sessions and messages follow the graph's state through interrupts, resume,
fan-out, RemoveMessage, replacement by id, update_state and forks, whichever process writes
(real PostgreSQL; every behaviour test on the sync and the async checkpointer)."""

from __future__ import annotations

import operator
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Annotated, Any, TypedDict

import psycopg
import pytest
from _turn_worker import echo_graph, turn
from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    HumanMessage,
    RemoveMessage,
    ToolMessage,
)
from langgraph.channels.delta import DeltaChannel
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import _messages_delta_reducer, add_messages
from langgraph.types import Command, Send, interrupt
from savers import Side
from sqlalchemy.dialects import postgresql

from langgraph_pgstore import Database, InvalidInput
from langgraph_pgstore.conversations.mirror import COLUMN_TYPES, MessageRow, role_of
from langgraph_pgstore.schema.conversations import messages as messages_table

WORKER = Path(__file__).with_name("_turn_worker.py")


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


async def visible(side: Side, thread: str) -> list[tuple[str | None, str, str]]:
    s = await side.conv("get_session_by_thread", thread)
    return [
        (m.message_id, m.role, m.content) for m in (await side.conv("list_messages", s.id))["items"]
    ]


async def state_of(side: Side, graph: Any, config: dict[str, Any]) -> list[tuple[Any, ...]]:
    msgs = (await side.state(graph, config)).values.get("messages", [])
    return [(m.id, role_of(m), m.text) for m in msgs]


async def test_mirror_follows_state_through_interrupt_resume_fanout_fork(side: Side) -> None:
    graph = build().compile(checkpointer=side.checkpointer)
    thread = f"t-{uuid.uuid4()}"
    config: dict[str, Any] = {
        "configurable": {"thread_id": thread},
        "metadata": {"user_id": "alice"},
    }

    await side.invoke(graph, {"messages": [HumanMessage(content="hi")], "fanout": []}, config)
    assert (await side.state(graph, config)).interrupts  # paused at "ask"
    assert await visible(side, thread) == await state_of(side, graph, config)
    assert len(await visible(side, thread)) == 3

    session = await side.conv("get_session_by_thread", thread)
    user = await side.conv("find_user", external_id="alice")
    assert user is not None and session.user_id == user.id

    await side.invoke(graph, Command(resume="yes"), config)
    assert await visible(side, thread) == await state_of(side, graph, config)
    rows = (await side.conv("list_messages", session.id))["items"]
    assert [m.role for m in rows] == ["user", "assistant", "tool", "user"] + ["assistant"] * 3
    assert [m.position for m in rows] == list(range(7))
    ai = rows[1]
    assert ai.content == "echo hi" and ai.content_parts == [{"type": "text", "text": "echo hi"}]
    assert ai.tool_calls and ai.tool_calls[0]["name"] == "lookup"
    assert (ai.input_tokens, ai.output_tokens, ai.total_tokens) == (3, 2, 5)
    assert rows[2].tool_call_id == "call1"
    assert all(m.checkpoint_id for m in rows)
    # exactly once: no duplicate message ids, including removed rows
    everything = (await side.conv("list_messages", session.id, include_removed=True))["items"]
    assert len({m.message_id for m in everything}) == len(everything) == 7

    # each row's checkpoint id is a real checkpoint of this thread
    cps = {c.config["configurable"]["checkpoint_id"] for c in await side.listed(config)}
    assert {m.checkpoint_id for m in rows} <= cps

    # Fork from the checkpoint before "tool" ran: the new branch becomes the visible state.
    history = await side.history(graph, config)
    before_tool = next(h for h in history if h.next == ("tool",))
    fork_cfg = await side.update_state(
        graph, before_tool.config, {"messages": [HumanMessage(content="forked", id="fork-1")]}
    )
    assert await visible(side, thread) == await state_of(side, graph, fork_cfg)
    assert [m[2] for m in await visible(side, thread)] == ["hi", "echo hi", "forked"]
    hidden = {
        m.message_id
        for m in (await side.conv("list_messages", session.id, include_removed=True))["items"]
        if m.removed_at is not None
    }
    assert len(hidden) == 5  # tool, approval and the three workers of the abandoned branch
    # Continue the fork to its end: still equal to the state.
    await side.invoke(graph, None, fork_cfg)
    latest: dict[str, Any] = {"configurable": {"thread_id": thread}}
    await side.invoke(graph, Command(resume="again"), latest)
    assert await visible(side, thread) == await state_of(side, graph, latest)


async def test_fork_that_leaves_the_messages_alone_shows_the_forks_messages(side: Side) -> None:
    """``update_state`` on an old checkpoint with no message change: the new checkpoint's
    list is the old one, and so are the visible rows."""
    graph = build().compile(checkpointer=side.checkpointer)
    config: dict[str, Any] = {"configurable": {"thread_id": f"t-{uuid.uuid4()}"}}
    await side.invoke(graph, {"messages": [HumanMessage("hi")], "fanout": []}, config)
    await side.invoke(graph, Command(resume="yes"), config)
    history = await side.history(graph, config)
    early = next(h for h in history if h.next == ("tool",))
    fork_cfg = await side.update_state(graph, early.config, {"fanout": ["x"]}, as_node="reply")
    thread = config["configurable"]["thread_id"]
    assert await visible(side, thread) == await state_of(side, graph, fork_cfg)
    assert len(await visible(side, thread)) == 2


async def test_remove_and_replace_by_id(side: Side) -> None:
    g = StateGraph(State)
    g.add_node("noop", lambda s: {})
    g.add_edge(START, "noop")
    graph = g.compile(checkpointer=side.checkpointer)
    thread = f"t-{uuid.uuid4()}"
    config: dict[str, Any] = {"configurable": {"thread_id": thread}}
    start = [HumanMessage("a", id="a"), AIMessage("b", id="b"), HumanMessage("c", id="c")]
    await side.invoke(graph, {"messages": start, "fanout": []}, config)
    await side.update_state(graph, config, {"messages": [RemoveMessage(id="b")]})
    assert [m[0] for m in await visible(side, thread)] == ["a", "c"]
    await side.update_state(graph, config, {"messages": [HumanMessage("c2", id="c")]})
    assert await visible(side, thread) == [("a", "user", "a"), ("c", "user", "c2")]
    s = await side.conv("get_session_by_thread", thread)
    assert await side.conv("count_messages", s.id) == 2
    assert await side.conv("count_messages", s.id, include_removed=True) == 3
    assert await visible(side, thread) == await state_of(side, graph, config)


async def test_mirroring_off_writes_no_rows(side: Side) -> None:
    side.db.mirror_messages = False
    graph = build().compile(checkpointer=side.checkpointer)
    config: dict[str, Any] = {"configurable": {"thread_id": "off"}}
    await side.invoke(graph, {"messages": [HumanMessage("hi")], "fanout": []}, config)
    with psycopg.connect(side.db.url) as conn:
        assert conn.execute("SELECT count(*) FROM sessions").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM messages").fetchone() == (0,)


async def test_mirror_is_atomic_with_the_checkpoint(side: Side) -> None:
    """A failing mirror write rolls the checkpoint back too: neither is half-written."""
    graph = build().compile(checkpointer=side.checkpointer)
    config: dict[str, Any] = {"configurable": {"thread_id": "atomic"}}
    with psycopg.connect(side.db.url, autocommit=True) as conn:
        conn.execute("ALTER TABLE messages ADD CONSTRAINT no_echo CHECK (content NOT LIKE 'echo%')")
    with pytest.raises(InvalidInput):
        await side.invoke(graph, {"messages": [HumanMessage("hi")], "fanout": []}, config)
    with psycopg.connect(side.db.url) as conn:
        n_msgs = conn.execute("SELECT count(*) FROM messages").fetchone()
    # the checkpoints that committed are exactly those whose messages committed
    assert n_msgs == (1,)
    tuple_ = await side.saver("get_tuple", config)
    assert tuple_ is not None
    assert [m.text for m in tuple_.checkpoint["channel_values"]["messages"]] == ["hi"]


async def test_nul_and_surrogates_are_stored_lossy_not_failing(side: Side) -> None:
    g = StateGraph(State)
    g.add_node("noop", lambda s: {})
    g.add_edge(START, "noop")
    graph = g.compile(checkpointer=side.checkpointer)
    config: dict[str, Any] = {"configurable": {"thread_id": "bad"}}
    big = "x" * 2_000_000
    odd = [
        HumanMessage("a\x00b", id="n"),
        HumanMessage("s\ud800", id="s"),
        HumanMessage(big, id="big"),
    ]
    await side.invoke(graph, {"messages": odd, "fanout": []}, config)
    s = await side.conv("get_session_by_thread", "bad")
    rows = {m.message_id: m for m in (await side.conv("list_messages", s.id))["items"]}
    assert rows["n"].content == "a\ufffdb" and rows["n"].metadata["lossy"] is True
    assert rows["s"].content == "s\ufffd" and rows["s"].metadata["lossy"] is True
    assert rows["big"].content == big and "lossy" not in rows["big"].metadata
    # the checkpoint keeps the exact original
    msgs = (await side.state(graph, config)).values["messages"]
    assert msgs[0].content == "a\x00b"


async def test_session_deleted_behind_the_cache_is_recreated(side: Side) -> None:
    """Another process deletes the session: the next put recreates it, no error, no loss."""
    graph = build().compile(checkpointer=side.checkpointer)
    config: dict[str, Any] = {"configurable": {"thread_id": "behind"}}
    await side.invoke(graph, {"messages": [HumanMessage("hi")], "fanout": []}, config)
    with psycopg.connect(side.db.url, autocommit=True) as conn:
        conn.execute("DELETE FROM sessions WHERE thread_id = 'behind'")
    await side.invoke(graph, Command(resume="yes"), config)
    assert await visible(side, "behind") == await state_of(side, graph, config)
    assert len(await visible(side, "behind")) == 7


async def test_writers_taking_turns_on_one_thread(side: Side, db_url: str) -> None:
    """Two writers (two hubs: two caches, as two processes) take turns on one thread; one
    removes a message the other wrote. After every turn the rows are the state."""
    g = StateGraph(State)
    g.add_node("noop", lambda s: {})
    g.add_edge(START, "noop")
    config: dict[str, Any] = {"configurable": {"thread_id": "turns"}}
    with Database.connect(db_url, max_size=2) as other:
        mine = g.compile(checkpointer=side.checkpointer)
        theirs = g.compile(checkpointer=other.checkpointer)
        await side.invoke(mine, {"messages": [HumanMessage("a", id="a")], "fanout": []}, config)
        theirs.invoke({"messages": [HumanMessage("b", id="b")]}, config)
        await side.invoke(mine, {"messages": [RemoveMessage(id="b")]}, config)
        assert await visible(side, "turns") == await state_of(side, mine, config)
        theirs.invoke({"messages": [RemoveMessage(id="a"), HumanMessage("c", id="c")]}, config)
        await side.invoke(mine, {"messages": [HumanMessage("b", id="b")]}, config)
        assert [m[0] for m in await visible(side, "turns")] == ["c", "b"]
        assert await visible(side, "turns") == await state_of(side, mine, config)


async def test_a_message_added_by_hand_stays_whichever_process_writes(
    side: Side, db_url: str
) -> None:
    """The rule for a message added by hand to a graph's session: it is the application's,
    kept in its place (after the messages visible when it was added) and never marked
    removed by the mirror: not by this process, not by a fresh one."""
    thread = "by-hand"
    config: dict[str, Any] = {"configurable": {"thread_id": thread}}
    graph = echo_graph().compile(checkpointer=side.checkpointer)
    await side.invoke(graph, {"messages": [HumanMessage("one")]}, config)
    session = await side.conv("get_session_by_thread", thread)
    note = await side.conv("add_message", session.id, "system", "be brief")
    assert note.position == 2
    subprocess.run([sys.executable, str(WORKER), db_url, thread, "two"], check=True, timeout=120)
    await side.invoke(graph, {"messages": [HumanMessage("three")]}, config)
    with Database.connect(db_url, max_size=2) as fresh:  # a second cache, as another process
        turn(fresh, thread, "four")
    rows = (await side.conv("list_messages", session.id))["items"]
    assert [m.content for m in rows] == [
        "one", "echo one", "be brief", "two", "echo two", "three", "echo three", "four",
        "echo four",
    ]  # fmt: skip
    graph_rows = [(m.message_id, m.content) for m in rows if m.message_id != note.message_id]
    msgs = (await side.state(graph, config)).values["messages"]
    assert graph_rows == [(m.id, m.text) for m in msgs]


def test_message_row_is_the_schemas_messages_columns() -> None:
    """The record type that generates the mirror's SQL names real columns of the declared
    schema, with their types (adding a column: migration, schema, MessageRow)."""
    declared = {
        c.name: c.type.compile(dialect=postgresql.dialect()).lower() for c in messages_table.c
    }
    assert {name: declared[name] for name in MessageRow._fields} == COLUMN_TYPES
    assert list(COLUMN_TYPES) == list(MessageRow._fields)


class DeltaState(TypedDict):
    messages: Annotated[
        list[AnyMessage], DeltaChannel(_messages_delta_reducer, snapshot_frequency=3)
    ]


async def test_delta_channel_threads_follow_at_snapshots(side: Side) -> None:
    """LangGraph's DeltaChannel (the opt-in for linear storage) carries the list only at
    snapshots: the rows catch up there, and are never wrongly removed in between."""
    g = StateGraph(DeltaState)
    g.add_node("reply", lambda s: {"messages": [AIMessage(f"re {s['messages'][-1].text}")]})
    g.add_edge(START, "reply")
    graph = g.compile(checkpointer=side.checkpointer)
    config: dict[str, Any] = {"configurable": {"thread_id": "delta"}}
    seen: list[int] = []
    for text in ("one", "two", "three", "four", "five"):
        await side.invoke(graph, {"messages": [HumanMessage(text)]}, config)
        rows = await visible(side, "delta")
        state = await state_of(side, graph, config)
        assert rows == state[: len(rows)]  # an earlier state of the thread, never garbage
        seen.append(len(rows))
    assert seen == sorted(seen) and seen[-1] >= 6, seen  # caught up at the snapshots
