"""Failure semantics (issue 11, memory part): bad input gets our error naming the argument
and leaves the database as it was; reads never write in the request path and never
deadlock; the background jobs survive errors and say so."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from typing import Any

import pytest
from langgraph.store.base import GetOp, PutOp, SearchOp
from memhelp import WORDS, MakeStore, bow_index, rows

from langgraph_pgstore import Database, ExtensionMissing, InvalidInput
from langgraph_pgstore.errors import PgStoreError


def count(d: Any) -> int:
    return int(rows(d.store, "SELECT count(*) AS n FROM memory_items")[0]["n"])


def deep(n: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(n):
        value = {"a": value}
    return value


BAD_PUTS: list[tuple[tuple[Any, ...], Any, Any, str]] = [
    ((), "k", {"a": 1}, "namespace"),
    (("a.b",), "k", {"a": 1}, "namespace"),
    (("",), "k", {"a": 1}, "namespace"),
    (("ok", ""), "k", {"a": 1}, "namespace"),
    (("ok",), "", {"a": 1}, "key"),
    (("ok",), "k" * 2000, {"a": 1}, "key"),
    (("x" * 2000,), "k", {"a": 1}, "namespace"),
    (("ok",), "k", {"a": object()}, "value"),
    (("ok",), "k", {"a": math.nan}, "value"),
    (("ok",), "k", {"a": "x" * (5 * 1024 * 1024)}, "value"),
    (("ok",), "k", {"a": "nul\x00"}, "value"),
    (("ok",), "k", {"a": "\ud800"}, "value"),
    (("ok",), "k", {1: "int key"}, "value keys"),
    (("ok",), "k", deep(3000), "value"),
    (("ok",), "k", ["not", "a", "dict"], "value"),
]


@pytest.mark.parametrize(("ns", "key", "value", "named"), BAD_PUTS)
async def test_bad_puts_leave_the_database_unchanged(
    make_ours: MakeStore, ns: Any, key: Any, value: Any, named: str
) -> None:
    d = await make_ours()
    await d.put(("ok",), "pre", {"a": 0})
    with pytest.raises(InvalidInput, match=named):
        await d.batch([PutOp(("ok",), "in-batch", {"a": 1}), PutOp(ns, key, value)])
    assert count(d) == 1


BAD_CALLS: list[tuple[str, dict[str, Any], str]] = [
    ("search", {"limit": "5"}, "limit"),
    ("search", {"limit": -1}, "limit"),
    ("search", {"limit": 5.0}, "limit"),
    ("search", {"offset": "1"}, "offset"),
    ("search", {"query": 5}, "query"),
    ("search", {"min_score": 2}, "min_score"),
    ("search", {"min_score": math.nan}, "min_score"),
    ("search", {"mode": "fuzzy"}, "mode"),
    ("search", {"cursor": 12}, "cursor"),
    ("list_namespaces", {"limit": "5"}, "limit"),
    ("list_namespaces", {"max_depth": 0}, "max_depth"),
    ("list_namespaces", {"prefix": ("a.b",)}, "prefix"),
    ("put", {"ttl": -1}, "ttl"),
    ("put", {"ttl": 0}, "ttl"),
    ("put", {"ttl": "5"}, "ttl"),
    ("put", {"index": "text"}, "index"),
    ("delete_by_source", {"source": ""}, "source"),
]


@pytest.mark.parametrize(("method", "kwargs", "named"), BAD_CALLS)
async def test_bad_arguments_name_the_argument(
    make_ours: MakeStore, method: str, kwargs: dict[str, Any], named: str
) -> None:
    d = await make_ours()
    args: tuple[Any, ...] = {
        "search": (("ns",),),
        "list_namespaces": (),
        "put": (("ns",), "k", {"a": 1}),
        "delete_by_source": (("ns",),),
    }[method]
    with pytest.raises(InvalidInput, match=named):
        await getattr(d, method)(*args, **kwargs)
    assert count(d) == 0


@pytest.mark.parametrize(
    ("vectors", "named"),
    [
        (lambda texts: [[1.0] * len(WORDS)] * (len(texts) - 1), "returned 1 vectors for 2"),
        (lambda texts: [[0.0] * len(WORDS) for _ in texts], "all-zero"),
        (lambda texts: [[1.0] * (len(WORDS) - 1) for _ in texts], "dims"),
        (lambda texts: [[math.nan] * len(WORDS) for _ in texts], "NaN"),
        (lambda texts: [["x"] * len(WORDS) for _ in texts], "non-numeric"),
        (lambda texts: None, "list of vectors"),
    ],
)
async def test_bad_embedders_write_nothing(make_ours: MakeStore, vectors: Any, named: str) -> None:
    d = await make_ours(index={"dims": len(WORDS), "embed": vectors})
    with pytest.raises(InvalidInput, match=named):
        await d.batch([PutOp(("v",), "a", {"a": "one"}), PutOp(("v",), "b", {"b": "two"})])
    assert count(d) == 0


async def test_failing_embedder_writes_nothing(make_ours: MakeStore) -> None:
    def boom(texts: list[str]) -> list[list[float]]:
        raise RuntimeError("model down")

    d = await make_ours(index={"dims": len(WORDS), "embed": boom})
    with pytest.raises(RuntimeError, match="model down"):
        await d.batch([PutOp(("v",), "a", {"a": 1}), PutOp(("v",), "b", {"b": 1})])
    assert count(d) == 0


async def test_without_pgvector(make_ours: MakeStore) -> None:
    """A server without the vector extension: plain ops work, vector ops say what is missing."""
    d = await make_ours(index=bow_index())
    await d.put(("x",), "first", {"a": 1}, index=False)  # sets the store up
    d.store.core.has_vector = False  # what setup() finds on a server without pgvector
    await d.put(("x",), "plain", {"a": 1}, index=False)
    assert await d.get(("x",), "plain") is not None
    with pytest.raises(ExtensionMissing):
        await d.put(("x",), "k", {"a": "apple"})
    with pytest.raises(ExtensionMissing):
        await d.search(("x",), query="apple", mode="vector")
    assert await d.search(("x",), query="apple", mode="keyword") == []


# --------------------------------------------------------------------------- concurrency


def test_concurrent_reads_never_deadlock_and_are_all_counted(db: Database) -> None:
    """Issue 11: 3,000 concurrent reads over the same rows deadlocked. Reads now only note
    what they returned; writers lock rows in key order and skip locked ones. Bounded: 8
    threads x 150 reads (gets, searches, a get batch in reverse order), 4 store instances
    (4 background writers), plus a writer thread updating the same rows."""
    stores = [db.memory(ttl={"default_ttl": 60, "refresh_on_read": True}) for _ in range(4)]
    keys = [f"k{i:02d}" for i in range(40)]
    stores[0].batch([PutOp(("hot",), k, {"i": i}) for i, k in enumerate(keys)])
    errors: list[BaseException] = []
    reads = [0] * 8
    stop = threading.Event()

    def reader(n: int) -> None:
        store = stores[n % 4]
        try:
            for j in range(150):
                if j % 3 == 0:
                    reads[n] += len(store.search(("hot",), limit=40))
                elif j % 3 == 1:
                    ks = keys[::-1] if n % 2 else keys
                    reads[n] += sum(
                        1 for r in store.batch([GetOp(("hot",), k) for k in ks]) if r is not None
                    )
                else:
                    reads[n] += store.get(("hot",), keys[j % 40]) is not None
        except BaseException as exc:
            errors.append(exc)

    def writer() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                stores[1].put(("hot",), keys[i % 40], {"i": i})
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(8)]
    w = threading.Thread(target=writer)
    started = time.monotonic()
    w.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    stop.set()
    w.join(30)
    assert not errors, errors[:3]
    assert time.monotonic() - started < 120
    for s in stores:
        s.flush()
    with db.pool.connection() as c:
        total = c.execute("SELECT sum(access_count) AS n FROM memory_items").fetchone()["n"]  # type: ignore[index]
        deadlocks = c.execute(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()["deadlocks"]  # type: ignore[index]
    assert total == sum(reads)
    assert deadlocks == 0


# --------------------------------------------------------------------------- background jobs


def _break_table(d: Any) -> None:
    rows(d.store, "ALTER TABLE memory_items RENAME TO memory_items_away")


def _mend_table(d: Any) -> None:
    rows(d.store, "ALTER TABLE memory_items_away RENAME TO memory_items")


async def test_sweeper_survives_errors_and_reports_liveness(make_ours: MakeStore) -> None:
    d = await make_ours(ttl={"default_ttl": 60, "sweep_interval_minutes": 1})
    await d.put(("s",), "old", {"x": 1})
    rows(d.store, "UPDATE memory_items SET expires_at = now() - interval '1 minute'")
    status = d.store.background_status
    _break_table(d)
    try:
        await d.start_ttl_sweeper(0.3 / 60)  # every 0.3 s
        await _until(lambda: status()["ttl_sweeper"]["errors"] >= 2)
        st = status()["ttl_sweeper"]
        assert st["running"] and not st["healthy"] and "memory_items" in st["last_error"]
    finally:
        _mend_table(d)
    await _until(lambda: status()["ttl_sweeper"]["healthy"])
    assert count(d) == 0  # swept once the table was back
    assert status()["ttl_sweeper"]["running"]
    assert await d.stop_ttl_sweeper(5)
    assert not status()["ttl_sweeper"]["running"]


async def test_access_writer_keeps_notes_through_an_outage(make_ours: MakeStore) -> None:
    d = await make_ours()
    await d.put(("w",), "a", {"x": 1})
    await d.get(("w",), "a")  # writer running
    await d.settle()
    _break_table(d)
    try:
        for _ in range(3):
            with pytest.raises(PgStoreError):
                await d.get(("w",), "a")
        d.store.core.access.record([{"prefix": "w", "key": "a"}], None, count=True, refresh=False)
        await _until(lambda: d.store.background_status()["access_writer"]["errors"] >= 1)
        assert d.store.background_status()["access_writer"]["pending"] == 1
    finally:
        _mend_table(d)
    await _until(lambda: d.store.background_status()["access_writer"]["pending"] == 0)
    assert (await d.get(("w",), "a")).access_count == 2


async def _until(check: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


# --------------------------------------------------------------------------- plans


def test_filtered_vector_search_fills_limit_and_walks_the_index(db: Database) -> None:
    """A filter keeping 1% with ef_search=10 still fills the page (iterative scans), and the
    store's own statement with a 10% filter walks the HNSW index."""
    import numpy as np

    from langgraph_pgstore.memory.vectors import Vec

    rng = np.random.default_rng(0)
    vecs: dict[str, list[float]] = {}

    def embed(texts: list[str]) -> list[list[float]]:
        return [vecs[t] if t in vecs else rng.normal(size=32).tolist() for t in texts]

    s = db.memory(
        index={"dims": 32, "embed": embed, "fields": ["t"]},
        search_mode="vector",
        ef_search=10,
        track_access=False,
    )
    ops = []
    for i in range(3000):
        vecs[f"d{i}"] = rng.normal(size=32).tolist()
        ops.append(PutOp(("docs",), str(i), {"t": f"d{i}", "g": i % 100}))
    s.batch(ops)
    res = s.search(("docs",), query="q", filter={"g": 7}, limit=20)
    assert len(res) == 20 and all(r.value["g"] == 7 for r in res)
    with db.pool.connection() as c:
        c.execute("ANALYZE memory_items")
        c.execute("ANALYZE memory_vectors")
    plan = s.core.plan([SearchOp(("docs",), {"g": {"$lt": 10}}, 10, 0, "q")]).searches[0]
    gen = s.core._hits(plan, np.asarray(embed(["q"])[0], np.float32), 10, None)
    setting = next(gen)
    query = gen.send([])
    from psycopg import sql

    with db.pool.connection() as c, c.transaction():
        c.execute(setting.sql, setting.params)
        explain = "\n".join(
            r["QUERY PLAN"] for r in c.execute(sql.SQL("EXPLAIN ") + query.sql, query.params)
        )
    assert "ix_dyn_memory_vectors_hnsw_32" in explain, explain
    assert isinstance(query.params[0], Vec)
