"""Reading telemetry back (issue 14 item 3): the caller's metadata, lookups by idempotency key
and trace id, date filters, typed results; every test runs over ``Telemetry`` and
``AsyncTelemetry`` (one sans-IO implementation, two thin drivers)."""

from __future__ import annotations

import operator
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.graph import START, StateGraph
from test_telemetry_fakes import UsageChatModel

from langgraph_pgstore import AsyncDatabase, Database, InvalidInput, NotFound
from langgraph_pgstore.paging import decode_cursor, encode_cursor
from langgraph_pgstore.telemetry.rows import MAX_METADATA_CHARS

Call = Callable[..., Awaitable[Any]]


class S(TypedDict):
    x: Annotated[list[Any], operator.add]


LLM = UsageChatModel()


def graph(db: Database) -> Any:
    def node(state: S) -> dict[str, Any]:
        LLM.invoke("q")
        return {"x": [1]}

    g = StateGraph(S)
    g.add_node("n", node)
    g.add_edge(START, "n")
    return db.telemetry.instrument(g.compile(name="q"))


@pytest.fixture(params=["sync", "async"])
def q(request: pytest.FixtureRequest, db: Database) -> Call:
    """``await q("list_runs", ...)`` calls ``db.telemetry.list_runs`` or ``alist_runs``."""
    if request.param == "sync":

        async def call(name: str, *args: Any, **kwargs: Any) -> Any:
            return getattr(db.telemetry, name)(*args, **kwargs)

        return call
    adb: AsyncDatabase = request.getfixturevalue("adb")

    async def acall(name: str, *args: Any, **kwargs: Any) -> Any:
        return await getattr(adb.telemetry, "a" + name)(*args, **kwargs)

    return acall


class Opaque:
    def __repr__(self) -> str:
        return "<opaque>"


async def test_runs_keep_the_callers_metadata(db: Database, q: Call) -> None:
    rid = uuid.uuid4()
    metadata = {
        "user_id": "u",
        "tenant": "acme",
        "experiment": {"arm": "b", "weights": [0.1, 0.9]},
        "tags_of_mine": ["x", "y"],
        "not_json": Opaque(),
        "big": "z" * (MAX_METADATA_CHARS + 10),
        "nan": float("nan"),
    }
    graph(db).invoke({"x": []}, {"run_id": rid, "metadata": metadata})
    assert db.telemetry.flush(10)
    run = (await q("get_run", rid))["run"]
    md = run["metadata"]
    assert md["tenant"] == "acme" and md["experiment"] == {"arm": "b", "weights": [0.1, 0.9]}
    assert md["tags_of_mine"] == ["x", "y"]
    assert sorted(md["__dropped__"]) == ["nan", "not_json"] and md["__truncated__"] == ["big"]
    assert not any(k.startswith(("ls_", "langgraph_")) for k in md)
    assert "user_id" not in md and run["user_id"] == "u"  # a column of its own
    # filter by contained metadata (GIN-indexed)
    page = await q("list_runs", metadata={"experiment": {"arm": "b"}})
    assert [r["id"] for r in page["items"]] == [rid]
    assert (await q("list_runs", metadata={"tenant": "other"}))["items"] == []


async def test_find_run_by_idempotency_key_and_trace_id(db: Database, q: Call) -> None:
    g = graph(db)
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    g.invoke({"x": []}, {"run_id": a, "metadata": {"idempotency_key": "order-1", "trace_id": "T"}})
    g.invoke({"x": []}, {"run_id": b, "metadata": {"idempotency_key": "order-2", "trace_id": "T"}})
    g.invoke({"x": []}, {"run_id": c})
    assert db.telemetry.flush(10)
    assert (await q("find_run", idempotency_key="order-1"))["id"] == a
    assert (await q("find_run", trace_id="T"))["id"] == b  # newest of the trace
    assert (await q("find_run", trace_id=str(c)))["id"] == c  # default trace id: the run id
    assert [r["id"] for r in (await q("list_runs", trace_id="T"))["items"]] == [b, a]
    with pytest.raises(NotFound, match="order-3"):
        await q("find_run", idempotency_key="order-3")
    with pytest.raises(InvalidInput, match="exactly one"):
        await q("find_run")


