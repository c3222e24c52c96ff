"""Telemetry overhead: recording on vs off for a 20-node and a 2-node graph, invoke and ainvoke.

Every node calls a fake chat model that returns usage (so each run records 1 run, N steps and N
LLM calls). Off, ours and LangChain's own ``LangChainTracer`` (a LangSmith client whose
transport does nothing: the ecosystem anchor) are interleaved and the median per-invoke time
compared; the anchor of each row is "off" from the same run. Also: events/s the writer
sustains, and memory after 10,000 recorded runs.

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
from langgraph_pgstore.telemetry import events as ev


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


def null_tracer() -> Any:
    """LangChain's own ``LangChainTracer`` with a client whose transport does nothing: every
    run is still built, serialised and batched by LangSmith's code, only the HTTP send is a
    no-op (no network). The ecosystem's anchor for "what does tracing cost"."""
    from langchain_core.tracers import LangChainTracer
    from langsmith import Client

    class NullTransportClient(Client):
        def _send_multipart_req(self, *args: Any, **kwargs: Any) -> None:
            return None

        def _send_compressed_multipart_req(self, *args: Any, **kwargs: Any) -> None:
            return None

        def request_with_retries(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("no network in this benchmark")

    client = NullTransportClient(api_url="http://127.0.0.1:9", api_key="bench", info={})
    return LangChainTracer(client=client, project_name="bench")


def median_ms(samples: list[tuple[float, float]], i: int) -> float:
    return statistics.median(s[i] for s in samples) * 1e3


def overhead(db: Database, n_invocations: int) -> list[tuple[str, dict[str, list[Any]]]]:
    """Interleaved invocations of the same graph: off, ours, LangChainTracer (null transport)."""
    out = []
    tracer = null_tracer()
    for nodes in (2, 20):
        graphs = {
            "off": build(nodes),
            "ours": db.telemetry.instrument(build(nodes)),
            "langchain": build(nodes).with_config(callbacks=[tracer]),
        }
        for mode in ("invoke", "ainvoke"):
            times: dict[str, list[Any]] = {k: [] for k in graphs}

            async def loop(
                n: int, times: dict[str, list[Any]] = times, graphs: dict[str, Any] = graphs
            ) -> None:
                for _ in range(n):
                    for k, g in graphs.items():
                        times[k].append(await timed_async(g))

            if mode == "invoke":
                for _ in range(5):
                    for g in graphs.values():
                        g.invoke({"x": []})
                for _ in range(n_invocations):
                    for k, g in graphs.items():
                        times[k].append(timed_sync(g))
            else:
                asyncio.run(loop(5))
                times = {k: [] for k in graphs}
                asyncio.run(loop(n_invocations, times))
            db.telemetry.flush(60)
            out.append((f"{nodes}-node {mode}", times))
    tracer.client.flush()
    return out


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
        w.enqueue(ev.RunStart(rid, "bench", "t", {"user_id": "u"}, None, False, now))
        for step in range(4):
            sid, cid = uuid.uuid4(), uuid.uuid4()
            w.enqueue(
                ev.StepStart(
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
            w.enqueue(ev.LlmStart(cid, rid, sid, "t", "chat", "openai", "gpt-4o-mini", now))
            w.enqueue(
                ev.LlmEnd(
                    cid, rid, "success", result, None, None, now, None, now, "gpt-4o-mini", "openai"
                )
            )
            w.enqueue(ev.StepEnd(sid, rid, f"n{step}", "success", None, None, None, now))
        w.enqueue(ev.RunEnd(rid, "success", None, None, None, now))
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
            print(
                f"telemetry overhead, median of {n_inv} interleaved invocations "
                "(ms; ratio = / off in the same run; cpu = the graph thread's CPU time)"
            )
            print(
                f"{'case':<16}{'off wall':>9}{'ours':>8}{'ratio':>8}{'paired':>8}"
                f"{'off cpu':>9}{'ours':>8}{'ratio':>8}{'LangChainTracer wall':>22}{'cpu':>8}"
            )
            for case, t in overhead(db, n_inv):
                w0, w1, wl = (median_ms(t[k], 0) for k in ("off", "ours", "langchain"))
                c0, c1, cl = (median_ms(t[k], 1) for k in ("off", "ours", "langchain"))
                paired = statistics.median(
                    a[0] / b[0] for a, b in zip(t["ours"], t["off"], strict=True)
                )
                print(
                    f"{case:<16}{w0:>9.3f}{w1:>8.3f}{w1 / w0:>7.3f}x{paired:>7.3f}x"
                    f"{c0:>9.3f}{c1:>8.3f}{c1 / c0:>7.3f}x{wl / w0:>21.3f}x{cl / c0:>7.3f}x"
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


if __name__ == "__main__":
    main()
