"""LangGraph's BaseStore contract: the same test bodies against our sync and async stores and
against LangGraph's ``InMemoryStore`` and ``PostgresStore``, so a difference is a failure.

Bodies are adapted from LangGraph's own store tests (libs/checkpoint/tests/test_store.py,
libs/checkpoint-postgres/tests/test_store.py). Where we differ on purpose (README: memory),
the body says so through ``d.ours``: scores are clipped to [0, 1], and ``omit_expired``
defaults to True.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from langgraph.store.base import (
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchOp,
)
from memhelp import CharacterEmbeddings, Driver, MakeStore, cosine, rows

NS = ("test",)


def vector_index(emb: CharacterEmbeddings, fields: list[str] | None = None) -> dict[str, Any]:
    return {"dims": emb.dims, "embed": emb, "fields": fields}


# --------------------------------------------------------------------------- batches


async def test_batch_order(make_store: MakeStore) -> None:
    d = await make_store()
    await d.put(("test", "foo"), "key1", {"data": "value1"})
    await d.put(("test", "bar"), "key2", {"data": "value2"})
    results = await d.batch(
        [
            GetOp(("test", "foo"), "key1"),
            PutOp(("test", "bar"), "key2", {"data": "value2"}),
            SearchOp(("test",), {"data": "value1"}, 10, 0),
            ListNamespacesOp(None, None, 10, 0),
            GetOp(("test",), "key3"),
        ]
    )
    assert len(results) == 5
    assert isinstance(results[0], Item) and results[0].value == {"data": "value1"}
    assert results[1] is None  # a put's batch result is None
    assert isinstance(results[2], list) and len(results[2]) == 1
    assert isinstance(results[3], list) and len(results[3]) > 0
    assert results[4] is None
    reordered = await d.batch(
        [
            SearchOp(("test",), None, 5, 0),
            GetOp(("test", "bar"), "key2"),
            ListNamespacesOp(None, None, 5, 0),
            PutOp(("test",), "key3", {"data": "value3"}),
            GetOp(("test", "foo"), "key1"),
        ]
    )
    assert len(reordered[0]) >= 2
    assert reordered[1].value == {"data": "value2"}
    assert reordered[3] is None
    assert reordered[4].value == {"data": "value1"}


async def test_reads_see_the_batch_before_its_puts(make_store: MakeStore) -> None:
    """Upstream runs a batch's reads before its writes, whatever their order in the list."""
    d = await make_store()
    await d.put(NS, "old", {"v": 1})
    results = await d.batch(
        [
            PutOp(NS, "new", {"v": 2}),
            PutOp(NS, "old", {"v": 3}),
            GetOp(NS, "new"),
            GetOp(NS, "old"),
            SearchOp(NS, None, 10, 0),
        ]
    )
    assert results[2] is None
    assert results[3].value == {"v": 1}
    assert [i.key for i in results[4]] == ["old"]
    assert (await d.get(NS, "old")).value == {"v": 3}


async def test_batch_get_put_search_list(make_store: MakeStore) -> None:
    d = await make_store()
    puts = await d.batch(
        [
            PutOp(("test", "foo"), "key1", {"data": "value1", "tag": "a"}),
            PutOp(("test", "bar"), "key2", {"data": "value2", "tag": "a"}),
            PutOp(("test", "baz"), "key3", {"data": "value3", "tag": "b"}),
        ]
    )
    assert puts == [None] * 3
    gets = await d.batch(
        [
            GetOp(("test", "foo"), "key1"),
            GetOp(("test", "bar"), "key2"),
            GetOp(("test", "baz"), "x"),
        ]
    )
    assert gets[0].key == "key1" and gets[1].key == "key2" and gets[2] is None
    found = await d.batch(
        [
            SearchOp(("test",), {"tag": "a"}, 10, 0),
            SearchOp(("test",), None, 2, 0),
            SearchOp(("test", "foo"), None, 10, 0),
        ]
    )
    assert {i.value["tag"] for i in found[0]} == {"a"} and len(found[0]) == 2
    assert len(found[1]) == 2
    assert [i.namespace for i in found[2]] == [("test", "foo")]
    lists = await d.batch(
        [
            ListNamespacesOp(None, None, 10, 0),
            ListNamespacesOp(None, 1, 10, 0),
            ListNamespacesOp((MatchCondition("suffix", ("baz",)),), None, 10, 0),
        ]
    )
    assert sorted(lists[0]) == [("test", "bar"), ("test", "baz"), ("test", "foo")]
    assert lists[1] == [("test",)]
    assert lists[2] == [("test", "baz")]