async def test_since_until_on_list_runs_and_stats(db: Database, q: Call) -> None:
    g = graph(db)
    g.invoke({"x": []}, {"metadata": {"user_id": "u1"}})
    assert db.telemetry.flush(10)
    middle = datetime.now(UTC)
    for _ in range(2):
        g.invoke({"x": []}, {"metadata": {"user_id": "u2"}})
    assert db.telemetry.flush(10)
    assert len((await q("list_runs", since=middle))["items"]) == 2
    assert len((await q("list_runs", until=middle))["items"]) == 1
    groups = await q("stats", "user", since=middle)
    assert [(s["key"], s["runs"]) for s in groups] == [("u2", 2)]
    assert await q("stats", "user", until=middle - timedelta(days=1)) == []
    [model] = await q("stats", "model", since=middle)
    assert model["llm_calls"] == 2
    with pytest.raises(InvalidInput, match="since must be a datetime"):
        await q("list_runs", since="2026-01-01")


async def test_results_are_typed(db: Database, q: Call) -> None:
    """Counts are ints (not floats or Decimals), money Decimal, durations float ms."""
    g = graph(db)
    rid = uuid.uuid4()
    g.invoke({"x": []}, {"run_id": rid, "configurable": {"thread_id": "t"}})
    g.invoke({"x": []}, {"configurable": {"thread_id": "t"}})
    assert db.telemetry.flush(10)
    for by in ("session", "user", "graph", "day", "model"):
        [group] = await q("stats", by)
        for key in ("runs", "errors", "llm_calls", "input_tokens", "total_tokens"):
            assert type(group[key]) is int, (by, key, group[key])
        assert type(group["cost_usd"]) is Decimal and group["cost_usd"] == Decimal("0.000054")
        if by != "model":
            assert type(group["steps"]) is int and type(group["avg_duration_ms"]) is float
    [day] = await q("stats", "day")
    assert isinstance(day["key"], date)
    stats = await q("run_stats", rid)
    assert type(stats["duration_ms"]) is float and type(stats["llm_calls"]) is int
    assert type(stats["total_tokens"]) is int and stats["cost_usd"] == Decimal("0.000027")
    page = await q("list_runs", limit=1)
    assert set(page) == {"items", "next_cursor"} and page["next_cursor"] is not None
    nxt = await q("list_runs", limit=1, cursor=page["next_cursor"])
    assert nxt["next_cursor"] is None and nxt["items"][0]["id"] != page["items"][0]["id"]


async def test_bad_input_names_the_argument(q: Call) -> None:
    with pytest.raises(InvalidInput, match="run id must be a UUID"):
        await q("get_run", "nope")
    with pytest.raises(InvalidInput, match="limit must be an int"):
        await q("list_runs", limit="5")
    with pytest.raises(InvalidInput, match="malformed cursor"):
        await q("list_runs", cursor="%%%")
    with pytest.raises(InvalidInput, match="malformed cursor"):
        await q("list_runs", cursor=encode_cursor("not a date", "x"))
    with pytest.raises(InvalidInput, match="unknown filter 'colour'"):
        await q("list_runs", colour="red")
    with pytest.raises(InvalidInput, match="metadata must be a dict"):
        await q("list_runs", metadata="tenant=acme")
    with pytest.raises(InvalidInput, match="by must be one of"):
        await q("stats", "week")


def test_cursor_codec_round_trip() -> None:
    when, ident = datetime.now(UTC), uuid.uuid4()
    cursor = encode_cursor(when, ident, 7)
    assert decode_cursor(cursor, datetime.fromisoformat, uuid.UUID, int) == [when, ident, 7]
    with pytest.raises(InvalidInput):
        decode_cursor(cursor, datetime.fromisoformat, uuid.UUID)  # wrong arity
