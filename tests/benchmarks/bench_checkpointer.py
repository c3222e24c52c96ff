"""Checkpointer benchmark: throughput, ``get_state_history`` and bytes per step, one server.

    .venv/bin/python tests/benchmarks/bench_checkpointer.py [--quick] [--url postgresql://...]

Uses DATABASE_URL (or ``--url``) when set, else the embedded PostgreSQL in
``.pgstore-bench/pg17``. Every figure comes from this one run on this one server; savers are
interleaved round by round so background load hits them alike. Prints one table per part.

1. A 2-node loop graph of 50 super-steps that appends a message each step, one invoke per
   fresh thread: super-steps/s and per-invoke latency for our checkpointer (with and without
   the message mirror, sync and async), langgraph's PostgresSaver and AsyncPostgresSaver,
   InMemorySaver and no checkpointer; ratio vs PostgresSaver (the anchor).
2. ``get_state_history`` over a thread of ~500 checkpoints of a growing conversation.
3. Checkpoint bytes of one thread after 10/100/500 steps: plain ``add_messages`` list vs
   LangGraph's ``DeltaChannel`` (beta in langgraph 1.2), written by our checkpointer.
4. Tenancy: the 50-step loop graph through our checkpointer as an application role (DML grants
   only), on a database with tenancy off (unscoped) and one with tenancy on (acting for a
   tenant: row-level security on every table, the tenant set in each transaction); the
   ratio on/off is the cost of tenancy (target: at most 1.10). Twice the rounds of part 1:
   the difference is a few percent, so the medians need more samples.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Annotated, Any, TypedDict

import psycopg
from _common import scratch_database, server_url
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import _messages_delta_reducer, add_messages
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from langgraph_pgstore import AsyncDatabase, Database, redact_dsn

ROOT = Path(__file__).resolve().parents[2]
STEPS = 50
WORDS = [
    *[
        "the",
        "agent",
        "checks",
        "a",
        "ledger",
        "before",
        "it",
        "answers",
        "and",
        "keeps",
        "every",
        "tool",
        "result",
    ],
    *[
        "in",
        "its",
        "notes",
        "while",
        "the",
        "user",
        "asks",
        "about",
        "invoices",
        "refunds",
        "and",
        "shipping",
        "dates",
    ],
]

THREAD_BYTES_SQL = """
SELECT
  (SELECT coalesce(sum(octet_length(checkpoint::text) + octet_length(metadata::text)), 0)
     FROM checkpoints WHERE thread_id = %(t)s) AS checkpoints,
  (SELECT coalesce(sum(octet_length(blob)), 0) FROM checkpoint_blobs WHERE thread_id = %(t)s)
     AS blobs,
  (SELECT coalesce(sum(octet_length(blob)), 0) FROM checkpoint_writes WHERE thread_id = %(t)s)
     AS writes,
  (SELECT coalesce(sum(pg_column_size(blob)), 0) FROM checkpoint_blobs WHERE thread_id = %(t)s)
     AS blobs_stored
