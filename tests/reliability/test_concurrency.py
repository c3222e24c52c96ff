"""Many graphs at once, sync and async: no deadlock, nothing lost or interleaved, pool bounded.

32 graphs on distinct thread ids, then 8 writers on ONE thread id at once. Concurrent runs on
one thread fork its history (langgraph's last-writer-wins); what must hold is that every
checkpoint is whole: its parent exists and its state is the parent's plus one step.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from typing import Any

import psycopg
from conftest import chain_graph, chain_ok, expected_items

from langgraph_pgstore import AsyncDatabase, Database
from langgraph_pgstore.migrate import head_revision

DISTINCT = 32
SAME = 8
MAX_SIZE = 6  # far fewer connections than concurrent graphs


def _check_same_thread(saver: Any, db_url: str, tid: str) -> int:
    """Every checkpoint's items extend its parent's by at most one step; parents exist."""
    cfg = {"configurable": {"thread_id": tid}}
    tuples = {t.config["configurable"]["checkpoint_id"]: t for t in saver.list(cfg)}
    for cid, t in tuples.items():
        parent = t.parent_config["configurable"]["checkpoint_id"] if t.parent_config else None
        if parent is None:
            continue
        assert parent in tuples, f"{cid} has a missing parent"
        mine = t.checkpoint["channel_values"].get("items", [])
        theirs = tuples[parent].checkpoint["channel_values"].get("items", [])
        assert mine[: len(theirs)] == theirs and len(mine) - len(theirs) <= 1, (
            f"interleaved state: {theirs} -> {mine}"
        )
    with psycopg.connect(db_url) as conn:
        _n, problems = chain_ok(conn, tid, allow_forks=True)
    assert not problems, problems
    return len(tuples)


class _PoolWatch:
    def __init__(self, pool: Any) -> None:
        self.pool, self.peak, self._stop = pool, 0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.pool.get_stats().get("pool_size", 0))
            time.sleep(0.002)

    def __enter__(self) -> _PoolWatch:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def test_sync_distinct_and_same_thread(db_url: str) -> None:
    with Database.connect(db_url, max_size=MAX_SIZE, timeout=60) as db:
        graph = chain_graph(steps=6, delay=0.005).compile(checkpointer=db.checkpointer)
        results: dict[str, list[str]] = {}
        errors: list[BaseException] = []

        def run(tid: str, key: str) -> None:
            try:
                results[key] = graph.invoke(
                    {"items": ["in"]}, {"configurable": {"thread_id": tid}}
                )["items"]
            except BaseException as exc:
                errors.append(exc)

        with _PoolWatch(db.pool) as watch:
            threads = [
                threading.Thread(target=run, args=(f"d{i}", f"d{i}")) for i in range(DISTINCT)
            ]
            threads += [threading.Thread(target=run, args=("same", f"s{i}")) for i in range(SAME)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
        assert not any(t.is_alive() for t in threads), "deadlock: a graph never finished"
        assert not errors, errors[:3]
        assert len(results) == DISTINCT + SAME
        for i in range(DISTINCT):
            assert results[f"d{i}"] == expected_items(6)
        with psycopg.connect(db_url) as conn:
            for i in range(DISTINCT):
                n, problems = chain_ok(conn, f"d{i}")
                assert not problems and n == 8, (n, problems)
        total = _check_same_thread(db.checkpointer, db_url, "same")
        assert total >= 8 * SAME  # every writer's checkpoints are there (forks allowed)
        assert watch.peak <= MAX_SIZE


async def test_async_distinct_and_same_thread(db_url: str) -> None:
    async with AsyncDatabase.connect(db_url, max_size=MAX_SIZE, timeout=60) as adb:
        graph = chain_graph(steps=6, delay=0).compile(checkpointer=adb.checkpointer)

        async def run(tid: str) -> list[str]:
            out = await graph.ainvoke({"items": ["in"]}, {"configurable": {"thread_id": tid}})
            return list(out["items"])

        peak = 0

        async def watch(stop: asyncio.Event) -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, adb.pool.get_stats().get("pool_size", 0))
                await asyncio.sleep(0.002)

        stop = asyncio.Event()
        watcher = asyncio.create_task(watch(stop))
        jobs = [run(f"d{i}") for i in range(DISTINCT)] + [run("same") for _ in range(SAME)]
        outs = await asyncio.wait_for(asyncio.gather(*jobs), timeout=120)
        stop.set()
        await watcher
        assert all(o == expected_items(6) for o in outs[:DISTINCT])
        with psycopg.connect(db_url) as conn:
            for i in range(DISTINCT):
                n, problems = chain_ok(conn, f"d{i}")
                assert not problems and n == 8, (n, problems)
    # list() through a sync saver on the same tables checks the forked thread
    with Database.connect(db_url, migrate=False, max_size=2) as db:
        assert _check_same_thread(db.checkpointer, db_url, "same") >= 8 * SAME
    assert peak <= MAX_SIZE


MIGRATE_SCRIPT = (
    "import sys; from langgraph_pgstore.migrate import migrate; print(migrate(sys.argv[1]))"
)


def test_two_processes_migrate_at_once(fresh_db_url: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE_SCRIPT, fresh_db_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    with psycopg.connect(fresh_db_url) as conn:
        rows = conn.execute("SELECT version_num FROM pgstore_alembic_version").fetchall()
        assert rows == [(head_revision(),)]
        assert conn.execute("SELECT count(*) FROM checkpoint_migrations").fetchone()[0] > 0
