"""Beyond LangGraph's contract (README: memory), each test over our sync and async stores:
filters, scores and modes, distance types, ranking, dedup, TTL, cursors, precomputed
vectors, bookkeeping on items, batching, graphs."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import numpy as np
import pytest
from langgraph.store.base import PutOp, SearchOp
from memhelp import WORDS, CharacterEmbeddings, MakeStore, bag_of_words, bow_index, rows

from langgraph_pgstore import InvalidInput
from langgraph_pgstore.memory import DedupConfig, PutResult, RankingConfig

# --------------------------------------------------------------------------- filters

FILTER_DOCS: dict[str, dict[str, Any]] = {
    "n2": {"n": 2, "s": "b", "flag": True, "tags": ["x"], "meta": {"lvl": 2}},
    "n10": {"n": 10, "s": "a", "flag": False, "meta": {"lvl": 10}},
    "n9": {"n": 9.5, "s": "c", "nul": None, "meta": {"lvl": 1}},
    "str": {"n": "11", "s": "10"},
}
FILTERS: list[tuple[dict[str, Any], set[str]]] = [
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
]


async def test_filters(make_ours: MakeStore) -> None:
    d = await make_ours()
    await d.batch([PutOp(("f",), k, v) for k, v in FILTER_DOCS.items()])
    for flt, expected in FILTERS:
        assert {r.key for r in await d.search(("f",), filter=flt)} == expected, flt


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
        "n = 1",
    ],
)
async def test_bad_filters(make_ours: MakeStore, flt: Any) -> None:
    d = await make_ours()
    with pytest.raises(InvalidInput):
        await d.search(("f",), filter=flt)


# --------------------------------------------------------------------------- scores


async def test_vector_scores_min_score_and_index(make_ours: MakeStore) -> None:
    d = await make_ours(index=bow_index(fields=["text"]), search_mode="vector")
    await d.put(("m",), "fruit", {"text": "apple banana"})
    await d.put(("m",), "pets", {"text": "dog cat"})
    await d.put(("m",), "vehicles", {"text": "car train plane"})
    res = await d.search(("m",), query="banana apple", limit=2)
    assert res[0].key == "fruit" and res[0].score == pytest.approx(1.0, abs=1e-3)
    assert all(0.0 <= r.score <= 1.0 for r in await d.search(("m",), query="apple"))
    assert [r.key for r in await d.search(("m",), query="apple banana", min_score=0.9)] == ["fruit"]
    assert len(await d.search(("m",), query="apple", min_score=0.5)) == 1  # cos 0.707 vs 0
    names = {r["indexname"] for r in rows(d.store, "SELECT indexname FROM pg_indexes")}
    assert f"ix_dyn_memory_vectors_hnsw_{len(WORDS)}" in names


async def test_scores_compare_across_modes(make_ours: MakeStore) -> None:
    """The same item scores the same in hybrid as in vector mode unless query words match,
    and a keyword match only raises it (never to 1 on its own)."""
    d = await make_ours(index=bow_index(fields=["text"]))
    await d.put(("s",), "sem", {"text": "apple banana cherry"})
    await d.put(("s",), "kw", {"text": "the zebra crossing"})
    vec = {r.key: r.score for r in await d.search(("s",), query="apple zebra", mode="vector")}
    hyb = {r.key: r.score for r in await d.search(("s",), query="apple zebra", mode="hybrid")}
    kw = {r.key: r.score for r in await d.search(("s",), query="apple zebra", mode="keyword")}
    assert kw == {"sem": pytest.approx(0.5), "kw": pytest.approx(0.5)}  # 1 of 2 terms each
    for key in ("sem", "kw"):
        assert vec[key] < hyb[key] < 1.0
        assert hyb[key] == pytest.approx(1 - (1 - vec[key]) * (1 - 0.5 * kw[key]))
    none = await d.search(("s",), query="cherry", mode="hybrid")
    nokw = await d.search(("s",), query="cherry", mode="vector")
    assert {r.key: r.score for r in none}["kw"] == pytest.approx(
        {r.key: r.score for r in nokw}["kw"]
    )


async def test_min_score_thresholds_relevance_in_hybrid_mode(make_ours: MakeStore) -> None:
    """A weak semantic match that shares a word is not relevant at 0.85 (issue 13: rank
    fusion values let it through)."""
    d = await make_ours(index=bow_index(fields=["text"]))
    await d.put(("h",), "weak", {"text": "apple banana cherry dog cat car"})
    await d.put(("h",), "strong", {"text": "train plane"})
    res = await d.search(("h",), query="train plane apple", min_score=0.85)
    assert [r.key for r in res] == ["strong"]
    assert all(r.relevance >= 0.85 for r in res)


async def test_importance_blends_with_relevance(make_ours: MakeStore) -> None:
    """Issue 13's case: with importance weighted 0.3 the dog still comes first in hybrid."""
    vocab = ["rex", "golden", "retriever", "dog", "jazz", "concerts", "niihama", "sea"]

    def embed(texts: list[str]) -> list[list[float]]:
        return [[float(w in t.lower()) for w in vocab] + [0.05] for t in texts]

    d = await make_ours(
        index={"dims": len(vocab) + 1, "embed": embed, "fields": ["text"]},
        ranking=RankingConfig(importance_weight=0.3),
    )
    await d.put(("u",), "dog", {"text": "Rex is a golden retriever dog", "importance": 0.2})
    await d.put(("u",), "jazz", {"text": "enjoys late night jazz concerts", "importance": 0.5})
    await d.put(("u",), "city", {"text": "lives in Niihama near the sea", "importance": 0.9})
    for mode in ("hybrid", "vector"):
        res = await d.search(("u",), query="dog named Rex", mode=mode)
        assert res[0].key == "dog", (mode, [(r.key, r.score) for r in res])
        top = res[0]
        assert top.score == pytest.approx(0.7 * top.relevance + 0.3 * 0.2)
        assert top.importance == 0.2


