"""The store under row-level security (an application role, tenants per connection or per
request): background bookkeeping acts for the reader's tenant, and the async store's
batches never mix callers of different tenants or runs of different users."""

from __future__ import annotations

import asyncio
from typing import Any

from memhelp import rows

from langgraph_pgstore import AsyncDatabase, Database


def _counts(db: Database) -> dict[str, tuple[str | None, int]]:
    found = rows(db.store, "SELECT key, owner_id, access_count FROM memory_items ORDER BY key")
    return {r["key"]: (r["owner_id"], r["access_count"]) for r in found}


def test_reads_are_counted_for_the_readers_tenant(app_url: str, db: Database) -> None:
    db.memory().setup()  # DDL is the owner's job
    for user in ("alice", "bob"):
        with Database.connect(app_url, tenant=user, max_size=2) as t:
            t.store.put(("notes",), f"{user}-note", {"text": f"{user}'s"})
    with Database.connect(app_url, max_size=2) as app:  # no default: a scope per request
        store = app.memory()
        for user in ("alice", "bob", "bob"):
            with app.tenant(user):
                assert store.get(("notes",), f"{user}-note") is not None
                assert [i.key for i in store.search(("notes",))] == [f"{user}-note"]
        assert store.flush()  # each note written acting for its reader's tenant
    assert _counts(db) == {"alice-note": ("alice", 2), "bob-note": ("bob", 4)}


async def test_async_batches_keep_tenants_and_owners_apart(app_url: str, db: Database) -> None:
    db.memory().setup()

    async with AsyncDatabase.connect(app_url, max_size=2) as app:
        store = app.memory()

        async def act(user: str, n: int) -> list[str]:
            async with app.tenant(user):
                await store.aput(("notes",), f"{user}-{n}", {"n": n})
                return [i.key for i in await store.asearch(("notes",), limit=100)]

        seen = await asyncio.gather(*(act(u, n) for n in range(5) for u in ("alice", "bob")))
        await store.aflush()
    for keys in seen:  # every caller saw its own tenant's rows only
        assert len({k.split("-")[0] for k in keys}) == 1
    counts = _counts(db)
    assert {k: owner for k, (owner, _) in counts.items()} == {
        f"{u}-{n}": u for n in range(5) for u in ("alice", "bob")
    }


async def test_async_batches_own_each_runs_writes(adb: AsyncDatabase) -> None:
    """Without tenants, a put is owned by the user of the graph run it comes from, even when
    concurrent runs of different users share one batch."""
    from langgraph.config import get_store
    from langgraph.graph import START, MessagesState, StateGraph

    async def note(state: MessagesState) -> dict[str, Any]:
        await get_store().aput(("notes",), str(state["messages"][-1].content), {"v": 1})
        return {}

    graph = (
        StateGraph(MessagesState)
        .add_node("note", note)
        .add_edge(START, "note")
        .compile(store=adb.memory())
    )
    runs = [
        graph.ainvoke({"messages": [("user", f"{u}-{n}")]}, {"metadata": {"user_id": u}})
        for n in range(5)
        for u in ("alice", "bob")
    ]
    await asyncio.gather(*runs)
    found = rows(adb.store, "SELECT key, owner_id FROM memory_items")
    assert {r["key"]: r["owner_id"] for r in found} == {
        f"{u}-{n}": u for n in range(5) for u in ("alice", "bob")
    }