async def test_basic_store_ops(make_store: MakeStore) -> None:
    d = await make_store()
    ns = ("test", "documents")
    await d.put(ns, "doc1", {"title": "Test Document", "content": "Hello, World!"})
    item = await d.get(ns, "doc1")
    assert item.namespace == ns and item.key == "doc1"
    assert item.value == {"title": "Test Document", "content": "Hello, World!"}
    await asyncio.sleep(0.002)
    await d.put(ns, "doc1", {"title": "Updated"})
    updated = await d.get(ns, "doc1")
    assert updated.value == {"title": "Updated"} and updated.updated_at > item.updated_at
    assert await d.get(("test", "other_documents"), "doc1") is None
    await d.delete(ns, "doc1")
    assert await d.get(ns, "doc1") is None
    await d.delete(ns, "never-there")  # deleting nothing is fine


# --------------------------------------------------------------------------- namespaces


LIST_NS = [
    ("a", "b", "c"),
    ("a", "b", "d", "e"),
    ("a", "b", "d", "i"),
    ("a", "b", "f"),
    ("a", "c", "f"),
    ("b", "a", "f"),
    ("users", "123"),
    ("users", "456", "settings"),
    ("admin", "users", "789"),
]


async def test_list_namespaces(make_store: MakeStore) -> None:
    d = await make_store()
    for i, ns in enumerate(LIST_NS):
        await d.put(ns, f"id_{i}", {"data": f"value_{i:02d}"})
    ab = [("a", "b", "c"), ("a", "b", "d", "e"), ("a", "b", "d", "i"), ("a", "b", "f")]
    assert sorted(await d.list_namespaces(prefix=("a", "b"))) == ab
    assert sorted(await d.list_namespaces(suffix=("f",))) == [
        ("a", "b", "f"),
        ("a", "c", "f"),
        ("b", "a", "f"),
    ]
    assert sorted(await d.list_namespaces(prefix=("a",), suffix=("f",))) == [
        ("a", "b", "f"),
        ("a", "c", "f"),
    ]
    assert sorted(await d.list_namespaces(prefix=("a", "b"), max_depth=3)) == [
        ("a", "b", "c"),
        ("a", "b", "d"),
        ("a", "b", "f"),
    ]
    assert await d.list_namespaces(prefix=("a", "b"), limit=2) == ab[:2]
    assert await d.list_namespaces(prefix=("a", "b"), offset=2) == ab[2:]
    assert sorted(await d.list_namespaces(prefix=("a", "*", "f"))) == [
        ("a", "b", "f"),
        ("a", "c", "f"),
    ]
    assert len(await d.list_namespaces(suffix=("*", "f"))) == 3
    assert await d.list_namespaces(prefix=("nonexistent",)) == []
    assert await d.list_namespaces(prefix=("users", "123")) == [("users", "123")]
    assert await d.list_namespaces(prefix=("*", "users"), suffix=("*", "settings")) == []
    assert sorted(await d.list_namespaces(max_depth=2)) == [
        ("a", "b"),
        ("a", "c"),
        ("admin", "users"),
        ("b", "a"),
        ("users", "123"),
        ("users", "456"),
    ]


async def test_list_namespaces_pagination_and_boundaries(make_store: MakeStore) -> None:
    d = await make_store()
    assert await d.list_namespaces() == []
    for i in range(20):
        await d.put(("namespace", f"sub_{i:02d}"), "k", {"i": i})
    for offset in (0, 5, 15):
        page = await d.list_namespaces(prefix=("namespace",), limit=5, offset=offset)
        assert page == [("namespace", f"sub_{i:02d}") for i in range(offset, offset + 5)]
    for ns in [("foo",), ("foo", "child"), ("foobar",), ("uid", "users", "alice")]:
        await d.put(ns, "k", {"v": 1})
    await d.put(("uid", "users", "malice"), "k", {"v": 1})
    await d.put(("users", "alice\n"), "k", {"v": 2})
    assert set(await d.list_namespaces(prefix=["foo"], limit=100)) == {("foo",), ("foo", "child")}
    assert set(await d.list_namespaces(suffix=["alice"], limit=100)) == {("uid", "users", "alice")}