async def test_keyword_search_is_or_with_ranking(make_ours: MakeStore) -> None:
    d = await make_ours(index=bow_index(fields=["text"]))
    await d.put(("k",), "1", {"text": "the train leaves at noon"})
    await d.put(("k",), "2", {"text": "apple pie recipe"})
    await d.put(("k",), "3", {"text": "trains and planes schedule"})
    kw = await d.search(("k",), query="trains", mode="keyword")
    assert {r.key for r in kw} == {"1", "3"}  # English stemming: train ~ trains
    ordinary = await d.search(("k",), query="which trains or planes leave at noon?", mode="keyword")
    assert [r.key for r in ordinary] == ["1", "3"]  # not every word must match
    assert [r.score for r in ordinary] == [pytest.approx(0.75), pytest.approx(0.5)]
    phrase = await d.search(("k",), query='"apple pie"', mode="keyword")
    assert [r.key for r in phrase] == ["2"]
    assert await d.search(("k",), query='"pie apple"', mode="keyword") == []
    assert await d.search(("k",), query="); DROP TABLE memory_items; --", mode="keyword") == []


async def test_keyword_mode_without_index_and_query_ignored_otherwise(make_ours: MakeStore) -> None:
    plain = await make_ours()  # hybrid by default, no index: query ignored, as upstream
    await plain.put(("p",), "x", {"note": "remember the milk"})
    await plain.put(("p",), "y", {"note": "something else"})
    assert {r.key for r in await plain.search(("p",), query="milk")} == {"x", "y"}
    assert [r.key for r in await plain.search(("p",), query="milk", mode="keyword")] == ["x"]
    kw = await make_ours(search_mode="keyword")
    assert [r.key for r in await kw.search(("p",), query="milk")] == ["x"]
    await kw.put(("p",), "z", {"note": "milk again"}, index=False)
    assert "z" not in {r.key for r in await kw.search(("p",), query="milk")}


