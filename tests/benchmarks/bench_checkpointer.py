"""Checkpointer benchmark: throughput, ``get_state_history`` and bytes per step, one server.

    .venv/bin/python tests/benchmarks/bench_checkpointer.py [--quick] [--url postgresql://...]

Uses DATABASE_URL (or ``--url``) when set, else the embedded PostgreSQL in
``.pgstore-bench/pg17``. Every figure comes from this one run on this one server; savers are
interleaved round by round so background load hits them alike. Prints one table per part.

1. A 2-node loop graph of 50 super-steps that appends a message each step, one invoke per
   fresh thread, in both durability modes (``"async"``, ``"sync"``): super-steps/s for our
   default checkpointer (message mirror and connection check on) and with the mirror off,
   sync and async, against PostgresSaver (sync arms) and AsyncPostgresSaver (async arms), and
   InMemorySaver. Ratios are medians of per-round ratios (each round runs every arm once, in
   a rotating order), so a slow minute slows the anchor too.
2. ``get_state_history`` over a thread of ~500 checkpoints of a growing conversation.
3. Bytes of one thread after 10/100/500 steps: PostgresSaver's and ours (the same checkpoint
   rows, plus the message mirror's), and ours with LangGraph's ``DeltaChannel`` (beta in
   langgraph 1.2), which grows linearly and PostgresSaver reads too.
4. Tenancy: the 50-step loop graph through our checkpointer as an application role (DML grants
   only), on a database with tenancy off (unscoped) and one with tenancy on (acting for a
   tenant: row-level security on every table, the tenant set in each transaction); the
   ratio on/off is the cost of tenancy (target: at most 1.10). Twice the rounds of part 1:
   the difference is a few percent, so the medians need more samples.
5. Concurrent graphs: 4 threads (sync savers) or 4 asyncio tasks (async savers) each invoke
   the loop graph on their own threads, two invokes each per round, interleaved: what a server
   handling several conversations at once gets. PostgresSaver and AsyncPostgresSaver share
   one connection behind one lock; ours draw from a pool of 4.
6. Where a call's time goes: the ``put`` and ``put_writes`` calls of one invoke of the loop
   graph (durability ``"sync"``), recorded once and replayed one after another on a fresh
   thread per round, through PostgresSaver, ours and ours with the mirror off: wall and
   client CPU per call. Nothing runs beside them, so a task's writes can't ride with the
   checkpoint here (``coalescer.wait`` is 0): this is each call's own cost.
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
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
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

#: Bytes of one thread: logical (JSONB text, blobs, writes as sent) and stored (after
#: TOAST compression), and the rows the message mirror adds (sessions, messages).
THREAD_BYTES_SQL = """
SELECT
  (SELECT coalesce(sum(octet_length(checkpoint::text) + octet_length(metadata::text)), 0)
     FROM checkpoints WHERE thread_id = %(t)s) AS checkpoints,
  (SELECT coalesce(sum(octet_length(blob)), 0) FROM checkpoint_blobs WHERE thread_id = %(t)s)
     AS blobs,
  (SELECT coalesce(sum(octet_length(blob)), 0) FROM checkpoint_writes WHERE thread_id = %(t)s)
     AS writes,
  (SELECT coalesce(sum(pg_column_size(c.*)), 0) FROM checkpoints c WHERE thread_id = %(t)s)
   + (SELECT coalesce(sum(pg_column_size(blob)), 0) FROM checkpoint_blobs
      WHERE thread_id = %(t)s)
   + (SELECT coalesce(sum(pg_column_size(w.*)), 0) FROM checkpoint_writes w
      WHERE thread_id = %(t)s) AS stored,
  (SELECT coalesce(sum(pg_column_size(m.*)), 0) FROM messages m
     JOIN sessions s ON s.id = m.session_id WHERE s.thread_id = %(t)s) AS mirror
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

#: Arms of part 1: (name, side, anchor). Sync arms are measured against PostgresSaver,
#: async ones against AsyncPostgresSaver.
SYNC_ARMS = ("PostgresSaver", "ours", "ours, mirror off", "InMemorySaver")
ASYNC_ARMS = ("AsyncPostgresSaver", "ours async", "ours async, mirror off")