# --------------------------------------------------------------------------- search


async def test_search_filters_and_pages(make_store: MakeStore) -> None:
    d = await make_store()
    data = [
        (("test", "docs"), "doc1", {"title": "First", "author": "Alice", "n": 7}),
        (("test", "docs"), "doc2", {"title": "Second", "author": "Bob", "n": 6}),
        (("test", "images"), "img1", {"title": "Image 1", "author": "Alice", "n": 2}),
    ]
    for ns, key, value in data:
        await d.put(ns, key, value)
    assert len(await d.search(("test",))) == 3
    docs = await d.search(("test", "docs"))
    assert {i.namespace for i in docs} == {("test", "docs")} and len(docs) == 2
    alice = await d.search(("test",), filter={"author": "Alice"})
    assert {i.key for i in alice} == {"doc1", "img1"}
    assert {i.key for i in await d.search(("test",), filter={"n": {"$gt": 5}})} == {"doc1", "doc2"}
    assert {i.key for i in await d.search(("test",), filter={"n": {"$ne": 6}})} == {"doc1", "img1"}
    assert len(await d.search(("test",), limit=2)) == 2
    assert len(await d.search(("test",), offset=2)) == 1
    assert all(i.score is None for i in await d.search(("test",)))


async def test_search_namespace_boundaries(make_store: MakeStore) -> None:
    d = await make_store()
    for ns in [
        ("foo",),
        ("foo", "child"),
        ("foobar",),
        ("foo2",),
        ("user_1",),
        ("userX1",),
        ("a%b",),
        ("axxb",),
    ]:
        await d.put(ns, "k", {"v": 1})

    async def under(prefix: tuple[str, ...]) -> set[tuple[str, ...]]:
        return {i.namespace for i in await d.search(prefix, limit=100)}

    assert await under(("foo",)) == {("foo",), ("foo", "child")}
    assert await under(("fo",)) == set()
    assert await under(("user_1",)) == {("user_1",)}
    assert await under(("a%b",)) == {("a%b",)}
    assert len(await under(())) == 8


async def test_namespace_rules(make_store: MakeStore) -> None:
    d = await make_store()
    doc = {"foo": "bar"}
    for bad in [(), ("the", "thing.about"), ("some", "fun", ""), ("langgraph", "foo")]:
        with pytest.raises(InvalidNamespaceError):
            await d.put(bad, "foo", doc)
    await d.put(("foo", "langgraph", "foo"), "bar", doc)
    assert (await d.get(("foo", "langgraph", "foo"), "bar")).value == doc
    await d.batch([PutOp(("langgraph", "foo"), "bar", doc)])  # LangGraph's own, via batch
    assert (await d.get(("langgraph", "foo"), "bar")).value == doc


# --------------------------------------------------------------------------- vectors


async def test_index_config_attribute(
    make_store: MakeStore, embeddings: CharacterEmbeddings
) -> None:
    d = await make_store(index=vector_index(embeddings))
    assert d.store.index_config is not None
    assert d.store.index_config["dims"] == embeddings.dims
    assert d.store.index_config["embed"] == embeddings
    plain = await make_store()
    assert plain.store.index_config is None


async def test_vector_insert_and_update(
    make_store: MakeStore, embeddings: CharacterEmbeddings
) -> None:
    d = await make_store(index=vector_index(embeddings))
    for key, value in [
        ("doc1", {"text": "short text"}),
        ("doc2", {"text": "longer text document"}),
        ("doc3", {"text": "longest text document here"}),
        ("doc4", {"description": "text in description field"}),
    ]:
        await d.put(NS, key, value)
    keys = [r.key for r in await d.search(NS, query="long text")]
    assert "doc2" in keys and "doc3" in keys

    await d.put(NS, "doc1", {"text": "zany zebra Xerxes"})
    await d.put(NS, "doc2", {"text": "something about dogs"})
    first = await d.search(NS, query="Zany Xerxes")
    assert first[0].key == "doc1"
    await d.put(NS, "doc1", {"text": "new text about dogs"})
    after = await d.search(NS, query="Zany Xerxes")
    assert next(r.score for r in after if r.key == "doc1") < first[0].score
    # index=False: never a query result
    await d.put(NS, "doc5", {"text": "new text about dogs"}, index=False)
    assert "doc5" not in {r.key for r in await d.search(NS, query="new text about dogs", limit=3)}


