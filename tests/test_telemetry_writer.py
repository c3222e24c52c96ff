"""The writer under stress: out-of-order events, outages, overflow, bad rows, exit, leaks."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import operator
import subprocess
import sys
import time
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypedDict

import psycopg
import pytest
from langchain_core.outputs import LLMResult
from langgraph.graph import START, StateGraph
from psycopg.conninfo import conninfo_to_dict
from test_telemetry_fakes import UsageChatModel

from langgraph_pgstore import Database, InvalidInput, NotFound
from langgraph_pgstore.telemetry import TelemetryHandler, TelemetryWriter
from langgraph_pgstore.telemetry import events as ev


class S(TypedDict):
    x: Annotated[list[Any], operator.add]


LLM = UsageChatModel()


def two_nodes(fail_every: int = 0) -> Any:
    count = {"n": 0}

    def a(state: S) -> dict[str, Any]:
        LLM.invoke("q")
        return {"x": [1]}

    def b(state: S) -> dict[str, Any]:
        count["n"] += 1
        if fail_every and count["n"] % fail_every == 0:
            raise ValueError("planned failure")
        return {"x": [2]}

    g = StateGraph(S)
    g.add_node("a", a)
    g.add_node("b", b)
    g.add_edge(START, "a")
    g.add_edge("a", "b")
    return g.compile(name="two")


def count_rows(db: Database) -> tuple[int, int, int]:
    with db.pool.connection() as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM runs) AS r, (SELECT count(*) FROM steps) AS s,"
            " (SELECT count(*) FROM llm_calls) AS c"
        ).fetchone()
    assert row is not None
    return row["r"], row["s"], row["c"]


def test_end_before_start_in_separate_batches(db: Database) -> None:
    writer = TelemetryWriter(db.url, db.settings.connect_kwargs(), batch_size=1)
    rid, sid, cid = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    t = time.time()
    try:
        # ends first, each in a batch of its own, then the starts
        writer.enqueue(
            ev.LlmEnd(
                cid, rid, "success", None, None, None, t, None, t + 0.5, "gpt-4o-mini", "openai"
            )
        )
        writer.enqueue(ev.StepEnd(sid, rid, "n", "success", {"x": 1}, None, None, t + 1))
        writer.enqueue(ev.RunEnd(rid, "success", {"done": True}, None, None, t + 2))
        assert writer.flush(10)
        writer.enqueue(ev.RunStart(rid, "g", "th", {"user_id": "u"}, {"in": 1}, False, t))
        writer.enqueue(
            ev.StepStart(
                sid, rid, None, "node", "n", 1, ("branch:to:n",), "n:abc", "abc", 1, None, t
            )
        )
        writer.enqueue(ev.LlmStart(cid, rid, sid, "th", "chat", "openai", "gpt-4o-mini", t))
        assert writer.flush(10)
    finally:
        writer.close()
    d = db.telemetry.get_run(rid)
    run = d["run"]
    assert (run["status"], run["graph_name"], run["user_id"]) == ("success", "g", "u")
    assert run["input_summary"] == {"in": 1} and run["output_summary"] == {"done": True}
    assert run["completed_at"] - run["started_at"] == timedelta(seconds=2)
    [step] = d["steps"]
    assert (step["status"], step["step_number"], step["output_data"]) == ("success", 1, {"x": 1})
    [call] = d["llm_calls"]
    assert (call["status"], call["step_id"], call["latency_ms"]) == ("success", sid, 500.0)


def test_rejected_event_is_isolated_and_the_rest_written(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """A permanent error (here a CHECK violation, SQLSTATE 23514) splits the batch until the
    offending event is alone: it is logged with its key and reason and counted; the rest of
    the batch, and every later batch, is written."""
    writer = TelemetryWriter(db.url, db.settings.connect_kwargs())
    good, bad = uuid.uuid4(), uuid.uuid4()
    t = time.time()
    writer.enqueue(ev.RunStart(good, "g", None, {}, None, False, t))
    for i in range(50):
        writer.enqueue(
            ev.StepStart(uuid.uuid4(), good, None, "node", f"n{i}", i, None, "", None, 1, None, t)
        )
    writer.enqueue(ev.RunEnd(bad, "bogus", None, None, None, t))  # not an allowed status
    writer.enqueue(ev.RunEnd(good, "success", None, None, None, t))
    assert writer.flush(10)
    later = uuid.uuid4()
    writer.enqueue(ev.RunStart(later, "g", None, {}, None, False, t))
    assert writer.flush(10)
    writer.close()
    assert writer.rejected_events == 1 and writer.lost_events == 0
    assert f"RunEnd run={bad}" in caplog.text and "CheckViolation [23514]" in caplog.text
    d = db.telemetry.get_run(good)
    assert d["run"]["status"] == "success" and len(d["steps"]) == 50
    assert {s["status"] for s in d["steps"]} == {"success"}  # orphans closed after the split
    assert db.telemetry.get_run(later)["run"]["status"] == "running"
    with pytest.raises(NotFound):
        db.telemetry.get_run(bad)


def _set_connections(server_admin: str, dbname: str, allow: bool) -> None:
    with psycopg.connect(server_admin, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                psycopg.sql.Identifier(dbname), psycopg.sql.SQL("true" if allow else "false")
            )
        )


def test_database_outage_buffers_then_writes_and_overflow_is_counted(
    db: Database, server_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="langgraph_pgstore.telemetry.writer")
    graph = db.telemetry.instrument(two_nodes())
    writer = db.telemetry.writer
    graph.invoke({"x": []})
    assert db.telemetry.flush(10)
    dbname = conninfo_to_dict(db.url)["dbname"]
    assert writer._conn is not None
    backend = writer._conn.info.backend_pid
    _set_connections(server_url, dbname, allow=False)
    try:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
        for _ in range(20):  # the graph keeps running while the database refuses the writer
            assert graph.invoke({"x": []}) == {"x": [1, 2]}
        assert not db.telemetry.flush(0.5)
        assert db.telemetry.pending > 0 and db.telemetry.lost_events == 0
        # now overflow: a tiny buffer loses events, counted and logged
        writer.max_buffer = writer.pending  # full: every further event is lost
        for _ in range(5):
            graph.invoke({"x": []})
        assert db.telemetry.lost_events == 5 * 8  # 8 events per run: run, 2 steps, 1 call
    finally:
        _set_connections(server_url, dbname, allow=True)
    assert db.telemetry.flush(30)
    assert count_rows(db) == (21, 42, 21)  # every buffered run written after recovery
    assert "can't reach" in caplog.text and "reconnected" in caplog.text
    assert "40 events lost" in caplog.text
    assert "password" not in caplog.text.lower() or "****" in caplog.text


def test_flush_at_exit(db_url: str, db: Database) -> None:
    script = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_telemetry_writer import two_nodes
from langgraph_pgstore import Database
db = Database.open({db_url!r})
db.telemetry.instrument(two_nodes()).invoke({{"x": []}})
# no flush, no close: the atexit hook writes what is buffered
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    assert count_rows(db) == (1, 2, 1)


def _one_run(handler: TelemetryHandler, i: int) -> None:
    """The callback sequence of a 2-node run with one LLM call per node, as LangGraph emits it;
    every 10th run is cancelled during its second LLM call (that call never reports an end)."""
    root, n1, n2, c1, c2 = (uuid.uuid4() for _ in range(5))
    meta = {"ls_integration": "langgraph", "thread_id": f"t{i % 50}", "user_id": "u"}
    handler.on_chain_start({}, {"x": []}, run_id=root, metadata=meta, name="two")
    for node, call, step in ((n1, c1, 1), (n2, c2, 2)):
        md = {
            "langgraph_node": f"n{step}",
            "langgraph_step": step,
            "langgraph_checkpoint_ns": f"n{step}:{node}",
            "langgraph_triggers": ("x",),
        }
        handler.on_chain_start(
            {}, {}, run_id=node, parent_run_id=root, tags=[f"graph:step:{step}"], metadata=md
        )
        handler.on_chat_model_start(
            {}, [], run_id=call, parent_run_id=node, metadata={"ls_model_name": "gpt-4o-mini"}
        )
        if step == 2 and i % 10 == 0:
            handler.on_chain_error(asyncio.CancelledError(), run_id=root)
            return
        handler.on_llm_new_token("x", run_id=call)
        handler.on_llm_end(LLMResult(generations=[]), run_id=call)
        handler.on_chain_end({"x": [step]}, run_id=node)
    handler.on_chain_end({"x": [1, 2]}, run_id=root)


def test_no_leak_over_10000_runs() -> None:
    """Per-run state is dropped when the root ends (also when children never end): after 10,000
    runs the state dicts are empty and traced memory is flat. Events go to a sink here so only
    the handler is measured; the writer path is checked below and the full-graph measurement over
    10,000 real runs is in benchmarks/bench_telemetry.py."""
    events = [0]

    def sink(event: ev.Event) -> None:
        events[0] += 1

    handler = TelemetryHandler(sink)
    for i in range(300):
        _one_run(handler, i)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(10_000):
            _one_run(handler, i)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert handler._entries == {} and handler._roots == {}
    growth = after - before
    print(
        f"\ntraced growth over 10,000 runs: {growth / 1024:.1f} KiB ({growth / 10_000:.1f} B/run)"
    )
    assert growth < 64 * 1024, growth
    assert events[0] == 10_300 * 10 - 1_030 * 2  # cancelled runs: no end of node 2 / call 2


def test_writer_path_closes_orphans_and_keeps_nothing(db: Database) -> None:
    tel = db.telemetry
    for i in range(2_000):
        _one_run(tel.handler, i)
    assert tel.handler._entries == {} and tel.handler._roots == {}
    assert tel.flush(60)
    assert tel.lost_events == 0 and tel.pending == 0 and not tel.writer._buffer
    assert count_rows(db) == (2_000, 4_000, 4_000)
    cancelled = tel.list_runs(status="cancelled", limit=1000)["items"]
    assert len(cancelled) == 200
    d = tel.get_run(cancelled[0]["id"])
    assert [c["status"] for c in d["llm_calls"]] == ["success", "cancelled"]
    assert [s["status"] for s in d["steps"]] == ["success", "cancelled"]


def test_real_graph_runs_leave_no_state(db: Database) -> None:
    graph = db.telemetry.instrument(two_nodes(fail_every=10))
    for _ in range(200):
        with contextlib.suppress(ValueError):
            graph.invoke({"x": []})
    handler = db.telemetry.handler
    assert handler._entries == {} and handler._roots == {}
    assert db.telemetry.flush(30)
    assert count_rows(db) == (200, 400, 200)
    assert len(db.telemetry.list_runs(status="error", limit=100)["items"]) == 20


# --- query API ---------------------------------------------------------------------------------


def test_list_runs_filters_and_cursor_pagination(db: Database) -> None:
    graph = db.telemetry.instrument(two_nodes())
    for i in range(7):
        graph.invoke(
            {"x": []},
            {"metadata": {"user_id": f"u{i % 2}"}, "configurable": {"thread_id": f"t{i % 3}"}},
        )
    assert db.telemetry.flush(10)
    seen: list[Any] = []
    cursor = None
    while True:
        page = db.telemetry.list_runs(limit=3, cursor=cursor)
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 7 and len({r["id"] for r in seen}) == 7
    starts = [r["started_at"] for r in seen]
    assert starts == sorted(starts, reverse=True)
    assert len(db.telemetry.list_runs(user_id="u0")["items"]) == 4
    assert len(db.telemetry.list_runs(thread_id="t1", user_id="u1")["items"]) == 1
    future = datetime.now(UTC) + timedelta(days=1)
    assert db.telemetry.list_runs(since=future)["items"] == []
    assert len(db.telemetry.list_runs(until=future, graph_name="two")["items"]) == 7
    by_session = {r["key"]: r for r in db.telemetry.stats("session")}
    assert {k: v["runs"] for k, v in by_session.items()} == {"t0": 3, "t1": 2, "t2": 2}
    assert by_session["t0"]["steps"] == 6 and by_session["t0"]["total_tokens"] == 360
    [day] = db.telemetry.stats("day")
    assert day["runs"] == 7 and day["llm_calls"] == 7 and day["avg_duration_ms"] > 0
    [model] = db.telemetry.stats("model", user_id="u1")
    assert (model["key"], model["runs"], model["llm_calls"]) == ("gpt-4o-mini", 3, 3)
    assert [r["key"] for r in db.telemetry.stats("graph")] == ["two"]


def test_query_api_rejects_bad_input(db: Database) -> None:
    with pytest.raises(InvalidInput):
        db.telemetry.get_run("not-a-uuid")
    with pytest.raises(NotFound):
        db.telemetry.get_run(uuid.uuid4())
    with pytest.raises(NotFound):
        db.telemetry.run_stats(uuid.uuid4())
    with pytest.raises(InvalidInput):
        db.telemetry.stats("week")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        db.telemetry.stats("user", since="yesterday")
    with pytest.raises(InvalidInput):
        db.telemetry.list_runs(limit=0)
    with pytest.raises(InvalidInput):
        db.telemetry.list_runs(cursor="%%%")
    with pytest.raises(InvalidInput):
        db.telemetry.list_runs(colour="red")