def throughput(url: str, rounds: int, durability: str) -> dict[str, list[float]]:
    """Seconds per invoke of each arm, rounds interleaved (every arm once per round, in a
    rotating order, so drifting background load hits all alike)."""
    loop = asyncio.new_event_loop()
    stack = ExitStack()

    def enter_async(cm: Any) -> Any:
        value = loop.run_until_complete(cm.__aenter__())
        stack.callback(lambda: loop.run_until_complete(cm.__aexit__(None, None, None)))
        return value

    try:
        db = stack.enter_context(Database.connect(url, max_size=4))
        db_off = stack.enter_context(Database.connect(url, max_size=4))
        db_off.mirror_messages = False
        adb = enter_async(AsyncDatabase.connect(url, max_size=4))
        adb_off = enter_async(AsyncDatabase.connect(url, max_size=4))
        adb_off.mirror_messages = False

        async def async_checkpointers() -> tuple[Any, Any]:
            return adb.checkpointer, adb_off.checkpointer  # AsyncPostgresSaver binds the loop

        ours_async, ours_async_off = loop.run_until_complete(async_checkpointers())
        savers: dict[str, Any] = {
            "PostgresSaver": stack.enter_context(PostgresSaver.from_conn_string(url)),
            "ours": db.checkpointer,
            "ours, mirror off": db_off.checkpointer,
            "InMemorySaver": InMemorySaver(),
            "AsyncPostgresSaver": enter_async(AsyncPostgresSaver.from_conn_string(url)),
            "ours async": ours_async,
            "ours async, mirror off": ours_async_off,
        }
        graphs = {k: loop_graph().compile(checkpointer=v) for k, v in savers.items()}
        times: dict[str, list[float]] = {k: [] for k in graphs}
        names = list(graphs)
        for r in range(rounds + 1):  # round 0 warms up (connections, prepared statements)
            for name in names[r % len(names) :] + names[: r % len(names)]:
                graph, config = graphs[name], _config(uuid.uuid4().hex)
                start = {"messages": [], "n": 0}
                started = time.perf_counter()
                if name in ASYNC_ARMS:
                    coro = graph.ainvoke(start, config, durability=durability)
                    out = loop.run_until_complete(coro)
                else:
                    out = graph.invoke(start, config, durability=durability)
                elapsed = time.perf_counter() - started
                assert len(out["messages"]) == STEPS
                if r:
                    times[name].append(elapsed)
        return times
    finally:
        stack.close()
        loop.close()


def _ratio(times: dict[str, list[float]], arm: str, anchor: str) -> float:
    """Median over rounds of the anchor's time / the arm's time (>1: the arm is faster)."""
    return statistics.median(a / b for a, b in zip(times[anchor], times[arm], strict=True))


def print_throughput(
    times: dict[str, list[float]], rounds: int, durability: str
) -> dict[str, float]:
    print(f"\n1. {STEPS}-step loop graph (one message per step), durability={durability!r}, "
          f"{rounds} interleaved rounds; medians")  # fmt: skip
    print(f"{'checkpointer':<26}{'steps/s':>9}{'ms/step':>9}{'p90':>7}"
          f"{'vs anchor':>11}{'vs InMemory':>13}")  # fmt: skip
    for arms, anchor in ((SYNC_ARMS, "PostgresSaver"), (ASYNC_ARMS, "AsyncPostgresSaver")):
        for name in arms:
            med = statistics.median(times[name]) / STEPS
            p90 = sorted(times[name])[max(0, int(len(times[name]) * 0.9) - 1)] / STEPS
            vs_mem = statistics.median(
                b / a for a, b in zip(times["InMemorySaver"], times[name], strict=True)
            )
            print(f"{name:<26}{1 / med:>9.0f}{med * 1000:>9.2f}{p90 * 1000:>7.2f}"
                  f"{_ratio(times, name, anchor):>10.2f}x{vs_mem:>12.2f}x")  # fmt: skip
    return {
        "ours / PostgresSaver": _ratio(times, "ours", "PostgresSaver"),
        "ours async / AsyncPostgresSaver": _ratio(times, "ours async", "AsyncPostgresSaver"),
        "mirror cost (sync)": 1 / _ratio(times, "ours", "ours, mirror off") - 1,
        "mirror cost (async)": 1 / _ratio(times, "ours async", "ours async, mirror off") - 1,
        "ours / InMemorySaver (time)": 1 / _ratio(times, "ours", "InMemorySaver"),
    }


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
    times = dict(rows)
    print(f"\n2. get_state_history over {count} checkpoints of one growing conversation (best)")
    print(f"{'checkpointer':<36}{'seconds':>9}{'vs anchor':>11}  anchor")
    for name, seconds in rows:
        anchor = "AsyncPostgresSaver" if "async" in name.lower() else "PostgresSaver"
        print(f"{name:<36}{seconds:>9.2f}{times[anchor] / seconds:>10.1f}x  {anchor}")