@pytest.mark.parametrize("refresh_ttl", [True, False])
async def test_vector_search_with_filters(
    make_store: MakeStore, embeddings: CharacterEmbeddings, refresh_ttl: bool
) -> None:
    d = await make_store(index=vector_index(embeddings))
    for key, value in [
        ("doc1", {"text": "red apple", "color": "red", "score": 4.5}),
        ("doc2", {"text": "red car", "color": "red", "score": 3.0}),
        ("doc3", {"text": "green apple", "color": "green", "score": 4.0}),
        ("doc4", {"text": "blue car", "color": "blue", "score": 3.5}),
    ]:
        await d.put(NS, key, value)
    red = await d.search(NS, query="apple", filter={"color": "red"}, refresh_ttl=refresh_ttl)
    assert [r.key for r in red][:1] == ["doc1"] and len(red) == 2
    car = await d.search(NS, query="car", filter={"color": "red"}, refresh_ttl=refresh_ttl)
    assert car[0].key == "doc2" and len(car) == 2
    high = await d.search(NS, query="bbbbluuu", filter={"score": {"$gt": 3.2}})
    assert high[0].key == "doc4" and len(high) == 3
    both = await d.search(NS, query="apple", filter={"score": {"$gte": 4.0}, "color": "green"})
    assert [r.key for r in both] == ["doc3"]


async def test_vector_search_pagination_and_edge_cases(
    make_store: MakeStore, embeddings: CharacterEmbeddings
) -> None:
    d = await make_store(index=vector_index(embeddings))
    for i in range(5):
        await d.put(NS, f"doc{i}", {"text": f"test document number {i}"})
    page1 = await d.search(NS, query="test", limit=2)
    page2 = await d.search(NS, query="test", limit=2, offset=2)
    assert len(page1) == 2 and len(page2) == 2 and page1[0].key != page2[0].key
    assert len(await d.search(NS, query="test", limit=10)) == 5
    for query in ["", None, "test " * 100, "test!@#$%^&*()"]:
        assert len(await d.search(NS, query=query)) == 5


async def test_embed_with_path(make_store: MakeStore, embeddings: CharacterEmbeddings) -> None:
    d = await make_store(index=vector_index(embeddings, ["key0", "key1", "key3"]))
    await d.put(NS, "doc1", {"key1": "xxx", "key2": "yyy", "key3": "zzz"})
    await d.put(NS, "doc2", {"key0": "uuu", "key1": "vvv", "key2": "www", "key3": "xxx"})
    res = await d.search(NS, query="xxx")
    assert len(res) == 2 and res[0].key != res[1].key
    top = res[0].score
    assert top == pytest.approx(res[1].score, abs=1e-3)
    res = await d.search(NS, query="uuu")
    assert res[0].key == "doc2" and res[0].score > res[1].score
    assert res[0].score == pytest.approx(top, abs=1e-3)
    res = await d.search(NS, query="www")  # only in key2, which is not indexed
    assert all(r.score < top for r in res)

    op_level = await make_store(index=vector_index(embeddings, ["key17"]))
    await op_level.put(
        ("t2",), "doc3", {"key0": "aaa", "key1": "bbb", "key2": "ccc"}, index=["key0", "key1"]
    )
    await op_level.put(
        ("t2",), "doc4", {"key0": "eee", "key1": "bbb", "key3": "ggg"}, index=["key1", "key3"]
    )
    res = await op_level.search(("t2",), query="aaa")
    assert res[0].key == "doc3" and res[0].score > res[1].score
    res = await op_level.search(("t2",), query="ggg")
    assert res[0].key == "doc4" and res[0].score > res[1].score
    res = await op_level.search(("t2",), query="bbb")
    assert res[0].score == pytest.approx(res[1].score, abs=1e-3)


