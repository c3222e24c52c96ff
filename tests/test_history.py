"""``list``/``get_state_history`` of our checkpointers: same answers as PostgresSaver's."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

import ormsgpack
import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, RemoveMessage
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import _messages_delta_reducer, add_messages

from langgraph_pgstore import AsyncDatabase, Database
from langgraph_pgstore.checkpoint.history import split_ext_array


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    n: int


def _ai(state: State) -> dict[str, Any]:
    update: list[AnyMessage] = [AIMessage(content=f"ai {state['n']}", id=f"ai-{state['n']}")]
    if state["n"] == 6:  # not append-only: drop the first message mid-conversation
        update.append(RemoveMessage(id=state["messages"][0].id or ""))
    return {"messages": update, "n": state["n"] + 1}


def _human(state: State) -> dict[str, Any]:
    return {"messages": [HumanMessage(content=f"human {state['n']}")], "n": state["n"] + 1}


def _graph() -> StateGraph:
    builder = StateGraph(State)
    builder.add_node("ai", _ai)
    builder.add_node("human", _human)
    builder.add_edge(START, "ai")
    builder.add_edge("ai", "human")
    builder.add_conditional_edges("human", lambda s: "ai" if s["n"] % 12 else END, ["ai", END])
    return builder


def _snapshot_key(snapshot: Any) -> tuple[Any, ...]:
    return (
        snapshot.config,
        snapshot.values,
        snapshot.metadata,
        snapshot.next,
        snapshot.parent_config,
        snapshot.tasks,
    )


CONFIG = {"configurable": {"thread_id": "h"}, "recursion_limit": 100}


def test_history_matches_postgres_saver(db_url: str) -> None:
    with Database.connect(db_url, max_size=2) as db:
        ours = _graph().compile(checkpointer=db.checkpointer)
        ours.invoke({"messages": [HumanMessage(content="start")], "n": 0}, CONFIG)
        ours.invoke({"n": 0}, CONFIG)
        mine = list(ours.get_state_history(CONFIG))
        with PostgresSaver.from_conn_string(db_url) as saver:
            theirs_graph = _graph().compile(checkpointer=saver)
            theirs = list(theirs_graph.get_state_history(CONFIG))
            for kwargs in ({"limit": 5}, {"filter": {"source": "loop", "step": 3}}):
                assert [t.config for t in db.checkpointer.list(CONFIG, **kwargs)] == [
                    t.config for t in saver.list(CONFIG, **kwargs)
                ]
            before = {
                "configurable": {
                    "checkpoint_id": theirs[10].config["configurable"]["checkpoint_id"]
                }
            }
            mine_before = list(db.checkpointer.list(CONFIG, before=before, limit=3))
            theirs_before = list(saver.list(CONFIG, before=before, limit=3))
            assert [t.checkpoint for t in mine_before] == [t.checkpoint for t in theirs_before]
    assert len(mine) == len(theirs) > 20
    assert [_snapshot_key(s) for s in mine] == [_snapshot_key(s) for s in theirs]
    # the RemoveMessage really happened, so the non-prefix path was exercised
    assert mine[0].values["messages"][0].content != "start"
    assert any(
        s.values.get("messages", [None])[0].content == "start"
        for s in mine
        if s.values.get("messages")
    )


async def test_async_history_matches_postgres_saver(db_url: str) -> None:
    async with AsyncDatabase.connect(db_url, max_size=2) as adb:
        ours = _graph().compile(checkpointer=adb.checkpointer)
        await ours.ainvoke({"messages": [HumanMessage(content="start")], "n": 0}, CONFIG)
        mine = [s async for s in ours.aget_state_history(CONFIG)]
        async with AsyncPostgresSaver.from_conn_string(db_url) as saver:
            theirs_graph = _graph().compile(checkpointer=saver)
            theirs = [s async for s in theirs_graph.aget_state_history(CONFIG)]
    assert len(mine) == len(theirs) > 10
    assert [_snapshot_key(s) for s in mine] == [_snapshot_key(s) for s in theirs]


EXTS = [(5, b"x"), (7, b"y" * 300), (9, b"z" * 70_000)]


def test_split_ext_array_splits_arrays_of_ext_records() -> None:
    blob = ormsgpack.packb([ormsgpack.Ext(tag, data) for tag, data in EXTS])
    split = split_ext_array(blob)
    assert split is not None
    body, items, ends = split
    assert ends[-1] == len(body) and len(items) == len(EXTS)
    decoded = [ormsgpack.unpackb(i, ext_hook=lambda tag, data: (tag, data)) for i in items]
    assert decoded == EXTS
    assert split_ext_array(blob[:-1]) is None  # truncated
    assert split_ext_array(ormsgpack.packb([])) == (b"", [], [])


@pytest.mark.parametrize("value", [[1, 2], "text", {"a": 1}, [ormsgpack.Ext(5, b"x"), 3], None])
def test_split_ext_array_refuses_anything_else(value: Any) -> None:
    assert split_ext_array(ormsgpack.packb(value)) is None


class DeltaState(TypedDict):
    messages: Annotated[list[AnyMessage], DeltaChannel(_messages_delta_reducer)]
    n: int


def test_delta_channel_history_matches_postgres_saver(db_url: str) -> None:
    """LangGraph's DeltaChannel (beta) works with ours: same state and history as upstream."""
    builder = StateGraph(DeltaState)
    builder.add_node("ai", lambda s: _ai(s))  # unannotated: input schema is DeltaState
    builder.add_node("human", lambda s: _human(s))
    builder.add_edge(START, "ai")
    builder.add_edge("ai", "human")
    builder.add_conditional_edges("human", lambda s: "ai" if s["n"] % 12 else END, ["ai", END])
    with Database.connect(db_url, max_size=2) as db:
        db.mirror_messages = False
        ours = builder.compile(checkpointer=db.checkpointer)
        ours.invoke({"messages": [HumanMessage(content="start", id="s")], "n": 0}, CONFIG)
        mine = list(ours.get_state_history(CONFIG))
        with PostgresSaver.from_conn_string(db_url) as saver:
            theirs = list(builder.compile(checkpointer=saver).get_state_history(CONFIG))
    assert [_snapshot_key(s) for s in mine] == [_snapshot_key(s) for s in theirs]
    assert [m.content for m in mine[0].values["messages"]][-1] == "human 11"