# ---- 3. bytes per step -------------------------------------------------------------------


def thread_bytes(url: str, thread: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(THREAD_BYTES_SQL, {"t": thread}).fetchone()
    assert row is not None
    keys = ("checkpoints", "blobs", "writes", "stored", "mirror")
    return dict(zip(keys, row, strict=True))


#: Part 3's arms: (label, saver, state schema).
BYTES_ARMS = (
    ("PostgresSaver, add_messages", "theirs", PlainState),
    ("ours, add_messages", "ours", PlainState),
    ("ours, DeltaChannel", "ours", DeltaState),
)


def bytes_per_step(url: str, marks: list[int]) -> list[tuple[str, int, dict[str, int], float]]:
    """Bytes of one thread after N steps, for PostgresSaver and ours (default: the message
    mirror on), and ours with LangGraph's DeltaChannel (the opt-in that grows linearly)."""
    out = []
    with Database.connect(url, max_size=4) as db, PostgresSaver.from_conn_string(url) as pg:
        for label, which, state in BYTES_ARMS:
            saver = pg if which == "theirs" else db.checkpointer
            for steps in marks:
                thread = f"{label}-{steps}"
                graph = loop_graph(state, steps).compile(checkpointer=saver)
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
    print("\n3. bytes of one thread after N super-steps: 'sent' = checkpoint JSONB text + blobs"
          " + writes as written; 'stored' = the checkpoint tables' rows after TOAST compression;"
          " 'mirror' = our messages rows")  # fmt: skip
    print(f"{'saver, state channel':<30}{'steps':>6}{'sent KB':>10}{'stored KB':>11}"
          f"{'mirror KB':>11}{'stored B/step':>15}{'get_state ms':>14}")  # fmt: skip
    for label, steps, b, read in rows:
        sent = b["checkpoints"] + b["blobs"] + b["writes"]
        stored = b["stored"] + b["mirror"]
        kb = (sent / 1024, b["stored"] / 1024, b["mirror"] / 1024)
        print(f"{label:<30}{steps:>6}{kb[0]:>10.0f}{kb[1]:>11.0f}{kb[2]:>11.0f}"
              f"{stored / steps:>15.0f}{read * 1000:>14.1f}")  # fmt: skip


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


# ---- 5. concurrent graphs ----------------------------------------------------------------

#: Graphs running at once in part 5 (threads for the sync savers, tasks for the async ones).
WORKERS = 4


def concurrent(url: str, rounds: int) -> dict[str, list[float]]:
    """Seconds per round of ``2 * WORKERS`` invokes run ``WORKERS`` at a time, per arm."""
    start = {"messages": [], "n": 0}

    def threads(graph: Any) -> float:
        with ThreadPoolExecutor(WORKERS) as pool:
            started = time.perf_counter()
            configs = [_config(uuid.uuid4().hex) for _ in range(2 * WORKERS)]
            for out in pool.map(lambda c: graph.invoke(start, c), configs):
                assert len(out["messages"]) == STEPS
            return time.perf_counter() - started

    async def tasks(graph: Any) -> float:
        sem = asyncio.Semaphore(WORKERS)

        async def one() -> None:
            async with sem:
                out = await graph.ainvoke(start, _config(uuid.uuid4().hex))
                assert len(out["messages"]) == STEPS

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(2 * WORKERS)))
        return time.perf_counter() - started

    async def run() -> dict[str, list[float]]:
        async with (
            AsyncPostgresSaver.from_conn_string(url) as apg,
            AsyncDatabase.connect(url, max_size=WORKERS) as adb,
        ):
            with (
                PostgresSaver.from_conn_string(url) as pg,
                Database.connect(url, max_size=WORKERS) as db,
            ):
                arms = {
                    "PostgresSaver": pg,
                    "ours": db.checkpointer,
                    "AsyncPostgresSaver": apg,
                    "ours async": adb.checkpointer,
                }
                graphs = {k: loop_graph().compile(checkpointer=v) for k, v in arms.items()}
                times: dict[str, list[float]] = {k: [] for k in graphs}
                for r in range(rounds + 1):  # round 0 warms up
                    for name, graph in graphs.items():
                        if name in ASYNC_ARMS:
                            elapsed = await tasks(graph)
                        else:  # the graphs block their threads, not the loop's
                            elapsed = await asyncio.to_thread(threads, graph)
                        if r:
                            times[name].append(elapsed)
                return times

    return asyncio.run(run())