@pytest.mark.parametrize("query", ["aaa", "bbb", "ccc", "abcd", "poisson"])
async def test_scores_are_cosine_similarity(
    make_store: MakeStore, embeddings: CharacterEmbeddings, query: str
) -> None:
    d = await make_store(index=vector_index(embeddings, ["key0"]))
    await d.put(NS, "doc", {"key0": "aaa"}, index=["key0", "key1"])
    res = await d.search((), query=query)
    sim = cosine(embeddings.embed_query("aaa"), embeddings.embed_query(query))
    expected = min(max(sim, 0.0), 1.0) if d.ours else sim  # ours: a relevance in [0, 1]
    assert len(res) == 1 and res[0].score == pytest.approx(expected, abs=1e-3)


async def test_non_ascii(make_store: MakeStore, embeddings: CharacterEmbeddings) -> None:
    d = await make_store(index=vector_index(embeddings))
    texts = ["这是中文", "これは日本語です", "이건 한국어야", "Это русский", "यह रूसी है"]
    for i, text in enumerate(texts, 1):
        await d.put(("user_123", "memories"), str(i), {"text": text})
    for i, text in enumerate(texts, 1):
        assert (await d.search(("user_123", "memories"), query=text))[0].key == str(i)


async def test_query_is_ignored_without_an_index(make_store: MakeStore) -> None:
    d = await make_store()
    await d.put(NS, "a", {"foo": "bar"})
    await d.put(NS, "b", {"other": "thing"})
    res = await d.search(NS, query="foo")
    assert {r.key for r in res} == {"a", "b"} and all(r.score is None for r in res)


async def test_concurrent_calls(make_store: MakeStore, embeddings: CharacterEmbeddings) -> None:
    """LangGraph's concurrent batching test: puts, deletes and puts again, then filtered
    searches, all at once."""
    d = await make_store(index=vector_index(embeddings))
    colors, items = ["red", "blue", "green", "yellow", "purple"], ["apple", "car", "house"]
    docs = [
        (f"doc{i}", {"text": f"{colors[i % 5]} {items[i % 3]}", "color": colors[i % 5], "i": i})
        for i in range(10, 40)  # two digits: PostgresStore compares numbers as text
    ]
    await asyncio.gather(*(d.put(NS, k, v) for k, v in docs))
    await asyncio.gather(*(d.delete(NS, k) for k, _ in docs[:10]))
    await asyncio.gather(*(d.put(NS, k, v) for k, v in docs[:10]))
    queries = [
        ("apple", {"color": "red"}),
        ("car", {"i": {"$gt": 35}}),
        ("house", {"i": {"$lte": 14}}),
    ]
    results = await asyncio.gather(*(d.search(NS, query=q, filter=f) for q, f in queries))
    assert all(r.value["color"] == "red" for r in results[0]) and results[0]
    assert all(r.value["i"] > 35 for r in results[1]) and results[1]
    assert all(r.value["i"] <= 14 for r in results[2]) and results[2]
    assert len(await d.search(NS, limit=100)) == 30


# --------------------------------------------------------------------------- TTL


def _expire_now(d: Driver, ns: tuple[str, ...], key: str) -> None:
    """Backdate a row's expiry (unswept) in whichever table the backend uses."""
    table = "memory_items" if d.ours else "store"
    rows(
        d.store,
        f"UPDATE {table} SET expires_at = now() - interval '1 minute' "
        "WHERE prefix = %s AND key = %s",
        (".".join(ns), key),
    )


def _expires_at(d: Driver, ns: tuple[str, ...], key: str) -> Any:
    table = "memory_items" if d.ours else "store"
    found = rows(
        d.store,
        f"SELECT expires_at FROM {table} WHERE prefix = %s AND key = %s",
        (".".join(ns), key),
    )
    return found[0]["expires_at"] if found else None


TTL = {"default_ttl": 10.0, "refresh_on_read": True}


@pytest.fixture
def ttl_store(make_store: MakeStore, backend: str) -> MakeStore:
    if backend == "inmem":
        pytest.skip("InMemoryStore has no TTL")
    return make_store


