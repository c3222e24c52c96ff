"""The pool's connection check: no round trip for a connection handed out moments ago, the
full check (and the purge) as soon as its backend is gone."""

from __future__ import annotations

import time

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from langgraph_pgstore import Database


def test_recent_connections_skip_the_check_dead_ones_do_not(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks: list[object] = []
    real = ConnectionPool.check_connection

    def counted(conn: psycopg.Connection) -> None:
        checks.append(conn)
        real(conn)

    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(counted))
    with Database.connect(db_url, min_size=1, max_size=1) as db:
        with db.pool.connection() as conn:
            pid = conn.info.backend_pid
        checks.clear()
        for _ in range(20):
            with db.pool.connection() as conn:
                conn.execute("SELECT 1")
        assert checks == []  # used moments ago, socket quiet: no round trip
        with psycopg.connect(db_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the server's goodbye reaches the socket
            time.sleep(0.05)
            with psycopg.connect(db_url, autocommit=True) as admin:
                gone = not admin.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)
                ).fetchone()
            if gone:
                break
        with db.pool.connection(timeout=10) as conn:  # a fresh one, not the dead one
            assert conn.execute("SELECT 1").fetchone() is not None
            assert conn.info.backend_pid != pid
        assert checks  # the dead connection got the full check
