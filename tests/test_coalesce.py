"""Where a task's writes meet the next checkpoint (``checkpoint/coalesce.py``): only a
checkpoint of the same thread, namespace, parent and tenant scope carries them."""

from __future__ import annotations

import threading

from langgraph_pgstore._ops import Query
from langgraph_pgstore.checkpoint.coalesce import MISSES, Coalescer
from langgraph_pgstore.checkpoint.writes import Write


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
