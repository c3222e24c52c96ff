"""Memory store against the real database: BaseStore semantics, filters, TTL, hybrid, dedup."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pytest
from langgraph.store.base import GetOp, ListNamespacesOp, MatchCondition, PutOp, SearchOp
from psycopg import sql

from langgraph_pgstore import Database, InvalidInput
from langgraph_pgstore.memory import DedupConfig, RankingConfig

DIMS = 8
WORDS = ["apple", "banana", "cherry", "dog", "cat", "car", "train", "plane"]


def fake_embed(texts: list[str]) -> list[list[float]]:
    """Deterministic bag-of-words vectors: texts sharing words are similar."""
    out = []
    for t in texts:
        v = [1.0 if w in t.lower() else 0.0 for w in WORDS]
        v[-1] += 0.01  # never all-zero
        out.append(v)
    return out


def index(**extra: Any) -> dict[str, Any]:
    return {"dims": DIMS, "embed": fake_embed, **extra}


def count(db: Database) -> int:
    with db.pool.connection() as c:
        return c.execute("SELECT count(*) AS n FROM memory_items").fetchone()["n"]  # type: ignore[index]


def test_crud_and_namespaces(db: Database) -> None:
    s = db.store
    s.put(("users", "u1", "prefs"), "k1", {"a": 1})
    s.put(("users", "u1", "facts"), "k2", {"b": 2})
    s.put(("users", "u2", "facts"), "k3", {"c": 3})
    item = s.get(("users", "u1", "prefs"), "k1")
    assert (
        item is not None and item.value == {"a": 1} and item.namespace == ("users", "u1", "prefs")
    )
    assert item.created_at <= item.updated_at
    s.put(("users", "u1", "prefs"), "k1", {"a": 2})
    again = s.get(("users", "u1", "prefs"), "k1")
    assert again is not None and again.value == {"a": 2} and again.created_at == item.created_at
    assert s.get(("users", "u1"), "k1") is None
    assert {r.key for r in s.search(("users", "u1"))} == {"k1", "k2"}
    assert len(s.search(("users",), limit=2)) == 2
    assert len(s.search(("users",), limit=2, offset=2)) == 1
    assert s.list_namespaces() == [
        ("users", "u1", "facts"),
        ("users", "u1", "prefs"),
        ("users", "u2", "facts"),
    ]
    assert s.list_namespaces(max_depth=2) == [("users", "u1"), ("users", "u2")]
    assert s.list_namespaces(suffix=("facts",)) == [
        ("users", "u1", "facts"),
        ("users", "u2", "facts"),
    ]
    assert s.list_namespaces(prefix=("users", "*", "prefs")) == [("users", "u1", "prefs")]
    assert s.list_namespaces(limit=1, offset=1) == [("users", "u1", "prefs")]
    s.delete(("users", "u1", "prefs"), "k1")
    assert s.get(("users", "u1", "prefs"), "k1") is None
    # a prefix that looks like a LIKE pattern matches literally
    s.put(("a_b",), "x", {})
    s.put(("axb",), "y", {})
    assert [r.key for r in s.search(("a_b",))] == ["x"]


def test_batch_mixed_ops(db: Database) -> None:
    s = db.store
    res = s.batch(
        [
            PutOp(("n",), "a", {"x": 1}),
            PutOp(("n",), "b", {"x": 2}),
            PutOp(("n",), "a", {"x": 3}),  # last write wins
            GetOp(("n",), "a"),
            SearchOp(("n",), {"x": {"$gte": 2}}),
            ListNamespacesOp((MatchCondition("prefix", ("n",)),)),
        ]
    )
    assert res[:3] == [None, None, None]
    assert res[3] is not None and res[3].value == {"x": 3}
    assert {i.key for i in res[4]} == {"a", "b"}
    assert res[5] == [("n",)]


FILTER_DOCS: dict[str, dict[str, Any]] = {
    "n2": {"n": 2, "s": "b", "flag": True, "tags": ["x"], "meta": {"lvl": 2}},
    "n10": {"n": 10, "s": "a", "flag": False, "meta": {"lvl": 10}},
    "n9": {"n": 9.5, "s": "c", "nul": None, "meta": {"lvl": 1}},
    "str": {"n": "11", "s": "10"},
}


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"n": 2}, {"n2"}),
        ({"n": {"$eq": 10}}, {"n10"}),
        ({"n": {"$ne": 10}}, {"n2", "n9", "str"}),
        ({"n": {"$gt": 9}}, {"n10", "n9"}),  # numeric, not text: "10" > "9" fails as text
        ({"n": {"$gte": 9.5}}, {"n10", "n9"}),
        ({"n": {"$lt": 10}}, {"n2", "n9"}),
        ({"n": {"$lte": 10, "$gt": 2}}, {"n10", "n9"}),
        ({"s": {"$gt": "a"}}, {"n2", "n9"}),  # "10" sorts before "a"
        ({"n": {"$in": [2, 9.5, "11"]}}, {"n2", "n9", "str"}),
        ({"n": {"$nin": [2, 10]}}, {"n9", "str"}),
        ({"flag": True}, {"n2"}),
        ({"flag": {"$ne": True}}, {"n10", "n9", "str"}),
        ({"nul": None}, {"n9"}),
        ({"nul": {"$exists": True}}, {"n9"}),
        ({"flag": {"$exists": False}}, {"n9", "str"}),
        ({"meta.lvl": {"$gte": 2}}, {"n2", "n10"}),
        ({"meta": {"lvl": 1}}, {"n9"}),
        ({"tags": ["x"]}, {"n2"}),
        ({"s": {"$in": ["a", "b"]}, "n": {"$lt": 5}}, {"n2"}),
    ],
)
def test_filters(db: Database, flt: dict[str, Any], expected: set[str]) -> None:
    s = db.store
    for k, v in FILTER_DOCS.items():
        s.put(("f",), k, v)
    assert {r.key for r in s.search(("f",), filter=flt)} == expected


@pytest.mark.parametrize(
    "flt",
    [
        {"n": {"$regex": "x"}},
        {"n": {"$in": 3}},
        {"n": {"$exists": 1}},
        {"n": {"$gt": None}},
        {"n": {"$eq": 1, "x": 2}},
        {"": 1},
        {"a..b": 1},
    ],
)
def test_bad_filters(db: Database, flt: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        db.store.search(("f",), filter=flt)


def test_vector_search_scores_and_index(db: Database) -> None:
    s = db.memory(index=index(fields=["text"]), search_mode="vector")
    s.put(("m",), "fruit", {"text": "apple banana"})
    s.put(("m",), "pets", {"text": "dog cat"})
    s.put(("m",), "vehicles", {"text": "car train plane"})
    s.put(("m",), "unindexed", {"text": "apple banana"}, index=False)
    res = s.search(("m",), query="banana apple", limit=2)
    assert res[0].key == "fruit" and res[0].score == pytest.approx(1.0, abs=1e-3)
    assert "unindexed" not in {r.key for r in s.search(("m",), query="apple", limit=10)}
    assert [r.key for r in s.search(("m",), query="apple banana", min_score=0.9)] == ["fruit"]
    assert len(s.search(("m",), query="apple", min_score=0.5)) == 1  # cos 0.707 vs 0
    with db.pool.connection() as c:
        names = {
            r["indexname"]
            for r in c.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'memory_vectors'"
            )
        }
    assert f"ix_dyn_memory_vectors_hnsw_{DIMS}" in names


def test_filtered_vector_search_fills_limit_and_uses_index(db: Database) -> None:
    rng = np.random.default_rng(0)
    vecs = {}

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
    # only 1% match; ef_search=10 alone would return ~0 matches without iterative scans
    res = s.search(("docs",), query="q", filter={"g": 7}, limit=20)
    assert len(res) == 20 and all(r.value["g"] == 7 for r in res)
    # EXPLAIN the store's own query with a filter keeping 10%: it must walk the HNSW index
    with db.pool.connection() as c:
        c.execute("ANALYZE memory_items")
        c.execute("ANALYZE memory_vectors")
    op = SearchOp(("docs",), {"g": {"$lt": 10}}, 10, 0, "q")
    where, params = s.core._filter_sql(op)
    gen = s.core._vector_hits(where, params, np.asarray(embed(["q"])[0], np.float32), 10)
    setting = next(gen)
    query = gen.send([])
    with db.pool.connection() as c, c.transaction():
        c.execute(setting.sql, setting.params)
        plan = "\n".join(
            r["QUERY PLAN"] for r in c.execute(sql.SQL("EXPLAIN ") + query.sql, query.params)
        )
    assert "ix_dyn_memory_vectors_hnsw_32" in plan, plan


def test_keyword_and_hybrid(db: Database) -> None:
    s = db.memory(index=index(fields=["text"]))
    s.put(("h",), "1", {"text": "the train leaves at noon"})
    s.put(("h",), "2", {"text": "apple pie recipe"})
    s.put(("h",), "3", {"text": "trains and planes schedule"})
    kw = s.search(("h",), query="trains", mode="keyword")
    assert {r.key for r in kw} == {"1", "3"}  # English stemming: train ~ trains
    hy = s.search(("h",), query="train", mode="hybrid")
    assert hy[0].key in {"1", "3"} and hy[0].score is not None
    assert hy[0].score > hy[-1].score
    plain = db.store  # no index: query means keyword
    plain.put(("p",), "x", {"note": "remember the milk"})
    assert [r.key for r in plain.search(("p",), query="milk")] == ["x"]


def test_ranking_importance_recency_and_access(db: Database) -> None:
    s = db.memory(
        index=index(fields=["text"]),
        search_mode="vector",
        ranking=RankingConfig(importance_weight=0.5),
    )
    s.put(("r",), "low", {"text": "apple banana", "importance": 0.0})
    s.put(("r",), "high", {"text": "apple cherry", "importance": 1.0})
    res = s.search(("r",), query="apple banana")
    assert [r.key for r in res] == ["high", "low"]
    s.get(("r",), "high")
    with db.pool.connection() as c:
        row = c.execute(
            "SELECT access_count, last_accessed_at FROM memory_items WHERE key = 'high'"
        ).fetchone()
    assert row is not None and row["access_count"] == 2 and row["last_accessed_at"] is not None


def test_dedup_skip_merge_and_delete_by_source(db: Database) -> None:
    skip = db.memory(index=index(fields=["text"]), dedup=DedupConfig(threshold=0.95))
    skip.put(("d",), "a", {"text": "apple banana", "source": "s1"})
    skip.put(("d",), "b", {"text": "banana apple"})  # semantic duplicate -> skipped
    skip.put(("d",), "c", {"text": "dog", "source": "s1"})  # same source -> skipped
    skip.put(("d",), "a", {"text": "dog cat", "source": "s1"})  # same key -> update
    skip.put(("d",), "e", {"text": "car"})
    assert {r.key for r in skip.search(("d",))} == {"a", "e"}
    merge = db.memory(index=index(fields=["text"]), dedup=DedupConfig(action="merge"))
    merge.put(("m",), "a", {"text": "apple", "n": 1})
    merge.put(("m",), "b", {"text": "apple", "extra": True})
    item = merge.get(("m",), "a")
    assert merge.get(("m",), "b") is None
    assert item is not None and item.value == {"text": "apple", "n": 1, "extra": True}
    assert skip.delete_by_source(("d",), "s1") == 1
    assert {r.key for r in skip.search(("d",))} == {"e"}


def test_ttl_refresh_and_sweep(db: Database) -> None:
    s = db.memory(ttl={"default_ttl": 0.02, "refresh_on_read": True})  # 1.2 s
    s.put(("t",), "a", {"x": 1})
    s.put(("t",), "b", {"x": 2})
    s.put(("t",), "forever", {"x": 3}, ttl=None)
    time.sleep(0.7)
    assert s.get(("t",), "a") is not None  # refreshed
    time.sleep(0.7)
    assert s.get(("t",), "b", refresh_ttl=False) is None  # expired, hidden
    assert s.get(("t",), "a") is not None
    assert s.sweep_ttl() == 1
    assert {r.key for r in s.search(("t",))} == {"a", "forever"}


BAD_PUTS: list[tuple[tuple[Any, ...], Any, Any]] = [
    ((), "k", {"a": 1}),
    (("a.b",), "k", {"a": 1}),
    (("",), "k", {"a": 1}),
    (("ok", ""), "k", {"a": 1}),
    (("langgraph",), "k", {"a": 1}),
    (("ok",), "", {"a": 1}),
    (("ok",), "k", {"a": object()}),
    (("ok",), "k", {"a": math.nan}),
    (("ok",), "k", {"a": "x" * (5 * 1024 * 1024)}),
    (("ok",), "k", {"a": "nul\x00"}),
]


@pytest.mark.parametrize(("ns", "key", "value"), BAD_PUTS)
def test_bad_puts_leave_db_unchanged(db: Database, ns: Any, key: Any, value: Any) -> None:
    s = db.store
    s.put(("ok",), "pre", {"a": 0})
    with pytest.raises(InvalidInput):
        s.batch([PutOp(("ok",), "in-batch", {"a": 1}), PutOp(ns, key, value)])
    assert count(db) == 1


@pytest.mark.parametrize(
    "vector", [[0.0] * DIMS, [1.0] * (DIMS - 1), [math.nan] + [1.0] * (DIMS - 1), [math.inf] * DIMS]
)
def test_bad_vectors_leave_db_unchanged(db: Database, vector: list[float]) -> None:
    s = db.memory(index={"dims": DIMS, "embed": lambda texts: [vector for _ in texts]})
    with pytest.raises(InvalidInput):
        s.put(("v",), "k", {"a": 1})
    assert count(db) == 0


def test_failing_embedder_writes_nothing(db: Database) -> None:
    def boom(texts: list[str]) -> list[list[float]]:
        raise RuntimeError("model down")

    s = db.memory(index={"dims": DIMS, "embed": boom})
    with pytest.raises(RuntimeError):
        s.batch([PutOp(("v",), "a", {"a": 1}), PutOp(("v",), "b", {"b": 1})])
    assert count(db) == 0


def test_without_pgvector(server_url: str, fresh_db_url: str) -> None:
    """A server without the vector extension: plain ops work, vector ops say what is missing."""
    from langgraph_pgstore import ExtensionMissing
    from langgraph_pgstore.memory import base

    with Database.connect(fresh_db_url, max_size=2) as d:
        s = d.memory(index=index())
        s.core._has_vector = False  # what setup() reports on a server without pgvector
        s.put(("x",), "plain", {"a": 1}, index=False)
        assert s.get(("x",), "plain") is not None
        with pytest.raises(ExtensionMissing):
            s.put(("x",), "k", {"a": 1})
        with pytest.raises(ExtensionMissing):
            s.search(("x",), query="apple", mode="vector")
        assert [r.key for r in s.search(("x",), query="apple", mode="keyword")] == []
    assert base.HAS_VECTOR


def test_graph_threads_share_memory(db: Database) -> None:
    from langchain_core.runnables import RunnableConfig
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.store.base import BaseStore

    store = db.memory(index=index(fields=["text"]))

    def node(state: MessagesState, config: RunnableConfig, *, store: BaseStore) -> dict[str, Any]:
        user = config["configurable"]["user_id"]
        text = state["messages"][-1].content
        if text.startswith("remember "):
            store.put(("memories", user), str(len(text)), {"text": text[9:]})
            return {"messages": [("ai", "ok")]}
        found = store.search(("memories", user), query=text, limit=1)
        return {"messages": [("ai", found[0].value["text"] if found else "nothing")]}

    builder = StateGraph(MessagesState)
    builder.add_node("node", node)
    builder.add_edge(START, "node")
    graph = builder.compile(checkpointer=db.checkpointer, store=store)
    graph.invoke(
        {"messages": [("user", "remember I like apple pie")]},
        {"configurable": {"thread_id": "t1", "user_id": "u1"}},
    )
    out = graph.invoke(
        {"messages": [("user", "apple")]}, {"configurable": {"thread_id": "t2", "user_id": "u1"}}
    )
    assert out["messages"][-1].content == "I like apple pie"
    other = graph.invoke(
        {"messages": [("user", "apple")]}, {"configurable": {"thread_id": "t3", "user_id": "u2"}}
    )
    assert other["messages"][-1].content == "nothing"


def test_batch_with_search_before_put(db: Database) -> None:
    """Query texts and document texts share one embedding call; vectors must not shift."""
    s = db.memory(index=index(fields=["text"]), search_mode="vector")
    s.put(("b",), "old", {"text": "dog"})
    res = s.batch([SearchOp(("b",), query="dog"), PutOp(("b",), "new", {"text": "apple"})])
    assert res[0][0].key == "old"
    assert s.search(("b",), query="apple")[0].key == "new"


def test_bm25_keyword_search_when_pg_textsearch_is_installed(db: Database) -> None:
    with db.pool.connection() as c:
        row = c.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_textsearch'"
        ).fetchone()
        if row is None:
            pytest.skip("pg_textsearch not available on this server")
        try:
            c.execute("CREATE EXTENSION IF NOT EXISTS pg_textsearch")
        except Exception as exc:  # not in shared_preload_libraries
            pytest.skip(f"pg_textsearch can't be created here: {exc}")
    s = db.memory(search_mode="keyword")
    s.put(("k",), "rare", {"note": "zebra crossing near the station"})
    s.put(("k",), "common", {"note": "the station the station the station"})
    s.put(("k",), "none", {"note": "nothing relevant"})
    assert s.core._has_bm25
    res = s.search(("k",), query="zebra station")
    assert [r.key for r in res] == ["rare", "common"]  # IDF: 'zebra' is rarer than 'station'
    assert res[0].score is not None and res[0].score > res[1].score > 0
    filtered = s.search(("k",), query="station", filter={"note": {"$ne": "x"}})
    assert {r.key for r in filtered} == {"rare", "common"}
    with db.pool.connection() as c:
        names = {
            r["indexname"]
            for r in c.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'memory_items'")
        }
    assert "ix_dyn_memory_items_bm25_english" in names