async def test_index_false_is_never_a_query_result(make_ours: MakeStore) -> None:
    d = await make_ours(index=bow_index(fields=["text"]))
    await d.put(("i",), "on", {"text": "apple"})
    await d.put(("i",), "off", {"text": "apple"}, index=False)
    for mode in ("hybrid", "vector", "keyword"):
        assert [r.key for r in await d.search(("i",), query="apple", mode=mode)] == ["on"]
    await d.put(("i",), "on", {"text": "apple"}, index=False)  # re-put unindexed: gone too
    assert await d.search(("i",), query="apple") == []
    assert {r.key for r in await d.search(("i",))} == {"on", "off"}


@pytest.mark.parametrize(
    ("distance", "vector_type"),
    [("cosine", "halfvec"), ("l2", "vector"), ("inner_product", "vector"), ("l2", "halfvec")],
)
async def test_distance_types_and_halfvec(
    make_ours: MakeStore, distance: str, vector_type: str
) -> None:
    base, away = np.eye(16)[0], np.eye(16)[1]
    vecs = {f"d{i}": base + 0.4 * i * away for i in range(1, 6)}  # farther and farther
    vecs = {k: (v / np.linalg.norm(v)).tolist() for k, v in vecs.items()}
    vecs["q"] = base.tolist()

    def embed(texts: list[str]) -> list[list[float]]:
        return [vecs[t] for t in texts]

    index = {
        "dims": 16,
        "embed": embed,
        "fields": ["t"],
        "distance_type": distance,
        "ann_index_config": {"vector_type": vector_type},
    }
    d = await make_ours(index=index, search_mode="vector")
    for key in ("d1", "d2", "d3", "d4", "d5"):
        await d.put(("v",), key, {"t": key})
    res = await d.search(("v",), query="q")
    assert [r.key for r in res] == ["d1", "d2", "d3", "d4", "d5"]
    for r in res:  # unit vectors: every distance type gives the cosine similarity
        cos = float(np.dot(vecs["q"], vecs[r.key]))
        assert r.score == pytest.approx(
            max(cos, 0.0), abs=2e-3 if vector_type == "halfvec" else 1e-5
        )
    ops = {"cosine": "cosine_ops", "l2": "l2_ops", "inner_product": "ip_ops"}[distance]
    defs = [r["indexdef"] for r in rows(d.store, "SELECT indexdef FROM pg_indexes")]
    assert any(f"{vector_type}_{ops}" in x and "hnsw" in x for x in defs), defs


# --------------------------------------------------------------------------- bookkeeping


async def test_items_carry_access_count_and_importance(make_ours: MakeStore) -> None:
    d = await make_ours(index=bow_index(fields=["text"]))
    await d.put(("r",), "a", {"text": "apple", "importance": 0.7})
    first = await d.get(("r",), "a")
    assert first.access_count == 0 and first.last_accessed_at is None
    assert first.importance == 0.7
    await d.search(("r",), query="apple")
    await d.settle()
    again = await d.get(("r",), "a")
    assert again.access_count == 2 and again.last_accessed_at is not None
    assert again.dict()["access_count"] == 2
    await d.settle()
    hit = (await d.search(("r",), query="apple"))[0]
    assert hit.access_count == 3 and hit.importance == 0.7 and hit.relevance == hit.score


async def test_track_access_false_writes_nothing(make_ours: MakeStore) -> None:
    d = await make_ours(track_access=False)
    await d.put(("t",), "a", {"x": 1})
    before = rows(d.store, "SELECT xmin::text AS x, access_count FROM memory_items")
    for _ in range(3):
        await d.get(("t",), "a")
        await d.search(("t",))
    assert d.store.core.access.pending == 0
    await d.settle()
    assert rows(d.store, "SELECT xmin::text AS x, access_count FROM memory_items") == before