"""


def _text(n: int) -> str:
    return " ".join(random.Random(n).choices(WORDS, k=40))


class PlainState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    n: int


class DeltaState(TypedDict):
    messages: Annotated[list[AnyMessage], DeltaChannel(_messages_delta_reducer)]
    n: int


def _ai(state: dict[str, Any]) -> dict[str, Any]:
    n = state["n"]
    return {"messages": [AIMessage(content=_text(n), id=f"m{n}")], "n": n + 1}


def _human(state: dict[str, Any]) -> dict[str, Any]:
    n = state["n"]
    return {"messages": [HumanMessage(content=_text(n), id=f"m{n}")], "n": n + 1}


def loop_graph(state: type = PlainState, steps: int = STEPS) -> StateGraph:
    """Nodes ``ai`` and ``human`` alternate; each super-step appends one message."""
    builder = StateGraph(state)
    builder.add_node("ai", _ai)
    builder.add_node("human", _human)
    builder.add_edge(START, "ai")
    builder.add_conditional_edges("ai", lambda s: "human" if s["n"] % steps else END)
    builder.add_conditional_edges("human", lambda s: "ai" if s["n"] % steps else END)
    return builder


def _config(thread: str, steps: int = STEPS) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}, "recursion_limit": steps + 10}


# ---- 1. throughput ------------------------------------------------------------------------


def throughput(url: str, rounds: int) -> list[tuple[str, list[float]]]:
    loop = asyncio.new_event_loop()
    stack = ExitStack()

    def enter_async(cm: Any) -> Any:
        value = loop.run_until_complete(cm.__aenter__())
        stack.callback(lambda: loop.run_until_complete(cm.__aexit__(None, None, None)))
        return value

    def enter(cm: AbstractContextManager[Any]) -> Any:
        return stack.enter_context(cm)

    try:
        db = enter(Database.connect(url, max_size=4))
        db_plain = enter(Database.connect(url, max_size=4))
        db_plain.mirror_messages = False
        adb = enter_async(AsyncDatabase.connect(url, max_size=4))

        async def async_checkpointer() -> Any:
            return adb.checkpointer  # AsyncPostgresSaver binds the running loop

        pg = enter(PostgresSaver.from_conn_string(url))
        apg = enter_async(AsyncPostgresSaver.from_conn_string(url))
        sync_savers: dict[str, Any] = {
            "PostgresSaver": pg,
            "ours (Database.checkpointer)": db.checkpointer,
            "ours, mirror_messages=False": db_plain.checkpointer,
            "InMemorySaver": InMemorySaver(),
            "no checkpointer": None,
        }
        async_savers: dict[str, Any] = {
            "AsyncPostgresSaver": apg,
            "ours async (AsyncDatabase)": loop.run_until_complete(async_checkpointer()),
        }
        graphs = {k: loop_graph().compile(checkpointer=v) for k, v in sync_savers.items()}
        agraphs = {k: loop_graph().compile(checkpointer=v) for k, v in async_savers.items()}
        times: dict[str, list[float]] = {k: [] for k in [*graphs, *agraphs]}
        for r in range(rounds + 1):  # round 0 warms up (connections, prepared statements)
            for name, graph in graphs.items():
                started = time.perf_counter()
                out = graph.invoke({"messages": [], "n": 0}, _config(uuid.uuid4().hex))
                elapsed = time.perf_counter() - started
                assert len(out["messages"]) == STEPS
                if r:
                    times[name].append(elapsed)
            for name, agraph in agraphs.items():
                started = time.perf_counter()
                coro = agraph.ainvoke({"messages": [], "n": 0}, _config(uuid.uuid4().hex))
                out = loop.run_until_complete(coro)
                elapsed = time.perf_counter() - started
                assert len(out["messages"]) == STEPS
                if r:
                    times[name].append(elapsed)
        order = ["ours (Database.checkpointer)", "ours, mirror_messages=False",
                 "ours async (AsyncDatabase)", "PostgresSaver", "AsyncPostgresSaver",
                 "InMemorySaver", "no checkpointer"]  # fmt: skip
        return [(name, times[name]) for name in order]
    finally:
        stack.close()
        loop.close()


def print_throughput(rows: list[tuple[str, list[float]]], rounds: int) -> float:
    anchor = statistics.median(dict(rows)["PostgresSaver"])
    print(f"\n1. {STEPS}-step loop graph, one message per step, {rounds} invokes each (median)")
    print(f"{'checkpointer':<32}{'super-steps/s':>14}{'ms/invoke':>11}{'p90 ms':>9}"
          f"{'vs PostgresSaver':>18}")  # fmt: skip
    for name, samples in rows:
        med = statistics.median(samples)
        p90 = sorted(samples)[max(0, int(len(samples) * 0.9) - 1)]
        print(f"{name:<32}{STEPS / med:>14.0f}{med * 1000:>11.1f}{p90 * 1000:>9.1f}"
              f"{anchor / med:>17.2f}x")  # fmt: skip
    ours = statistics.median(dict(rows)["ours (Database.checkpointer)"])
    return anchor / ours


# ---- 2. get_state_history ----------------------------------------------------------------


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def history(url: str, invokes: int, repeat: int) -> tuple[int, list[tuple[str, float]]]:
    """One thread grown by ``invokes`` runs of the loop graph, read back by each saver."""
    config = _config("history")
    rows: list[tuple[str, float]] = []
    with Database.connect(url, max_size=4) as db, PostgresSaver.from_conn_string(url) as pg:
        db.mirror_messages = False
        writer = loop_graph().compile(checkpointer=pg)
        for i in range(invokes):
            # n carries on across invokes, so message ids stay unique and the list grows
            writer.invoke({"messages": [], "n": 0} if i == 0 else {"n": i * STEPS}, config)
        ours_graph = loop_graph().compile(checkpointer=db.checkpointer)
        t_pg, theirs = _timed(lambda: list(writer.get_state_history(config)), repeat)
        t_ours, mine = _timed(lambda: list(ours_graph.get_state_history(config)), repeat)
        assert [s.values for s in mine] == [s.values for s in theirs]
        assert len(mine[0].values["messages"]) == invokes * STEPS
        count = len(mine)
        del mine, theirs  # ~250k live messages would slow the next runs' garbage collection
        gc.collect()
        rows += [("PostgresSaver", t_pg), ("ours (PgCheckpointer)", t_ours)]

        async def alist(saver: Any) -> list[Any]:
            graph = loop_graph().compile(checkpointer=saver)
            return [s async for s in graph.aget_state_history(config)]

        async def run_async() -> list[tuple[str, float]]:
            out = []
            async with (
                AsyncPostgresSaver.from_conn_string(url) as apg,
                AsyncDatabase.connect(url, max_size=4) as adb,
            ):
                savers = (("AsyncPostgresSaver", apg), ("ours async", adb.checkpointer))
                for name, saver in savers:
                    best = float("inf")
                    for _ in range(repeat):
                        started = time.perf_counter()
                        await alist(saver)
                        best = min(best, time.perf_counter() - started)
                    out.append((name, best))
            return out

        rows += asyncio.run(run_async())
    return count, rows


def print_history(count: int, rows: list[tuple[str, float]]) -> None:
    anchor = dict(rows)["PostgresSaver"]
    print(f"\n2. get_state_history over {count} checkpoints of one growing conversation (best)")
    print(f"{'checkpointer':<36}{'seconds':>9}{'vs PostgresSaver':>18}")
    for name, seconds in rows:
        print(f"{name:<36}{seconds:>9.2f}{anchor / seconds:>17.1f}x")


# ---- 3. bytes per step -------------------------------------------------------------------


def thread_bytes(url: str, thread: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(THREAD_BYTES_SQL, {"t": thread}).fetchone()
    assert row is not None
    return {"checkpoints": row[0], "blobs": row[1], "writes": row[2], "stored": row[3]}


def bytes_per_step(url: str, marks: list[int]) -> list[tuple[str, int, dict[str, int], float]]:
    """Total checkpoint bytes of one thread after each mark, plain list vs DeltaChannel."""
    out = []
    with Database.connect(url, max_size=4) as db:
        db.mirror_messages = False
        for label, state in (("add_messages list", PlainState), ("DeltaChannel", DeltaState)):
            for steps in marks:
                thread = f"{label}-{steps}"
                graph = loop_graph(state, steps).compile(checkpointer=db.checkpointer)
                out_state = graph.invoke({"messages": [], "n": 0}, _config(thread, steps))
                assert len(out_state["messages"]) == steps
                started = time.perf_counter()
                again = graph.get_state(_config(thread, steps)).values
                read = time.perf_counter() - started
                assert [m.content for m in again["messages"]] == [
                    m.content for m in out_state["messages"]
                ]
                out.append((label, steps, thread_bytes(url, thread), read))
    return out


def print_bytes(rows: list[tuple[str, int, dict[str, int], float]]) -> None:
    print("\n3. checkpoint bytes of one thread after N steps (logical bytes: JSONB text + blobs"
          " + writes; 'stored' = blobs after TOAST compression), our checkpointer")  # fmt: skip
    print(f"{'state channel':<20}{'steps':>6}{'total KB':>11}{'bytes/step':>12}"
          f"{'blobs KB':>10}{'stored KB':>11}{'get_state ms':>14}")  # fmt: skip
    for label, steps, b, read in rows:
        total = b["checkpoints"] + b["blobs"] + b["writes"]
        blobs, stored = b["blobs"] / 1024, b["stored"] / 1024
        print(f"{label:<20}{steps:>6}{total / 1024:>11.0f}{total / steps:>12.0f}"
              f"{blobs:>10.0f}{stored:>11.0f}{read * 1000:>14.1f}")  # fmt: skip


# ---- 4. tenancy ---------------------------------------------------------------------------


def app_role_url(url: str, role: str) -> str:
    """``url`` as a login role with DML grants only (row-level security binds it)."""
    with psycopg.connect(url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        for grant in (
            "GRANT CONNECT ON DATABASE {db} TO {role}",
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
            "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
        ):
            db = sql.Identifier(str(conninfo_to_dict(url)["dbname"]))
            conn.execute(sql.SQL(grant).format(db=db, role=sql.Identifier(role)))
    return make_conninfo(url, user=role)


def tenancy(off_url: str, on_url: str, rounds: int) -> list[tuple[str, list[float]]]:
    """Invokes per database, interleaved round by round: tenancy off (unscoped) and on
    (acting for a tenant), both as the application role."""
    role = "bench_app"
    with Database.connect(off_url) as admin:
        admin.set_tenancy(False)
    arms = {
        "tenancy off (unscoped)": (off_url, None),
        "tenancy on (tenant 'acme')": (on_url, "acme"),
    }
    times: dict[str, list[float]] = {name: [] for name in arms}
    with ExitStack() as stack:
        graphs = {}
        for name, (url, tenant) in arms.items():
            db = stack.enter_context(
                Database.connect(app_role_url(url, role), max_size=4, tenant=tenant)
            )
            graphs[name] = loop_graph().compile(checkpointer=db.checkpointer)
        for r in range(rounds + 1):
            for name, graph in graphs.items():
                started = time.perf_counter()
                out = graph.invoke({"messages": [], "n": 0}, _config(uuid.uuid4().hex))
                elapsed = time.perf_counter() - started
                assert len(out["messages"]) == STEPS
                if r:
                    times[name].append(elapsed)
    with psycopg.connect(off_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
    with psycopg.connect(on_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    return list(times.items())


def print_tenancy(rows: list[tuple[str, list[float]]], rounds: int) -> float:
    anchor = statistics.median(rows[0][1])
    print(f"\n4. tenancy: the {STEPS}-step loop graph as the application role, {rounds} invokes "
          "each (median), message mirror on")  # fmt: skip
    print(f"{'database':<32}{'ms/invoke':>11}{'p90 ms':>9}{'vs tenancy off':>16}")
    for name, samples in rows:
        med = statistics.median(samples)
        p90 = sorted(samples)[max(0, int(len(samples) * 0.9) - 1)]
        print(f"{name:<32}{med * 1000:>11.1f}{p90 * 1000:>9.1f}{med / anchor:>15.3f}x")
    return statistics.median(rows[1][1]) / anchor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, shorter history")
    parser.add_argument("--url", help="server to use (default DATABASE_URL, else embedded)")
    parser.add_argument("--only-tenancy", action="store_true", help="run part 4 only")
    args = parser.parse_args(argv)
    rounds = 5 if args.quick else 20
    invokes = 4 if args.quick else 10  # 51 checkpoints each
    marks = [10, 100, 200] if args.quick else [10, 100, 500]
    repeat = 1 if args.quick else 3
    with server_url(args.url) as admin:
        print(f"server: {redact_dsn(admin)}; python {sys.version.split()[0]}; "
              f"{os.cpu_count()} CPUs{'; --quick' if args.quick else ''}")  # fmt: skip
        ratio = None
        if not args.only_tenancy:
            with scratch_database(admin) as url:
                ratio = print_throughput(throughput(url, rounds), rounds)
                print_history(*history(url, invokes, repeat))
                print_bytes(bytes_per_step(url, marks))
        # two fresh databases of the same size: only the switch differs
        with scratch_database(admin) as on_url, scratch_database(admin) as off_url:
            cost = print_tenancy(tenancy(off_url, on_url, 2 * rounds), 2 * rounds)
    if ratio is not None:
        print(f"\nours/PostgresSaver throughput: {ratio:.2f}x (target >= 0.95x)")
    print(f"tenancy on/off: {cost:.3f}x (target <= 1.10x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
