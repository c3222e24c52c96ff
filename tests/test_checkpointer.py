"""The checkpointers in real graphs, sync and async (every test runs on both), plus what we
add to PostgresSaver; our write path produces PostgresSaver's rows, both ways readable."""

from __future__ import annotations

import asyncio
import operator
import threading
import uuid
from datetime import timedelta
from typing import Annotated, Any, TypedDict

import psycopg
import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command, interrupt
from savers import Side

from langgraph_pgstore import InvalidInput, SerializationError


class State(TypedDict):
    items: Annotated[list[str], operator.add]


def build() -> StateGraph:
    g = StateGraph(State)
    g.add_node("a", lambda s: {"items": ["a"]})
    g.add_node("b", lambda s: {"items": ["b"]})
    g.add_edge(START, "a")
    g.add_edge("a", "b")
    g.add_edge("b", END)
    return g


async def test_graph_persists_and_resumes(side: Side) -> None:
    graph = build().compile(checkpointer=side.checkpointer)
    cfg: dict[str, Any] = {"configurable": {"thread_id": "t1"}}
    await side.invoke(graph, {"items": ["x"]}, cfg)
    out = await side.invoke(graph, {"items": ["y"]}, cfg)
    assert out["items"] == ["x", "a", "b", "y", "a", "b"]
    assert len(await side.history(graph, cfg)) == 8
    assert (await side.state(graph, cfg)).values["items"] == out["items"]


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
async def test_every_durability_mode(side: Side, durability: str) -> None:
    graph = build().compile(checkpointer=side.checkpointer)
    cfg: dict[str, Any] = {"configurable": {"thread_id": f"d-{durability}"}}
    for value in ("x", "y"):
        await side.invoke(graph, {"items": [value]}, cfg, durability=durability)
    assert (await side.state(graph, cfg)).values["items"] == ["x", "a", "b", "y", "a", "b"]


async def test_a_write_blocked_in_the_database_holds_up_no_other_thread(
    side: Side, db_url: str
) -> None:
    """Writes borrow their own pool connections (no saver-wide lock): while one thread's
    write waits on a row lock, another thread's graph runs to the end."""
    graph = build().compile(checkpointer=side.checkpointer)

    def cfg(thread: str) -> dict[str, Any]:
        return {"configurable": {"thread_id": thread}}

    for thread in ("slow", "fast"):
        await side.invoke(graph, {"items": ["x"]}, cfg(thread))
    side.db.recorder.forget()  # so the next write of each thread upserts its session row
    with (
        psycopg.connect(db_url) as locker,
        psycopg.connect(db_url, autocommit=True) as watcher,
    ):
        locker.execute("SELECT 1 FROM sessions WHERE thread_id = 'slow' FOR UPDATE")
        slow = side.start(graph, {"items": ["y"]}, cfg("slow"))
        for _ in range(200):  # until the slow write waits on the row lock
            waiting = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            ).fetchone()
            if waiting and waiting[0]:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the slow write never waited on the lock")
        await asyncio.wait_for(side.start(graph, {"items": ["y"]}, cfg("fast")), 30)
        assert not slow.done()
        locker.rollback()
        await asyncio.wait_for(slow, 30)
    for thread in ("slow", "fast"):
        items = (await side.state(graph, cfg(thread))).values["items"]
        assert items == ["x", "a", "b", "y", "a", "b"]


@pytest.mark.parametrize("durability", ["sync", "async"])
async def test_a_tasks_writes_commit_with_the_next_checkpoint(
    side: Side, db_url: str, durability: str
) -> None:
    """Each super-step's writes ride with the checkpoint that follows them: the writes rows
    of every checkpoint and its child checkpoint's row come from one transaction."""
    side.checkpointer.coalescer.wait = 5.0  # a slow test machine still meets every put
    graph = build().compile(checkpointer=side.checkpointer)
    thread = f"ride-{durability}"
    cfg: dict[str, Any] = {"configurable": {"thread_id": thread}}
    for value in ("x", "y"):
        await side.invoke(graph, {"items": [value]}, cfg, durability=durability)
    with psycopg.connect(db_url) as conn:
        pairs = conn.execute(
            """SELECT DISTINCT w.xmin::text, c.xmin::text FROM checkpoint_writes w
               JOIN checkpoints c ON c.thread_id = w.thread_id
                AND c.parent_checkpoint_id = w.checkpoint_id
               WHERE w.thread_id = %s""",
            (thread,),
        ).fetchall()
    assert len(pairs) == 6  # input, a, b; twice
    assert all(writes == checkpoint for writes, checkpoint in pairs)


