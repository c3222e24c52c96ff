"""Fixtures for fault tests: a dedicated server the test may SIGKILL, and shared graph helpers."""

from __future__ import annotations

import operator
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, TypedDict

import psycopg
import pytest
from langgraph.graph import END, START, StateGraph
from psycopg.conninfo import make_conninfo

sys.path.insert(0, str(Path(__file__).resolve().parent))

import itertools

from _server import DedicatedServer

from langgraph_pgstore.migrate import migrate

STEPS = 12


class State(TypedDict):
    items: Annotated[list[str], operator.add]


def chain_graph(steps: int = STEPS, delay: float = 0.02) -> StateGraph[Any]:
    """A linear graph n0 -> ... -> n{steps-1}; each node appends its name once."""
    g: StateGraph[Any] = StateGraph(State)

    def node(name: str) -> Any:
        def fn(state: State) -> dict[str, list[str]]:
            time.sleep(delay)
            return {"items": [name]}

        return fn

    names = [f"n{i}" for i in range(steps)]
    for name in names:
        g.add_node(name, node(name))
    g.add_edge(START, names[0])
    for a, b in itertools.pairwise(names):
        g.add_edge(a, b)
    g.add_edge(names[-1], END)
    return g


def expected_items(steps: int = STEPS) -> list[str]:
    return ["in", *[f"n{i}" for i in range(steps)]]


def chain_ok(
    conn: psycopg.Connection[Any], thread_id: str, *, allow_forks: bool = False
) -> tuple[int, list[str]]:
    """(checkpoint count, problems) for a thread: every parent exists, one root, one head."""
    rows = conn.execute(
        "SELECT checkpoint_id, parent_checkpoint_id FROM checkpoints "
        "WHERE thread_id = %s AND checkpoint_ns = ''",
        (thread_id,),
    ).fetchall()
    ids = {r[0] for r in rows}
    problems = []
    roots = [r for r in rows if r[1] is None]
    if len(roots) != 1 and not (allow_forks and roots):
        problems.append(f"{thread_id}: {len(roots)} roots")
    children: dict[str, int] = {}
    for cid, parent in rows:
        if parent is not None:
            if parent not in ids:
                problems.append(f"{thread_id}: {cid} has missing parent {parent}")
            children[parent] = children.get(parent, 0) + 1
    forks = {p: n for p, n in children.items() if n > 1}
    if forks and not allow_forks:
        problems.append(f"{thread_id}: forked history {forks}")
    missing_blobs = conn.execute(
        """SELECT c.checkpoint_id, v.key FROM checkpoints c,
                  jsonb_each_text(c.checkpoint -> 'channel_versions') v
           WHERE c.thread_id = %s AND NOT EXISTS (
             SELECT 1 FROM checkpoint_blobs b WHERE b.thread_id = c.thread_id
               AND b.checkpoint_ns = c.checkpoint_ns AND b.channel = v.key
               AND b.version = v.value)
             AND v.key = 'items'""",
        (thread_id,),
    ).fetchall()
    if missing_blobs:
        problems.append(f"{thread_id}: checkpoints without blobs {missing_blobs[:3]}")
    return len(rows), problems


@pytest.fixture(scope="module")
def dedicated() -> Iterator[DedicatedServer]:
    """A server of this module's own; tests may kill and restart it."""
    server = DedicatedServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def dedicated_db(dedicated: DedicatedServer) -> Iterator[str]:
    """A fresh migrated database on the dedicated server (Unix-socket URL)."""
    name = f"r_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dedicated.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = make_conninfo(dedicated.url(), dbname=name)
    migrate(url)
    yield url
    try:
        with psycopg.connect(dedicated.url(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    except psycopg.OperationalError:
        pass
