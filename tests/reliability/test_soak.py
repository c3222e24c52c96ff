"""Bounded fault soak (issue 11, "Done when"): about two minutes of concurrent graphs (with
checkpointer and telemetry) and memory-store reads/writes while the dedicated server is
SIGKILLed and restarted 3 times and random backends are terminated; then one more kill with
telemetry still buffered, a close that spills, and a fresh start that replays.

Checked at the end: every committed checkpoint is readable, every run the graphs produced is
in the tables with a terminal status (or accounted for as rejected/lost, with a reason), the
telemetry writer thread is alive, no worker is stuck, zero deadlocks. Loopback/Unix socket
only; bounded by SOAK_SECONDS (env ``PGSTORE_SOAK_SECONDS``, default 100).
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import chain_graph
from psycopg.conninfo import conninfo_to_dict

from langgraph_pgstore import Database
from langgraph_pgstore.checkpoint import PgCheckpointer
from langgraph_pgstore.errors import PgStoreError

pytestmark = pytest.mark.slow

SOAK_SECONDS = float(os.environ.get("PGSTORE_SOAK_SECONDS", "100"))
GRAPH_WORKERS = 6
STORE_WORKERS = 2
KILLS = 3


class Recording(PgCheckpointer):
    """Remembers every checkpoint whose ``put`` returned: those are committed."""

    def setup_recording(self) -> None:
        self.committed: dict[str, list[str]] = {}
        self.rec_lock = threading.Lock()

    def put(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        out = super().put(config, checkpoint, metadata, new_versions)
        with self.rec_lock:
            self.committed.setdefault(out["configurable"]["thread_id"], []).append(
                out["configurable"]["checkpoint_id"]
            )
        return out


def _is_deadlock(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if getattr(seen, "sqlstate", None) == "40P01":
            return True
        seen = seen.__cause__
    return False


class Soak:
    def __init__(self, db: Database, saver: Recording) -> None:
        self.db = db
        self.graph = db.telemetry.instrument(
            chain_graph(steps=6, delay=0.005).compile(checkpointer=saver, name="soak")
        )
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.runs: list[uuid.UUID] = []  # every invocation started (each is a recorded run)
        self.finished_threads = 0
        self.graph_errors: list[BaseException] = []
        self.store_ok = 0
        self.store_errors: list[BaseException] = []

    def graph_worker(self, w: int) -> None:
        n = 0
        while not self.stop.is_set():
            tid = f"w{w}-{n}"
            cfg: dict[str, Any] = {"configurable": {"thread_id": tid}}
            payload: dict[str, Any] | None = {"items": ["in"]}
            for _attempt in range(50):
                rid = uuid.uuid4()
                with self.lock:
                    self.runs.append(rid)
                try:
                    self.graph.invoke(payload, {**cfg, "run_id": rid, "metadata": {"w": w}})
                    with self.lock:
                        self.finished_threads += 1
                    break
                except Exception as exc:
                    self.graph_errors.append(exc)
                    if self.stop.is_set():
                        return
                    time.sleep(0.2)
                    try:  # resume from the last committed checkpoint, if any
                        payload = None if self.graph.get_state(cfg).values else payload
                    except Exception as exc2:
                        self.graph_errors.append(exc2)
            n += 1

    def store_worker(self, w: int) -> None:
        rng = random.Random(w)
        store = self.db.store
        while not self.stop.is_set():
            key = f"k{rng.randrange(50)}"
            try:
                if rng.random() < 0.5:
                    store.put(("soak", f"s{w}"), key, {"v": rng.random()})
                else:
                    store.get(("soak", f"s{w}"), key)
                    store.search(("soak",), limit=5)
                self.store_ok += 1
            except Exception as exc:
                self.store_errors.append(exc)
                time.sleep(0.1)


def test_fault_soak(dedicated: Any, dedicated_db: str, tmp_path: Path) -> None:
    dbname = conninfo_to_dict(dedicated_db)["dbname"]
    spill_dir = tmp_path / "spill"
    t_start = time.monotonic()
    kills = terminations = 0
    with Database.connect(dedicated_db, max_size=8, timeout=2) as db:
        db.telemetry.writer.spill_dir = spill_dir
        saver = Recording(db.pool)  # type: ignore[arg-type]
        saver.setup_recording()
        soak = Soak(db, saver)
        workers = [
            threading.Thread(target=soak.graph_worker, args=(i,), daemon=True)
            for i in range(GRAPH_WORKERS)
        ] + [
            threading.Thread(target=soak.store_worker, args=(i,), daemon=True)
            for i in range(STORE_WORKERS)
        ]
        for t in workers:
            t.start()
        rng = random.Random(0)
        kill_at = [SOAK_SECONDS * (i + 1) / (KILLS + 1) for i in range(KILLS)]
        while (elapsed := time.monotonic() - t_start) < SOAK_SECONDS:
            if kill_at and elapsed >= kill_at[0]:
                kill_at.pop(0)
                dedicated.kill()
                kills += 1
                time.sleep(1.0)
                dedicated.start()
                continue
            time.sleep(rng.uniform(1.0, 3.0))
            try:
                with psycopg.connect(dedicated.url(), autocommit=True, connect_timeout=2) as adm:
                    pids = [
                        r[0]
                        for r in adm.execute(
                            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (dbname,)
                        )
                    ]
                    if pids:
                        adm.execute("SELECT pg_terminate_backend(%s)", (rng.choice(pids),))
                        terminations += 1
            except psycopg.OperationalError:
                pass  # the server is restarting
        soak.stop.set()
        for t in workers:
            t.join(60)
        stuck = [t.name for t in workers if t.is_alive()]
        assert not stuck, f"workers stuck (deadlock?): {stuck}"
        assert db.telemetry.flush(60), db.telemetry.status()
        status = db.telemetry.status()
        assert status.alive and status.connected, status

        # every committed checkpoint is readable
        committed = sum(len(v) for v in saver.committed.values())
        unreadable = [
            (tid, cid)
            for tid, ids in saver.committed.items()
            for cid in ids
            if saver.get_tuple(
                {"configurable": {"thread_id": tid, "checkpoint_ns": "", "checkpoint_id": cid}}
            )
            is None
        ]
        assert not unreadable, unreadable[:5]

        # every run the graphs produced is recorded and finished
        with db.pool.connection() as conn:
            rows = conn.execute(
                "SELECT id, status FROM runs WHERE id = ANY(%s)", (soak.runs,)
            ).fetchall()
        recorded = {r["id"]: r["status"] for r in rows}
        missing = [r for r in soak.runs if r not in recorded]
        running = [r for r, s in recorded.items() if s == "running"]
        writer = db.telemetry.writer
        rejected, lost = writer.rejected_events, writer.lost_events
        assert not missing or rejected + lost > 0, f"{len(missing)} runs missing, none reported"
        assert not running, f"{len(running)} runs left 'running'"
        assert rejected == 0 and lost == 0, (rejected, lost)

        # last kill with telemetry buffered: close spills, the next start replays
        tail = chain_graph(steps=3, delay=0).compile(name="tail")  # no checkpointer
        tail = db.telemetry.instrument(tail)
        dedicated.kill()
        kills += 1
        tail_runs = [uuid.uuid4() for _ in range(20)]
        for rid in tail_runs:
            tail.invoke({"items": ["in"]}, {"run_id": rid})
        time.sleep(0.2)
    spilled, produced = writer.spilled_events, writer._enqueued
    written = writer._processed - writer.rejected_events - spilled
    assert spilled > 0 and list(spill_dir.glob("*.jsonl")), "nothing spilled"
    dedicated.start()
    with Database.connect(dedicated_db, max_size=2) as db2:
        db2.telemetry.writer.spill_dir = spill_dir
        replayed = db2.telemetry.writer.replay(30)
        assert db2.telemetry.flush(30)
        for rid in tail_runs:
            assert db2.telemetry.get_run(rid)["run"]["status"] == "success"
    deadlocks = [e for e in soak.graph_errors + soak.store_errors if _is_deadlock(e)]
    assert not deadlocks, deadlocks[:3]
    unexpected = [
        e
        for e in soak.graph_errors + soak.store_errors
        if not isinstance(e, PgStoreError | psycopg.Error)
    ]
    assert not unexpected, unexpected[:3]
    figures = {
        "seconds": round(time.monotonic() - t_start, 1),
        "server_kills": kills,
        "backends_terminated": terminations,
        "graph_runs": len(soak.runs),
        "graph_threads_finished": soak.finished_threads,
        "graph_errors": len(soak.graph_errors),
        "checkpoints_committed": committed,
        "checkpoints_unreadable": len(unreadable),
        "store_ops_ok": soak.store_ok,
        "store_errors": len(soak.store_errors),
        "deadlocks": len(deadlocks),
        "events_produced": produced,
        "events_written": written,
        "events_spilled": spilled,
        "rows_replayed": replayed,
        "events_rejected": rejected,
        "events_lost": lost,
        "error_types": sorted({type(e).__name__ for e in soak.graph_errors + soak.store_errors}),
    }
    print(f"\nFIGURES soak: {figures}")
    assert soak.finished_threads > 0 and soak.store_ok > 0
