"""Benchmark: what mirroring messages costs the checkpointer, and reading a long session.

1. Super-steps per second of a one-node chat loop (each super-step appends one AIMessage and
   writes one checkpoint) with mirroring off (the anchor) and on, in both durability modes,
   interleaved rounds; the cost is the median of per-round ratios (target: at most +10%).
2. The last 50 messages of a 10,000-message session through ``list_messages(last=True)``:
   p50/p95, against the anchor of a raw psycopg query of the same rows.

    .venv/bin/python tests/benchmarks/bench_conversations.py --quick
    .venv/bin/python tests/benchmarks/bench_conversations.py

DATABASE_URL selects the server; otherwise the embedded one (data in .pgstore-bench/).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from typing import Annotated, Any, TypedDict

import psycopg
from _common import scratch_database, server_url
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from langgraph_pgstore import Database


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def chat_graph(db: Database, steps: int) -> Any:
    def chat(state: State) -> dict[str, Any]:
        n = len(state["messages"])
        return {
            "messages": [
                AIMessage(
                    f"answer {n} " + "lorem ipsum " * 20,
                    usage_metadata={"input_tokens": 10, "output_tokens": 20, "total_tokens": 30},
                )
            ]
        }

    g = StateGraph(State)
    g.add_node("chat", chat)
    g.add_edge(START, "chat")
    g.add_conditional_edges("chat", lambda s: END if len(s["messages"]) > steps else "chat")
    return g.compile(checkpointer=db.checkpointer)


def steps_per_second(
    db: Database, mirror: bool, threads: int, steps: int, durability: str = "sync"
) -> float:
    db.mirror_messages = mirror
    graph = chat_graph(db, steps)
    t0 = time.perf_counter()
    for _ in range(threads):
        cfg: dict[str, Any] = {
            "configurable": {"thread_id": str(uuid.uuid4())},
            "metadata": {"user_id": "bench"},
            "recursion_limit": steps + 10,
        }
        graph.invoke({"messages": [HumanMessage("start")]}, cfg, durability=durability)
    return threads * (steps + 1) / (time.perf_counter() - t0)  # +1: the input checkpoint


FILL_SQL = """
INSERT INTO messages (session_id, message_id, position, role, content, input_tokens,
                      output_tokens, total_tokens, checkpoint_id)
SELECT %s, 'm' || g, g, CASE WHEN g %% 2 = 0 THEN 'user' ELSE 'assistant' END,
       'message ' || g || ' ' || repeat('lorem ipsum ', 20), 10, 20, 30, 'cp' || g
FROM generate_series(0, %s - 1) g
"""
RAW_LAST_SQL = """
SELECT * FROM messages WHERE session_id = %s AND removed_at IS NULL
ORDER BY position DESC, id DESC LIMIT 50
"""


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p * (len(xs) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer rounds (about 30 s)")
    args = ap.parse_args()
    rounds, threads, steps, reads = (3, 4, 20, 200) if args.quick else (7, 8, 25, 1000)
    with (
        server_url() as admin,
        scratch_database(admin) as url,
        Database.connect(url, max_size=4) as db,
    ):
        steps_per_second(db, True, 1, 5)  # warm-up (imports, prepared statements)
        steps_per_second(db, False, 1, 5)
        costs: dict[str, tuple[float, float, float]] = {}
        for durability in ("async", "sync"):
            off, on = [], []
            for r in range(rounds):
                order = (False, True) if r % 2 else (True, False)
                got = {m: steps_per_second(db, m, threads, steps, durability) for m in order}
                off.append(got[False])
                on.append(got[True])
            cost = statistics.median(o / n for o, n in zip(off, on, strict=True)) - 1
            costs[durability] = (statistics.median(off), statistics.median(on), cost)
        db.mirror_messages = True

        c = db.conversations
        session = c.create_session("long-session")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(FILL_SQL, (session.id, 10_000))
            conn.execute("ANALYZE messages")
        assert c.count_messages(session.id) == 10_000
        api, raw = [], []
        with psycopg.connect(url, autocommit=True) as conn:
            for _ in range(reads):
                t0 = time.perf_counter()
                rows = c.list_messages(session.id, last=True, limit=50)["items"]
                api.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                conn.execute(RAW_LAST_SQL, (session.id,)).fetchall()
                raw.append((time.perf_counter() - t0) * 1000)
        assert [m.position for m in rows] == list(range(9950, 10_000))

    print(
        f"\nmirroring cost ({rounds} interleaved rounds x {threads} threads x {steps + 1} "
        f"super-steps; medians; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())})"
    )
    print("| durability | mirroring off (anchor), steps/s | mirroring on, steps/s | cost |")
    print("|---|---:|---:|---:|")
    for durability, (m_off, m_on, cost) in costs.items():
        print(f"| {durability} | {m_off:.1f} | {m_on:.1f} | {cost:+.1%} (target <= +10%) |")
    print(f"\nlast 50 messages of a 10,000-message session ({reads} reads)")
    print("| read | p50 ms | p95 ms | p50 ratio vs anchor |")
    print("|---|---:|---:|---:|")
    r50, r95 = pct(raw, 0.5), pct(raw, 0.95)
    a50, a95 = pct(api, 0.5), pct(api, 0.95)
    print(f"| raw psycopg query (anchor) | {r50:.3f} | {r95:.3f} | 1.00 |")
    print(f"| conversations.list_messages(last=True) | {a50:.3f} | {a95:.3f} | {a50 / r50:.2f} |")


if __name__ == "__main__":
    main()
