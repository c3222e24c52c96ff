"""The checkpointer in real graphs, sync and async, plus what we add to PostgresSaver."""

from __future__ import annotations

import operator
import uuid
from datetime import timedelta
from typing import Annotated, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph

from langgraph_pgstore import SerializationError


class State(TypedDict):
    items: Annotated[list[str], operator.add]


def build():
    g = StateGraph(State)
    g.add_node("a", lambda s: {"items": ["a"]})
    g.add_node("b", lambda s: {"items": ["b"]})
    g.add_edge(START, "a")
    g.add_edge("a", "b")
    g.add_edge("b", END)
    return g


def test_graph_persists_and_resumes(db):
    graph = build().compile(checkpointer=db.checkpointer)
    cfg = {"configurable": {"thread_id": "t1"}}
    graph.invoke({"items": ["x"]}, cfg)
    out = graph.invoke({"items": ["y"]}, cfg)
    assert out["items"] == ["x", "a", "b", "y", "a", "b"]
    history = list(graph.get_state_history(cfg))
    assert len(history) == 8


async def test_async_graph(adb):
    graph = build().compile(checkpointer=adb.checkpointer)
    cfg = {"configurable": {"thread_id": "t2"}}
    await graph.ainvoke({"items": ["x"]}, cfg)
    state = await graph.aget_state(cfg)
    assert state.values["items"] == ["x", "a", "b"]


def test_copy_delete_for_runs_and_retention(db):
    graph = build().compile(checkpointer=db.checkpointer)
    run1, run2 = uuid.uuid4(), uuid.uuid4()
    cfg = {"configurable": {"thread_id": "src"}}
    graph.invoke({"items": ["1"]}, {**cfg, "metadata": {"run_id": str(run1)}})
    graph.invoke({"items": ["2"]}, {**cfg, "metadata": {"run_id": str(run2)}})
    saver = db.checkpointer
    saver.copy_thread("src", "dst")
    dst = {"configurable": {"thread_id": "dst"}}
    assert graph.get_state(dst).values == graph.get_state(cfg).values
    saver.delete_for_runs([str(run2)])
    runs_left = {t.metadata.get("run_id") for t in saver.list(cfg)}
    assert str(run2) not in runs_left and str(run1) in runs_left
    assert saver.delete_stale_threads(timedelta(days=1)) == []
    assert sorted(saver.delete_stale_threads(timedelta(seconds=-60))) == ["dst", "src"]
    assert list(saver.list(dst)) == []


def test_non_serialisable_state_is_a_clear_error(db):
    import threading

    class Opaque:
        def __init__(self):
            self.lock = threading.Lock()

    class S(TypedDict):
        thing: object

    g = StateGraph(S)
    g.add_node("n", lambda s: {"thing": Opaque()})
    g.add_edge(START, "n")
    graph = g.compile(checkpointer=db.checkpointer)
    with pytest.raises(SerializationError):
        graph.invoke({"thing": 1}, {"configurable": {"thread_id": "bad"}})