async def test_omit_expired_hides_expired_items(ttl_store: MakeStore) -> None:
    d = await ttl_store(ttl={**TTL, "omit_expired": True})
    await d.put(("omit", "expired"), "e", {"data": "gone"})
    await d.put(("omit", "control"), "c", {"data": "keep"}, ttl=None)
    _expire_now(d, ("omit", "expired"), "e")
    assert await d.get(("omit", "expired"), "e") is None
    assert await d.get(("omit", "control"), "c") is not None
    assert await d.search(("omit", "expired")) == []
    assert [i.key for i in await d.search(("omit", "control"))] == ["c"]
    names = await d.list_namespaces(prefix=("omit",))
    assert ("omit", "expired") not in names and ("omit", "control") in names


async def test_omit_expired_false_keeps_them_until_swept(ttl_store: MakeStore) -> None:
    d = await ttl_store(ttl={**TTL, "omit_expired": False})
    await d.put(("keep",), "k", {"data": "still-here"})
    _expire_now(d, ("keep",), "k")
    assert await d.get(("keep",), "k", refresh_ttl=False) is not None
    assert [i.key for i in await d.search(("keep",), refresh_ttl=False)] == ["k"]
    assert ("keep",) in await d.list_namespaces(prefix=("keep",))
    await d.settle()  # the sweep skips a row our access writer holds at that moment
    assert await d.sweep_ttl() == 1
    assert await d.get(("keep",), "k") is None


async def test_refresh_ttl_renews_live_items_only(ttl_store: MakeStore) -> None:
    d = await ttl_store(ttl={**TTL, "omit_expired": True})
    ns = ("refresh",)
    for key in ("expired", "live_get", "live_search"):
        await d.put(ns, key, {"k": key})
    _expire_now(d, ns, "expired")
    before = {k: _expires_at(d, ns, k) for k in ("expired", "live_get", "live_search")}
    await asyncio.sleep(0.01)
    assert await d.get(ns, "expired", refresh_ttl=True) is None
    assert await d.get(ns, "live_get", refresh_ttl=True) is not None
    assert "expired" not in {i.key for i in await d.search(ns, refresh_ttl=True)}
    await d.settle()
    assert _expires_at(d, ns, "expired") == before["expired"]
    assert _expires_at(d, ns, "live_get") > before["live_get"]
    assert _expires_at(d, ns, "live_search") > before["live_search"]


async def test_expired_items_never_fill_a_page(ttl_store: MakeStore) -> None:
    d = await ttl_store(ttl={**TTL, "omit_expired": True})
    ns = ("page",)
    for key in ("c", "b", "expired", "a"):
        await d.put(ns, key, {"k": key})
        await asyncio.sleep(0.002)
    _expire_now(d, ns, "expired")
    assert [i.key for i in await d.search(ns, limit=2)] == ["a", "b"]
    assert [i.key for i in await d.search(ns, limit=2, offset=2)] == ["c"]


# --------------------------------------------------------------------------- async stores


@pytest.mark.parametrize("kind", ["ours", "upstream"])
async def test_sync_calls_on_the_event_loop_raise(db_url: str, kind: str) -> None:
    """Both async stores refuse sync calls on their own loop with the same exception, and
    serve them from another thread."""
    from langgraph.store.postgres import AsyncPostgresStore

    from langgraph_pgstore import AsyncDatabase

    async with AsyncDatabase.connect(db_url, max_size=2) as adb:
        if kind == "ours":
            store: Any = adb.memory()
            ctx = None
        else:
            ctx = AsyncPostgresStore.from_conn_string(db_url)
            store = await ctx.__aenter__()
            await store.setup()
        try:
            for call in (
                lambda: store.put(("foo", "bar"), "baz", {"val": "baz"}),
                lambda: store.get(("foo", "bar"), "baz"),
                lambda: store.delete(("foo", "bar"), "baz"),
                lambda: store.search(("foo", "bar")),
                lambda: store.list_namespaces(prefix=("foo",)),
                lambda: store.batch([PutOp(("foo", "bar"), "baz", {"val": "baz"})]),
            ):
                with pytest.raises(asyncio.InvalidStateError):
                    call()
            with ThreadPoolExecutor(max_workers=1) as pool:
                await asyncio.wrap_future(pool.submit(store.put, ("foo", "bar"), "baz", {"v": 1}))
                got = await asyncio.wrap_future(pool.submit(store.get, ("foo", "bar"), "baz"))
                assert got.value == {"v": 1}
        finally:
            if ctx is not None:
                await ctx.__aexit__(None, None, None)
