"""The checkpointer through pgbouncer in transaction mode (Debian's ``pgbouncer`` package).

Transaction pooling hands each transaction a possibly different server connection, so
server-side prepared statements and session state can't be relied on: the app connects with
``prepare_threshold=None``. Migrations (session advisory locks, DDL) go to the server directly.
The tenant is set inside each transaction, so tenants sharing server connections stay apart.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from _server import DedicatedServer, free_port
from conftest import chain_graph, chain_ok, expected_items
from langchain_core.messages import AIMessage
from langgraph.graph import START, MessagesState, StateGraph
from pgtest import app_role

from langgraph_pgstore import AsyncDatabase, Database
from langgraph_pgstore.migrate import migrate
from langgraph_pgstore.tenancy import OWNED_TABLES

PGBOUNCER = shutil.which("pgbouncer") or (
    "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
)
pytestmark = pytest.mark.skipif(
    PGBOUNCER is None, reason="pgbouncer not installed (apt-get install -y pgbouncer)"
)

INI = """\
[databases]
* = host=127.0.0.1 port={pg_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {root}/userlist.txt
pool_mode = transaction
max_client_conn = 200
default_pool_size = 4
ignore_startup_parameters = extra_float_digits,options
logfile = {root}/pgbouncer.log
pidfile = {root}/pgbouncer.pid
"""


#: The application role (DML grants only) the tenancy test connects as through pgbouncer.
APP_ROLE = "pgstore_app"


@pytest.fixture(scope="module")
def bouncer(dedicated: DedicatedServer) -> Iterator[int]:
    """pgbouncer on a free loopback port in front of the dedicated server's TCP port."""
    assert PGBOUNCER is not None
    root = dedicated.root / "bouncer"
    root.mkdir()
    port = free_port()
    (root / "userlist.txt").write_text(f'"postgres" ""\n"{APP_ROLE}" ""\n')
    (root / "pgbouncer.ini").write_text(INI.format(pg_port=dedicated.port, port=port, root=root))
    if dedicated.user:
        shutil.chown(root, dedicated.user, dedicated.user)
        for f in root.iterdir():
            shutil.chown(f, dedicated.user, dedicated.user)
    proc = subprocess.Popen(
        [PGBOUNCER, str(root / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        user=dedicated.user,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            with psycopg.connect(
                f"host=127.0.0.1 port={port} dbname=postgres user=postgres",
                prepare_threshold=None,
                connect_timeout=2,
            ) as c:
                c.execute("SELECT 1")
            break
        except psycopg.OperationalError:
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (
                    (root / "pgbouncer.log").read_text()
                    if (root / "pgbouncer.log").exists()
                    else ""
                )
                proc.kill()
                proc.wait(10)
                pytest.fail(f"pgbouncer did not start: {log[-1500:]}")
            time.sleep(0.1)
    yield port
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def bounced_url(dedicated: DedicatedServer, bouncer: int) -> Iterator[str]:
    """A migrated database (migrated directly), and its URL through pgbouncer."""
    name = f"b_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dedicated.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    migrate(dedicated.url(name))
    yield f"host=127.0.0.1 port={bouncer} dbname={name} user=postgres"
    with psycopg.connect(dedicated.url(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_sync_graphs_through_pgbouncer(bounced_url: str) -> None:
    with Database.connect(bounced_url, prepare_threshold=None, max_size=8) as db:
        assert db.health().ok
        graph = chain_graph(steps=5, delay=0).compile(checkpointer=db.checkpointer)
        errors: list[BaseException] = []

        def run(i: int) -> None:
            try:
                cfg = {"configurable": {"thread_id": f"t{i}"}}
                for _ in range(3):  # > prepare threshold's default of 5 statements each
                    graph.invoke({"items": ["in"]}, cfg)
                assert graph.get_state(cfg).values["items"] == expected_items(5) * 3
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors[:3]
        saver = db.checkpointer
        cfg = {"configurable": {"thread_id": "t0"}}
        assert len(list(graph.get_state_history(cfg))) == 3 * 7
        saver.copy_thread("t0", "copy")
        assert graph.get_state({"configurable": {"thread_id": "copy"}}).values == (
            graph.get_state(cfg).values
        )
        saver.delete_thread("t1")
        assert list(saver.list({"configurable": {"thread_id": "t1"}})) == []
    with psycopg.connect(bounced_url, prepare_threshold=None) as conn:
        for i in range(2, 12):
            n, problems = chain_ok(conn, f"t{i}")
            assert n == 21 and not problems, (n, problems)


async def test_async_graphs_through_pgbouncer(bounced_url: str) -> None:
    import asyncio

    async with AsyncDatabase.connect(bounced_url, prepare_threshold=None, max_size=8) as adb:
        assert (await adb.ahealth()).ok
        graph = chain_graph(steps=5, delay=0).compile(checkpointer=adb.checkpointer)

        async def run(i: int) -> Any:
            cfg = {"configurable": {"thread_id": f"a{i}"}}
            for _ in range(3):
                await graph.ainvoke({"items": ["in"]}, cfg)
            return (await graph.aget_state(cfg)).values["items"]

        outs = await asyncio.wait_for(asyncio.gather(*(run(i) for i in range(12))), 120)
        assert all(o == expected_items(5) * 3 for o in outs)


def test_tenants_share_pgbouncer_server_connections(
    dedicated: DedicatedServer, bouncer: int, bounced_url: str
) -> None:
    """Two tenants interleave on one client pool and four server connections: each sees only
    its rows, and no server connection keeps a tenant after a transaction."""
    dbname = bounced_url.split("dbname=")[1].split()[0]
    with app_role(dedicated.url(dbname), name=APP_ROLE):
        url = f"host=127.0.0.1 port={bouncer} dbname={dbname} user={APP_ROLE}"

        def reply(state: MessagesState) -> dict[str, list[AIMessage]]:
            return {"messages": [AIMessage(f"ok {len(state['messages'])}")]}

        builder = StateGraph(MessagesState)
        builder.add_node("reply", reply)
        builder.add_edge(START, "reply")
        errors: list[BaseException] = []
        with Database.connect(url, prepare_threshold=None, max_size=6) as app:
            graph = app.telemetry.instrument(builder.compile(checkpointer=app.checkpointer))

            def work(user: str, n: int) -> None:
                try:
                    for turn in range(3):
                        with app.tenant(user):
                            cfg = {"configurable": {"thread_id": f"{user}-{n}"}}
                            graph.invoke({"messages": [("user", f"{user} turn {turn}")]}, cfg)
                            other = "bob" if user == "alice" else "alice"
                            theirs = {"configurable": {"thread_id": f"{other}-{n}"}}
                            assert app.checkpointer.get_tuple(theirs) is None
                            sessions = app.conversations.list_sessions(limit=100).items
                            assert {s.owner_id for s in sessions} == {user}
                except BaseException as exc:
                    errors.append(exc)

            workers = [
                threading.Thread(target=work, args=(user, n))
                for n in range(4)
                for user in ("alice", "bob")
            ]
            for w in workers:
                w.start()
            for w in workers:
                w.join(120)
            assert not errors, errors[:3]
            assert app.telemetry.flush(20) and app.telemetry.rejected_events == 0
            with app.transaction() as conn:  # no tenant: nothing of theirs, nothing left over
                for table in OWNED_TABLES:
                    row = conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()
                    assert row is not None and row["n"] == 0, table
                left = conn.execute("SELECT current_setting('pgstore.tenant', true) AS t")
                assert (left.fetchone() or {}).get("t") in (None, "")
        with psycopg.connect(dedicated.url(dbname)) as admin:
            for table, thread in (
                ("checkpoints", "thread_id"),
                ("checkpoint_writes", "thread_id"),
                ("sessions", "thread_id"),
                ("runs", "thread_id"),
                ("messages", "session_id"),
            ):
                rows = admin.execute(
                    f"SELECT owner_id, count(DISTINCT {thread}) FROM {table} GROUP BY 1"
                ).fetchall()
                assert dict(rows) == {"alice": 4, "bob": 4}, (table, rows)
            for table in ("checkpoints", "sessions", "runs"):
                wrong = admin.execute(
                    f"SELECT count(*) FROM {table} WHERE thread_id NOT LIKE owner_id || '-%'"
                ).fetchone()
                assert wrong == (0,), table