async def test_recency_blends_with_relevance(make_ours: MakeStore) -> None:
    d = await make_ours(
        index=bow_index(fields=["text"]),
        search_mode="vector",
        ranking=RankingConfig(recency_weight=0.5, half_life_days=1),
    )
    await d.put(("r",), "old", {"text": "apple banana"})
    await d.put(("r",), "new", {"text": "apple cherry"})
    rows(
        d.store, "UPDATE memory_items SET updated_at = now() - interval '10 days' WHERE key = 'old'"
    )
    assert [r.key for r in await d.search(("r",), query="apple banana")] == ["new", "old"]


# --------------------------------------------------------------------------- dedup, TTL


async def test_dedup_reports_what_it_did(make_ours: MakeStore) -> None:
    skip = await make_ours(index=bow_index(fields=["text"]), dedup=DedupConfig(threshold=0.95))
    assert await skip.put(("d",), "a", {"text": "apple banana", "source": "s1"}) == PutResult(
        "inserted", "a"
    )
    assert await skip.put(("d",), "b", {"text": "banana apple"}) == PutResult("skipped", "b", "a")
    assert await skip.put(("d",), "c", {"text": "dog", "source": "s1"}) == PutResult(
        "skipped", "c", "a"
    )
    assert await skip.put(("d",), "a", {"text": "dog cat", "source": "s1"}) == PutResult(
        "updated", "a"
    )
    await skip.put(("d",), "e", {"text": "car"})
    assert {r.key for r in await skip.search(("d",))} == {"a", "e"}
    merge = await make_ours(index=bow_index(fields=["text"]), dedup=DedupConfig(action="merge"))
    await merge.put(("m",), "a", {"text": "apple", "n": 1})
    assert await merge.put(("m",), "b", {"text": "apple", "extra": True}) == PutResult(
        "merged", "b", "a"
    )
    assert await merge.get(("m",), "b") is None
    assert (await merge.get(("m",), "a")).value == {"text": "apple", "n": 1, "extra": True}
    assert await skip.delete_by_source(("d",), "s1") == 1
    assert {r.key for r in await skip.search(("d",))} == {"e"}
    assert await skip.put(("d",), "e", None) == PutResult("deleted", "e")


async def test_ttl_refresh_and_sweep(make_ours: MakeStore) -> None:
    d = await make_ours(ttl={"default_ttl": 1.0, "refresh_on_read": True})
    await d.put(("t",), "a", {"x": 1})
    await d.put(("t",), "b", {"x": 2})
    await d.put(("t",), "forever", {"x": 3}, ttl=None)
    rows(
        d.store,
        "UPDATE memory_items SET expires_at = now() + interval '1 second'"
        " WHERE ttl_minutes IS NOT NULL",
    )
    assert await d.get(("t",), "a") is not None  # refreshed to a minute from now
    await d.settle()
    await asyncio.sleep(1.1)
    assert await d.get(("t",), "b", refresh_ttl=False) is None  # expired: hidden
    assert await d.get(("t",), "a") is not None
    assert await d.sweep_ttl() == 1
    assert {r.key for r in await d.search(("t",))} == {"a", "forever"}


# --------------------------------------------------------------------------- paging, vectors


async def test_cursor_paging_is_stable_under_inserts(make_ours: MakeStore) -> None:
    """Every item exactly once although an item is added between pages (with ``offset`` the
    page boundary would shift and repeat one)."""
    d = await make_ours(index={"dims": 32, "embed": CharacterEmbeddings(32), "fields": ["text"]})
    for i in range(7):
        await d.put(("c",), f"k{i}", {"text": f"apple {'banana ' * i}"})
    for query in (None, "apple banana"):
        seen: list[str] = []
        page = await d.search(("c",), query=query, limit=3)
        seen += [r.key for r in page]
        await d.put(("c",), f"new-{query}", {"text": "apple banana"})  # lands on page 1
        while page.next_cursor:
            page = await d.search(("c",), query=query, limit=3, cursor=page.next_cursor)
            seen += [r.key for r in page]
        assert sorted(seen) == sorted({*seen}) and {f"k{i}" for i in range(7)} <= set(seen)
        with pytest.raises(InvalidInput, match="different search"):
            await d.search(("c",), query="cherry", cursor=page.next_cursor or _any_cursor(seen))