async def test_writes_survive_the_failure_of_the_checkpoint_they_ride_with(
    side: Side, db_url: str
) -> None:
    """When the joint write fails (here a CHECK constraint refuses the checkpoint row), the
    writes that waited for it are written alone: nothing is lost."""
    saver = side.checkpointer
    saver.coalescer.wait = 5.0
    graph = build().compile(checkpointer=saver)
    cfg: dict[str, Any] = {"configurable": {"thread_id": "ride-fails"}}
    await side.invoke(graph, {"items": ["x"]}, cfg)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "ALTER TABLE checkpoints ADD CONSTRAINT refuse"
            " CHECK (metadata ->> 'note' IS DISTINCT FROM 'refuse') NOT VALID"
        )
    parent = (await side.saver("get_tuple", cfg)).config
    writes = [("items", ["late"])]
    if side.is_async:
        offered = asyncio.ensure_future(saver.aput_writes(parent, writes, "task-1"))
    else:
        put_writes = saver.put_writes
        offered = asyncio.ensure_future(asyncio.to_thread(put_writes, parent, writes, "task-1"))
    while not saver.coalescer._offers:  # until the writes wait for their checkpoint
        await asyncio.sleep(0.01)
    checkpoint = {**(await side.saver("get_tuple", parent)).checkpoint, "id": str(uuid.uuid4())}
    with pytest.raises(InvalidInput):
        await side.saver("put", parent, checkpoint, {"note": "refuse"}, {})
    await asyncio.wait_for(offered, 10)
    pending = (await side.saver("get_tuple", parent)).pending_writes
    assert pending == [("task-1", "items", ["late"])]


async def test_copy_delete_for_runs_and_retention(side: Side) -> None:
    graph = build().compile(checkpointer=side.checkpointer)
    run1, run2 = uuid.uuid4(), uuid.uuid4()
    cfg: dict[str, Any] = {"configurable": {"thread_id": "src"}}
    await side.invoke(graph, {"items": ["1"]}, {**cfg, "metadata": {"run_id": str(run1)}})
    await side.invoke(graph, {"items": ["2"]}, {**cfg, "metadata": {"run_id": str(run2)}})
    await side.saver("copy_thread", "src", "dst")
    dst: dict[str, Any] = {"configurable": {"thread_id": "dst"}}
    assert (await side.state(graph, dst)).values == (await side.state(graph, cfg)).values
    await side.saver("delete_for_runs", [str(run2)])
    runs_left = {t.metadata.get("run_id") for t in await side.listed(cfg)}
    assert str(run2) not in runs_left and str(run1) in runs_left
    assert await side.saver("delete_stale_threads", timedelta(days=1)) == []
    stale = await side.saver("delete_stale_threads", timedelta(seconds=-60))
    assert sorted(stale) == ["dst", "src"]
    assert await side.listed(dst) == []


async def test_non_serialisable_state_is_a_clear_error(side: Side) -> None:
    class Opaque:
        def __init__(self) -> None:
            self.lock = threading.Lock()

    class S(TypedDict):
        thing: object

    g = StateGraph(S)
    g.add_node("n", lambda s: {"thing": Opaque()})
    g.add_edge(START, "n")
    graph = g.compile(checkpointer=side.checkpointer)
    with pytest.raises(SerializationError):
        await side.invoke(graph, {"thing": 1}, {"configurable": {"thread_id": "bad"}})


# ------------------------------------------------------------ the same rows as PostgresSaver


