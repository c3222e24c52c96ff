"""Where a task's writes meet the next checkpoint (``checkpoint/coalesce.py``): only a
checkpoint of the same thread, namespace, parent and tenant scope carries them, and errors
and interrupts never wait for one."""

from __future__ import annotations

import contextlib
import threading
from typing import Any, TypedDict

from langgraph.checkpoint.base import WRITES_IDX_MAP
from langgraph.graph import START, StateGraph
from langgraph.types import interrupt

from langgraph_pgstore import Database
from langgraph_pgstore._ops import Query
from langgraph_pgstore.checkpoint.coalesce import MISSES, Coalescer, Offer
from langgraph_pgstore.checkpoint.writes import Write


class State(TypedDict):
    answer: str


def _write(tenant: str, checkpoint: str = "c1", thread: str = "t") -> Write:
    return Write([Query(f"-- writes of {tenant}")], key=(thread, "", checkpoint, (tenant, None)))


def test_another_tenants_checkpoint_never_carries_the_writes() -> None:
    coalescer = Coalescer()
    offer = coalescer.offer(_write("acme"), threading.Event())
    assert offer is not None
    theirs = _write("globex")
    assert coalescer.take(theirs) == [] and len(theirs.queries) == 1
    ours = _write("acme")
    assert coalescer.take(ours) == [offer]
    assert [q.sql for q in ours.queries] == ["-- writes of acme", "-- writes of acme"]


def test_a_thread_whose_checkpoints_come_late_is_not_waited_for() -> None:
    coalescer = Coalescer()
    for n in range(MISSES):
        offer = coalescer.offer(_write("acme", f"c{n}"), threading.Event())
        assert offer is not None and coalescer.withdraw(offer)  # waited in vain
        assert coalescer.take(_write("acme", f"c{n}")) == []  # the put came later
    assert coalescer.offer(_write("acme", "c9"), threading.Event()) is None
    assert coalescer.offer(_write("acme", "c9", thread="u"), threading.Event()) is not None


def test_errors_and_interrupts_are_written_at_once(db: Database) -> None:
    """Nothing follows them soon (the run stops), so they never wait for a checkpoint."""
    offered: list[Write] = []
    offer = db.checkpointer.coalescer.offer

    def recording(write: Write, done: Any) -> Offer | None:
        waiting = offer(write, done)
        if waiting is not None:
            offered.append(write)
        return waiting

    db.checkpointer.coalescer.offer = recording  # type: ignore[method-assign]

    def ask(state: State) -> State:
        return {"answer": interrupt("ok?")}

    def fail(state: State) -> State:
        raise ValueError("boom")

    for node, thread in ((ask, "asks"), (fail, "fails")):
        graph = (
            StateGraph(State)
            .add_node("n", node)
            .add_edge(START, "n")
            .compile(checkpointer=db.checkpointer)
        )
        config = {"configurable": {"thread_id": thread}}
        with contextlib.suppress(ValueError):
            graph.invoke({"answer": ""}, config)
        writes = graph.get_state(config).tasks[0]
        assert writes.interrupts or writes.error  # written, and read back
    channels = {row[6] for w in offered for q in w.queries if q.many for row in q.many}
    assert offered and not channels & set(WRITES_IDX_MAP)