def print_concurrent(times: dict[str, list[float]], rounds: int) -> dict[str, float]:
    print(f"\n5. {WORKERS} graphs at once (threads for sync savers, tasks for async ones), "
          f"{2 * WORKERS} invokes of {STEPS} steps per round (durability='async'), "
          f"{rounds} rounds; medians")  # fmt: skip
    print(f"{'checkpointer':<26}{'steps/s':>9}{'vs anchor':>11}")
    out = {}
    for name, anchor in (
        ("PostgresSaver", "PostgresSaver"),
        ("ours", "PostgresSaver"),
        ("AsyncPostgresSaver", "AsyncPostgresSaver"),
        ("ours async", "AsyncPostgresSaver"),
    ):
        steps = 2 * WORKERS * STEPS / statistics.median(times[name])
        out[name] = _ratio(times, name, anchor)
        print(f"{name:<26}{steps:>9.0f}{out[name]:>10.2f}x")
    return {
        "concurrent: ours / PostgresSaver": out["ours"],
        "concurrent: ours async / AsyncPostgresSaver": out["ours async"],
    }


# ---- 6. where a call's time goes ---------------------------------------------------------

REPLAY_ARMS = ("PostgresSaver", "ours", "ours, mirror off")


class _Recorder(InMemorySaver):
    """Records the saver calls of a run, as LangGraph made them."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def put(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(("put", args))
        return super().put(*args, **kwargs)

    def put_writes(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(("put_writes", args))
        return super().put_writes(*args, **kwargs)


def _on_thread(args: tuple[Any, ...], thread: str) -> tuple[Any, ...]:
    config = {**args[0], "configurable": {**args[0]["configurable"], "thread_id": thread}}
    return (config, *args[1:])


def replay(url: str, rounds: int) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """(wall, CPU) seconds per round of each arm's calls, by method."""
    recorder = _Recorder()
    loop_graph().compile(checkpointer=recorder).invoke(
        {"messages": [], "n": 0}, _config("recorded"), durability="sync"
    )
    out: dict[str, dict[str, list[tuple[float, float]]]] = {}
    with (
        Database.connect(url, max_size=4) as db,
        Database.connect(url, max_size=4) as db_off,
        PostgresSaver.from_conn_string(url) as pg,
    ):
        db_off.mirror_messages = False
        savers: dict[str, Any] = dict(
            zip(REPLAY_ARMS, (pg, db.checkpointer, db_off.checkpointer), strict=True)
        )
        for saver in savers.values():
            if hasattr(saver, "coalescer"):
                saver.coalescer.wait = 0.0
        for method in ("put", "put_writes"):
            calls = [args for name, args in recorder.calls if name == method]
            times: dict[str, list[tuple[float, float]]] = {k: [] for k in savers}
            for r in range(rounds + 1):  # round 0 warms up
                for name in REPLAY_ARMS[r % 3 :] + REPLAY_ARMS[: r % 3]:
                    call, thread = getattr(savers[name], method), uuid.uuid4().hex
                    wall = cpu = 0.0
                    for args in calls:
                        args = _on_thread(args, thread)
                        started, cpu_started = time.perf_counter(), time.process_time()
                        call(*args)
                        wall += time.perf_counter() - started
                        cpu += time.process_time() - cpu_started
                    if r:
                        times[name].append((wall / len(calls), cpu / len(calls)))
            out[method] = times
    return out


