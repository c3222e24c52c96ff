"""Telemetry overhead: recording on vs off for a 20-node and a 2-node graph, invoke and ainvoke.

Every node calls a fake chat model that returns usage (so each run records 1 run, N steps and N
LLM calls). On and off invocations are interleaved and the median per-invoke time compared;
the anchor of each row is "off" from the same run. Also: events/s the writer sustains, and
memory after 10,000 recorded runs.

    .venv/bin/python tests/benchmarks/bench_telemetry.py [--quick]

Uses DATABASE_URL when set, else the embedded server; works in a scratch database it drops.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import operator
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Annotated, Any, TypedDict

import psycopg
from langgraph.graph import START, StateGraph
from psycopg.conninfo import make_conninfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from test_telemetry_fakes import UsageChatModel

from langgraph_pgstore import Database
from langgraph_pgstore.migrate import migrate
from langgraph_pgstore.telemetry.events import (
    LlmEnd,
    LlmStart,
    RunEnd,
    RunStart,
    StepEnd,
    StepStart,
)


class S(TypedDict):
    x: Annotated[list[Any], operator.add]


LLM = UsageChatModel()


def build(n: int) -> Any:
    def node(state: S) -> dict[str, Any]:
        LLM.invoke("q")
        return {"x": [1]}

    g = StateGraph(S)
    prev = START
    for i in range(n):
        g.add_node(f"n{i}", node)
        g.add_edge(prev, f"n{i}")
        prev = f"n{i}"
    return g.compile(name=f"g{n}")


def rss_kib() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def timed_sync(graph: Any) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this thread): CPU is immune to the other load on the box."""
    t, c = time.perf_counter(), time.thread_time()
    graph.invoke({"x": []})
    return time.perf_counter() - t, time.thread_time() - c


async def timed_async(graph: Any) -> tuple[float, float]:
    t, c = time.perf_counter(), time.thread_time()
    await graph.ainvoke({"x": []})
    return time.perf_counter() - t, time.thread_time() - c


Row = tuple[str, float, float, float, float, float, float, float]


def overhead(db: Database, n_invocations: int) -> list[Row]:
    rows = []
    for nodes in (2, 20):
        off = build(nodes)
        on = db.telemetry.instrument(build(nodes))
        for mode in ("invoke", "ainvoke"):
            t_off: list[tuple[float, float]] = []
            t_on: list[tuple[float, float]] = []
            for g in (off, on):  # warm-up
                for _ in range(5):
                    g.invoke({"x": []}) if mode == "invoke" else asyncio.run(timed_async(g))
            if mode == "invoke":
                for _ in range(n_invocations):
                    t_off.append(timed_sync(off))
                    t_on.append(timed_sync(on))
            else:

                async def loop(
                    t_off: list[float] = t_off,
                    t_on: list[float] = t_on,
                    off: Any = off,
                    on: Any = on,
                ) -> None:
                    for _ in range(n_invocations):
                        t_off.append(await timed_async(off))
                        t_on.append(await timed_async(on))

                asyncio.run(loop())
            db.telemetry.flush(60)
            w_off = statistics.median(w for w, _ in t_off)
            w_on = statistics.median(w for w, _ in t_on)
            paired = statistics.median(a[0] / b[0] for a, b in zip(t_on, t_off, strict=True))
            c_off = statistics.median(c for _, c in t_off)
            c_on = statistics.median(c for _, c in t_on)
            rows.append(
                (
                    f"{nodes}-node {mode}",
                    w_off * 1e3,
                    w_on * 1e3,
                    w_on / w_off,
                    paired,
                    c_off * 1e3,
                    c_on * 1e3,
                    c_on / c_off,
                )
            )
    return rows