def _any_cursor(_: list[str]) -> str:
    import base64
    import json

    return base64.urlsafe_b64encode(json.dumps({"f": "x"}).encode()).decode()


async def test_cursor_errors_and_namespace_cursor(make_ours: MakeStore) -> None:
    d = await make_ours()
    for i in range(5):
        await d.put(("n", f"s{i}"), "k", {"i": i})
    page = await d.list_namespaces(limit=2)
    names = list(page)
    while page.next_cursor:
        page = await d.list_namespaces(limit=2, cursor=page.next_cursor)
        names += page
    assert names == [("n", f"s{i}") for i in range(5)]
    first = await d.search(("n",), limit=2)
    with pytest.raises(InvalidInput, match="cursor or offset"):
        await d.search(("n",), limit=2, offset=1, cursor=first.next_cursor)
    with pytest.raises(InvalidInput, match="cursor"):
        await d.search(("n",), cursor="not-a-cursor")


async def test_search_by_precomputed_vector(make_ours: MakeStore) -> None:
    calls: list[str] = []

    def embed(texts: list[str]) -> list[list[float]]:
        calls.extend(texts)
        return bag_of_words(texts)

    d = await make_ours(index={"dims": len(WORDS), "embed": embed, "fields": ["text"]})
    await d.put(("v",), "pets", {"text": "dog cat"})
    await d.put(("v",), "fruit", {"text": "apple"})
    calls.clear()
    res = await d.search(("v",), vector=bag_of_words(["dog"])[0])
    assert res[0].key == "pets" and calls == []
    with pytest.raises(InvalidInput, match="vector"):
        await d.search(("v",), vector=[1.0, 2.0])
    with pytest.raises(InvalidInput, match="vector"):
        await d.search(("v",), vector=[math.nan] * len(WORDS))


# --------------------------------------------------------------------------- batches


async def test_batch_with_search_before_put(make_ours: MakeStore) -> None:
    """Query texts and document texts share one embedding round; vectors must not shift."""
    d = await make_ours(index=bow_index(fields=["text"]), search_mode="vector")
    await d.put(("b",), "old", {"text": "dog"})
    res = await d.batch([SearchOp(("b",), query="dog"), PutOp(("b",), "new", {"text": "apple"})])
    assert res[0][0].key == "old"
    assert (await d.search(("b",), query="apple"))[0].key == "new"


async def test_many_concurrent_async_calls_share_a_connection(adb: Any) -> None:
    """Issue 13: 60,000 concurrent ops on a pool of 10 timed out; batched like upstream's
    AsyncBatchedBaseStore they take one connection per batch (bounded here: 6,000)."""
    store = adb.memory()
    await store.abatch([PutOp(("c",), str(i), {"i": i}) for i in range(100)])
    before = adb.pool.get_stats().get("requests_num", 0)
    got = await asyncio.gather(*(store.aget(("c",), str(i % 100)) for i in range(6000)))
    assert [g.value["i"] for g in got] == [i % 100 for i in range(6000)]
    assert adb.pool.get_stats().get("requests_num", 0) - before < 50
    await store.aclose()


async def test_one_bad_call_fails_alone(adb: Any) -> None:
    store = adb.memory()
    good = [store.aput(("g",), str(i), {"i": i}) for i in range(5)]
    bad = store.aput(("g",), "bad", {"x": "nul\x00"})
    results = await asyncio.gather(*good, bad, return_exceptions=True)
    assert all(isinstance(r, PutResult) for r in results[:5])
    assert isinstance(results[5], InvalidInput)
    assert len(await store.asearch(("g",))) == 5
    await store.aclose()