def print_replay(times: dict[str, dict[str, list[tuple[float, float]]]], rounds: int) -> None:
    print(f"\n6. each call alone: the put/put_writes calls of one {STEPS}-step invoke, replayed "
          f"on a fresh thread, {rounds} interleaved rounds; medians, ms per call")  # fmt: skip
    print(f"{'checkpointer':<20}{'put wall':>10}{'put CPU':>9}{'writes wall':>13}"
          f"{'writes CPU':>12}")  # fmt: skip
    for name in REPLAY_ARMS:
        cells = [
            1000 * statistics.median(t[i] for t in times[method][name])
            for method in ("put", "put_writes")
            for i in (0, 1)
        ]
        print(f"{name:<20}{cells[0]:>10.3f}{cells[1]:>9.3f}{cells[2]:>13.3f}{cells[3]:>12.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, shorter history")
    parser.add_argument("--url", help="server to use (default DATABASE_URL, else embedded)")
    parser.add_argument("--parts", default="123456", help="which parts to run (default all)")
    parser.add_argument("--rounds", type=int, help="rounds of part 1 (default 20, quick 5)")
    args = parser.parse_args(argv)
    rounds = args.rounds or (5 if args.quick else 20)
    invokes = 4 if args.quick else 10  # 51 checkpoints each
    marks = [10, 100, 200] if args.quick else [10, 100, 500]
    repeat = 1 if args.quick else 3
    with server_url(args.url) as admin:
        print(f"server: {redact_dsn(admin)}; python {sys.version.split()[0]}; "
              f"{os.cpu_count()} CPUs; load average {_load()}"
              f"{'; --quick' if args.quick else ''}")  # fmt: skip
        ratios: dict[str, dict[str, float]] = {}
        if {"1", "2", "3", "5", "6"} & set(args.parts):
            with scratch_database(admin) as url:
                if "1" in args.parts:
                    for durability in ("async", "sync"):
                        times = throughput(url, rounds, durability)
                        ratios[durability] = print_throughput(times, rounds, durability)
                if "2" in args.parts:
                    print_history(*history(url, invokes, repeat))
                if "3" in args.parts:
                    print_bytes(bytes_per_step(url, marks))
                if "5" in args.parts:
                    figures = print_concurrent(concurrent(url, rounds), rounds)
                    ratios.setdefault("async", {}).update(figures)  # LangGraph's default
                if "6" in args.parts:
                    print_replay(replay(url, rounds), rounds)
        cost = None
        if "4" in args.parts:
            # two fresh databases of the same size: only the switch differs
            with scratch_database(admin) as on_url, scratch_database(admin) as off_url:
                cost = print_tenancy(tenancy(off_url, on_url, 2 * rounds), 2 * rounds)
    print(f"\nsummary (median of per-round ratios; load average now {_load()})")
    for durability, figures in ratios.items():
        for name, value in figures.items():
            target = TARGETS.get(name, "")
            shown = f"{value:+.1%}" if name.startswith("mirror") else f"{value:.2f}x"
            print(f"  durability={durability!r:<8} {name:<44}{shown:>8}  {target}")
    if cost is not None:
        print(f"  tenancy on/off {cost:.3f}x  (target <= 1.10x)")
    return 0


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


#: What the summary lines are compared with (issue 12).
TARGETS = {
    "ours / PostgresSaver": "(target >= 1.30x)",
    "ours async / AsyncPostgresSaver": "(target >= 1.30x)",
    "mirror cost (sync)": "(target <= +10%)",
    "mirror cost (async)": "(target <= +10%)",
    "ours / InMemorySaver (time)": "(ambition <= 2.00x)",
    "concurrent: ours / PostgresSaver": "(no target; 4 graphs at once)",
    "concurrent: ours async / AsyncPostgresSaver": "(no target; 4 graphs at once)",
}


if __name__ == "__main__":
    raise SystemExit(main())