def writer_rate(db: Database, n_runs: int) -> tuple[int, float]:
    """Synthetic events straight into the writer: 1 run, 4 steps, 4 LLM calls per run."""
    w = db.telemetry.writer
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, LLMResult

    result = LLMResult(
        generations=[
            [
                ChatGeneration(
                    message=AIMessage(
                        "hi",
                        usage_metadata={
                            "input_tokens": 100,
                            "output_tokens": 20,
                            "total_tokens": 120,
                        },
                        response_metadata={"model_name": "gpt-4o-mini", "finish_reason": "stop"},
                    )
                )
            ]
        ]
    )
    db.telemetry.flush(60)
    events = 0
    t0 = time.perf_counter()
    now = time.time()
    for _ in range(n_runs):
        rid = uuid.uuid4()
        w.enqueue(RunStart(rid, "bench", "t", {"user_id": "u"}, None, False, now))
        for step in range(4):
            sid, cid = uuid.uuid4(), uuid.uuid4()
            w.enqueue(
                StepStart(
                    sid,
                    rid,
                    None,
                    "node",
                    f"n{step}",
                    step,
                    ("a",),
                    f"n{step}:x",
                    "x",
                    1,
                    None,
                    now,
                )
            )
            w.enqueue(LlmStart(cid, rid, sid, "t", "chat", "openai", "gpt-4o-mini", now))
            w.enqueue(
                LlmEnd(
                    cid, rid, "success", result, None, None, now, None, now, "gpt-4o-mini", "openai"
                )
            )
            w.enqueue(StepEnd(sid, rid, f"n{step}", "success", None, None, None, now))
        w.enqueue(RunEnd(rid, "success", None, None, None, now))
        events += 18
    assert db.telemetry.flush(600)
    return events, events / (time.perf_counter() - t0)


def memory(db: Database, n_runs: int) -> tuple[int, int, int, int, int]:
    graph = db.telemetry.instrument(build(2))
    for _ in range(200):
        graph.invoke({"x": []})
    db.telemetry.flush(60)
    gc.collect()
    before = rss_kib()
    for i in range(n_runs):
        graph.invoke({"x": []})
        if i % 2000 == 1999:
            db.telemetry.flush(60)
    db.telemetry.flush(120)
    gc.collect()
    h = db.telemetry.handler
    return n_runs, before, rss_kib(), len(h._entries), len(h._roots)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="30 invocations, 1,000 memory runs")
    ap.add_argument("--invocations", type=int, default=200)
    ap.add_argument("--memory-runs", type=int, default=10_000)
    args = ap.parse_args()
    n_inv = 30 if args.quick else args.invocations
    n_mem = 1_000 if args.quick else args.memory_runs

    admin = os.environ.get("DATABASE_URL")
    if not admin:
        from langgraph_pgstore.embedded import EmbeddedServer

        root = Path(__file__).resolve().parents[2]
        admin = EmbeddedServer.start(root / ".pgstore-test" / "pg17").url
    name = f"bench_tel_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = make_conninfo(admin, dbname=name)
    try:
        migrate(url)
        with Database.connect(url, migrate=False) as db:
            print(f"telemetry overhead, median of {n_invocations(n_inv)} interleaved invocations")
            print(
                f"{'case':<17}{'wall off':>9}{'wall on':>9}{'ratio':>8}{'paired':>8}"
                f"{'cpu off':>9}{'cpu on':>9}{'ratio':>8}   (ms; anchor = off)"
            )
            for case, w0, w1, wr, pr, c0, c1, cr in overhead(db, n_inv):
                print(
                    f"{case:<17}{w0:>9.3f}{w1:>9.3f}{wr:>7.3f}x{pr:>7.3f}x"
                    f"{c0:>9.3f}{c1:>9.3f}{cr:>7.3f}x"
                )
            events, rate = writer_rate(db, 500 if args.quick else 3_000)
            print(
                f"\nwriter: {events} events (1 run + 4 steps + 4 LLM calls per run) "
                f"at {rate:,.0f} events/s"
            )
            runs, before, after, entries, roots = memory(db, n_mem)
            print(
                f"\nmemory: {runs:,} recorded runs (2-node graph), RSS {before / 1024:.1f} MiB "
                f"-> {after / 1024:.1f} MiB (+{(after - before) / 1024:.1f} MiB), "
                f"handler state after: {entries} entries, {roots} roots, "
                f"lost events {db.telemetry.lost_events}"
            )
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def n_invocations(n: int) -> str:
    return f"{n}"


if __name__ == "__main__":
    main()
