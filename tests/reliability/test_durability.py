"""SIGKILL the Python process mid-run: nothing it wrote may be half-written.

Every checkpoint has its message blob, no session exists without a checkpoint of its thread,
no mirrored message points at a checkpoint that doesn't exist, and each thread resumes.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.graph import START, MessagesState, StateGraph

from langgraph_pgstore import Database

WORKER = Path(__file__).with_name("_durability_worker.py")
THREADS = 6
KILLS = 3

MISSING_BLOBS_SQL = """
SELECT c.thread_id, c.checkpoint_id FROM checkpoints c,
       jsonb_each_text(c.checkpoint -> 'channel_versions') v
WHERE v.key = 'messages' AND NOT EXISTS (
  SELECT 1 FROM checkpoint_blobs b WHERE b.thread_id = c.thread_id
    AND b.checkpoint_ns = c.checkpoint_ns AND b.channel = v.key AND b.version = v.value)
"""
SESSIONS_WITHOUT_CHECKPOINT_SQL = """
SELECT s.thread_id FROM sessions s
WHERE NOT EXISTS (SELECT 1 FROM checkpoints c WHERE c.thread_id = s.thread_id)
"""
MESSAGES_WITHOUT_CHECKPOINT_SQL = """
SELECT m.id FROM messages m JOIN sessions s ON s.id = m.session_id
WHERE m.checkpoint_id IS NULL OR NOT EXISTS (
  SELECT 1 FROM checkpoints c WHERE c.thread_id = s.thread_id
    AND c.checkpoint_ns = m.checkpoint_ns AND c.checkpoint_id = m.checkpoint_id)
"""


def test_sigkill_python_mid_run(db_url: str) -> None:
    rng = random.Random(7)
    for _ in range(KILLS):
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), db_url, str(THREADS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "ready":
            proc.kill()
            _out, err = proc.communicate(timeout=30)
            raise AssertionError(f"worker failed: {err[-3000:]}")
        time.sleep(rng.uniform(0.05, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL

    with psycopg.connect(db_url) as conn:
        n_ckpt = conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0]
        assert n_ckpt > 0
        assert conn.execute(MISSING_BLOBS_SQL).fetchall() == []
        assert conn.execute(SESSIONS_WITHOUT_CHECKPOINT_SQL).fetchall() == []
        assert conn.execute(MESSAGES_WITHOUT_CHECKPOINT_SQL).fetchall() == []
        n_sessions = conn.execute("SELECT count(*) FROM sessions").fetchone()[0]
        n_messages = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    print(
        f"\nFIGURES durability: kills={KILLS} checkpoints={n_ckpt} sessions={n_sessions} "
        f"messages={n_messages}"
    )

    # every thread resumes from what survived
    g = StateGraph(MessagesState)
    g.add_node("think", lambda s: {"messages": [AIMessage("t")]})
    g.add_node("answer", lambda s: {"messages": [AIMessage("a")]})
    g.add_edge(START, "think")
    g.add_edge("think", "answer")
    with Database.connect(db_url, max_size=2) as db:
        graph = g.compile(checkpointer=db.checkpointer)
        for i in range(THREADS):
            cfg = {"configurable": {"thread_id": f"dur{i}"}}
            state = graph.get_state(cfg)
            if state.next:  # killed mid-run: continue where it stopped
                graph.invoke(None, cfg)
            graph.invoke({"messages": [HumanMessage("after the crash")]}, cfg)
            tail = [m.content for m in graph.get_state(cfg).values["messages"][-3:]]
            assert tail == ["after the crash", "t", "a"]
    with psycopg.connect(db_url) as conn:
        assert conn.execute(SESSIONS_WITHOUT_CHECKPOINT_SQL).fetchall() == []
        assert conn.execute(MESSAGES_WITHOUT_CHECKPOINT_SQL).fetchall() == []