class Chat(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    n: int
    note: str | None


def _chat() -> StateGraph:
    """Messages (blobs), primitives (inline), an interrupt (special writes) and a
    fan-in, all written in one run."""

    def reply(state: Chat) -> dict[str, Any]:
        return {"messages": [AIMessage(f"reply {state['n']}", id=f"ai-{state['n']}")], "n": 1}

    def ask(state: Chat) -> dict[str, Any]:
        answer = interrupt("ok?")
        return {"messages": [HumanMessage(str(answer), id="answer")], "note": "asked"}

    g = StateGraph(Chat)
    g.add_node("reply", reply)
    g.add_node("ask", ask)
    g.add_edge(START, "reply")
    g.add_edge("reply", "ask")
    g.add_edge("ask", END)
    return g


#: Every column of the three checkpoint tables but the thread id and owner (which differ).
ROWS_SQL = {
    "checkpoints": """SELECT checkpoint_ns, checkpoint_id, parent_checkpoint_id, type,
                             checkpoint, metadata FROM checkpoints WHERE thread_id = %s
                      ORDER BY checkpoint_id""",
    "checkpoint_blobs": """SELECT checkpoint_ns, channel, version, type, blob
                           FROM checkpoint_blobs WHERE thread_id = %s
                           ORDER BY channel, version""",
    "checkpoint_writes": """SELECT checkpoint_ns, checkpoint_id, task_id, task_path, idx,
                                   channel, type, blob FROM checkpoint_writes
                            WHERE thread_id = %s ORDER BY checkpoint_id, task_id, idx""",
}


def _rows(url: str, thread: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        return {t: conn.execute(q, (thread,)).fetchall() for t, q in ROWS_SQL.items()}


class Replay(PostgresSaver):
    """Records the calls LangGraph makes, to replay them on another saver."""

    calls: list[tuple[str, tuple[Any, ...]]]

    def put(self, *args: Any) -> Any:
        self.calls.append(("put", args))
        return super().put(*args)

    def put_writes(self, *args: Any) -> None:
        self.calls.append(("put_writes", args))
        super().put_writes(*args)


def _on_thread(args: tuple[Any, ...], thread: str) -> tuple[Any, ...]:
    config = {**args[0], "configurable": {**args[0]["configurable"], "thread_id": thread}}
    return (config, *args[1:])


async def test_our_rows_are_postgres_savers_rows(side: Side, db_url: str) -> None:
    """The same calls (recorded from a real run) through PostgresSaver and through ours
    give the same rows, byte for byte, in all three tables."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        replay = Replay(conn)
        replay.calls = []
        graph = _chat().compile(checkpointer=replay)
        cfg: dict[str, Any] = {"configurable": {"thread_id": "theirs"}}
        graph.invoke({"messages": [HumanMessage("hi", id="h")], "n": 0, "note": None}, cfg)
        graph.invoke(Command(resume="yes"), cfg)
    for method, args in replay.calls:
        await side.saver(method, *_on_thread(args, "ours"))
    theirs, ours = _rows(db_url, "theirs"), _rows(db_url, "ours")
    assert all(theirs.values()) and theirs == ours


async def test_postgres_saver_reads_ours_and_we_read_theirs(side: Side, db_url: str) -> None:
    ours_graph = _chat().compile(checkpointer=side.checkpointer)
    start = {"messages": [HumanMessage("hi", id="h")], "n": 0, "note": None}
    mine: dict[str, Any] = {"configurable": {"thread_id": "written-by-us"}}
    theirs: dict[str, Any] = {"configurable": {"thread_id": "written-by-them"}}
    await side.invoke(ours_graph, start, mine)
    await side.invoke(ours_graph, Command(resume="yes"), mine)
    if side.is_async:
        async with AsyncPostgresSaver.from_conn_string(db_url) as saver:
            graph = _chat().compile(checkpointer=saver)
            read_by_them = [s async for s in graph.aget_state_history(mine)]
            await graph.ainvoke(start, theirs)
            await graph.ainvoke(Command(resume="yes"), theirs)
            their_history = [s async for s in graph.aget_state_history(theirs)]
    else:
        with PostgresSaver.from_conn_string(db_url) as saver:
            graph = _chat().compile(checkpointer=saver)
            read_by_them = list(graph.get_state_history(mine))
            graph.invoke(start, theirs)
            graph.invoke(Command(resume="yes"), theirs)
            their_history = list(graph.get_state_history(theirs))

    def key(s: Any) -> tuple[Any, ...]:
        return (s.values, s.next, s.metadata, s.parent_config, s.tasks, s.interrupts)

    ours_history = await side.history(ours_graph, mine)
    assert [key(s) for s in read_by_them] == [key(s) for s in ours_history]
    assert [key(s) for s in await side.history(ours_graph, theirs)] == [
        key(s) for s in their_history
    ]
    # and a thread written by them continues with us
    more = {"messages": [HumanMessage("again", id="h2")], "n": 5}
    await side.invoke(ours_graph, more, theirs)
    state = (await side.state(ours_graph, theirs)).values
    assert [m.id for m in state["messages"]] == ["h", "ai-0", "answer", "h2", "ai-5"]
