"""Bad input gets a clear error of our own: unreachable server, bad URL, no embedded server."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections import namedtuple
from pathlib import Path

import psycopg
import pytest
from langgraph.graph import END, START, MessagesState, StateGraph

import langgraph_pgstore.embedded as embedded
from langgraph_pgstore import (
    AsyncDatabase,
    ConfigurationError,
    Database,
    DatabaseUnavailable,
    EmbeddedUnavailable,
    PgStoreError,
    Settings,
)
from langgraph_pgstore.migrate import migrate

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s3cr3t-Pa55"
#: Port 1 on loopback: nothing listens there, so connections are refused at once.
UNREACHABLE = f"postgresql://agent:{SECRET}@127.0.0.1:1/agentdb"


def _graph() -> StateGraph:
    def reply(state: MessagesState) -> dict[str, list[tuple[str, str]]]:
        return {"messages": [("ai", f"seen {len(state['messages'])}")]}

    builder = StateGraph(MessagesState)
    builder.add_node("reply", reply)
    builder.add_edge(START, "reply")
    builder.add_edge("reply", END)
    return builder


def test_unreachable_server_is_database_unavailable_with_redacted_dsn() -> None:
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable) as info:
        Database.open(UNREACHABLE, connect_timeout=2, timeout=2)
    assert time.monotonic() - started < 20  # bounded by connect_timeout, not the 30 s default
    message = str(info.value)
    assert SECRET not in message
    assert "127.0.0.1" in message
    assert "***" in message
    assert isinstance(info.value, psycopg.OperationalError)  # catchable the stdlib way


async def test_unreachable_server_async() -> None:
    with pytest.raises(DatabaseUnavailable) as info:
        await AsyncDatabase.open(UNREACHABLE, connect_timeout=2, timeout=2)
    assert SECRET not in str(info.value)


def test_migrate_unreachable_server() -> None:
    with pytest.raises(DatabaseUnavailable) as info:
        migrate(UNREACHABLE, Settings.resolve(UNREACHABLE, connect_timeout=2))
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        f"mysql://agent:{SECRET}@localhost/agentdb",
        f"sqlite:///tmp/{SECRET}.db",
        f"postgresql://agent:{SECRET}@localhost:notaport/agentdb",
        "just-some-words",
    ],
)
def test_bad_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Database.open(url)
    if SECRET in url and "sqlite" not in url:
        assert SECRET not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_bad_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"redis://x:{SECRET}@localhost/0")
    with pytest.raises(ConfigurationError, match="unsupported URL scheme") as info:
        Settings.resolve()
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    ("var", "value", "match"),
    [
        ("PGSTORE_POOL_MAX_SIZE", "lots", "PGSTORE_POOL_MAX_SIZE"),
        ("PGSTORE_SCHEMA", "x; DROP TABLE users", "plain identifier"),
        ("PGSTORE_CHECK_CONNECTION", "maybe", "PGSTORE_CHECK_CONNECTION"),
        ("PGSTORE_PREPARE_THRESHOLD", "-3", "prepare_threshold"),
    ],
)
def test_bad_environment_settings(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, match: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigurationError, match=match):
        Settings.resolve("postgresql://localhost/x")


def test_unknown_option_is_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="pool_size"):
        Settings.resolve("postgresql://localhost/x", pool_size=3)  # type: ignore[call-arg]


_VersionInfo = namedtuple("_VersionInfo", "major minor micro releaselevel serial")


def test_python311_without_url_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("DATABASE_URL", "PGSTORE_DATABASE_URL"):
        monkeypatch.delenv(var, raising=False)
    fake_sys = type("FakeSys", (), {"version_info": _VersionInfo(3, 11, 9, "final", 0)})
    monkeypatch.setattr(embedded, "sys", fake_sys)
    with pytest.raises(EmbeddedUnavailable) as info:
        Database.open()
    message = str(info.value)
    assert "3.12" in message and "3.11" in message
    assert "DATABASE_URL" in message
    assert isinstance(info.value, ConfigurationError | PgStoreError)


def test_python311_with_url_still_works(monkeypatch: pytest.MonkeyPatch, db_url: str) -> None:
    fake_sys = type("FakeSys", (), {"version_info": _VersionInfo(3, 11, 9, "final", 0)})
    monkeypatch.setattr(embedded, "sys", fake_sys)
    with Database.connect(db_url) as db:
        assert db.server is None
        assert db.health().ok


def _python311_with_deps() -> str | None:
    """``PGSTORE_PY311`` (a Python 3.11 with our dependencies), else ``python3.11`` on PATH."""
    exe = os.environ.get("PGSTORE_PY311") or shutil.which("python3.11")
    if exe is None:
        return None
    probe = subprocess.run(
        [
            exe,
            "-c",
            "import sys, psycopg, langgraph, alembic; assert sys.version_info[:2] == (3, 11)",
        ],
        capture_output=True,
    )
    return exe if probe.returncode == 0 else None


@pytest.mark.skipif(
    _python311_with_deps() is None,
    reason="no python3.11 with our dependencies (set PGSTORE_PY311=/path/to/python3.11)",
)
def test_real_python311_without_url(tmp_path: Path) -> None:
    exe = _python311_with_deps()
    assert exe is not None
    code = (
        "import langgraph_pgstore as p\n"
        "try:\n    p.Database.open()\n"
        "except p.EmbeddedUnavailable as e:\n    print('EMBEDDED-UNAVAILABLE', e)\n"
    )
    env = {"PYTHONPATH": str(ROOT), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([exe, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert "EMBEDDED-UNAVAILABLE" in out.stdout, out.stderr
    assert "3.12" in out.stdout


def test_prepare_threshold_none_works(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGSTORE_PREPARE_THRESHOLD", "none")
    with Database.connect(db_url, max_size=2) as db:
        assert db.settings.prepare_threshold is None
        graph = _graph().compile(checkpointer=db.checkpointer)
        config = {"configurable": {"thread_id": "pgbouncer"}}
        for i in range(8):  # more than psycopg's default threshold of 5 executions
            graph.invoke({"messages": [("human", f"hi {i}")]}, config)
        assert len(graph.get_state(config).values["messages"]) == 16
        with db.pool.connection() as conn:
            assert conn.prepare_threshold is None
            prepared = conn.execute("SELECT count(*) AS n FROM pg_prepared_statements").fetchone()
            assert prepared == {"n": 0}


def _terminate_pool_backends(server_url: str, dbname: str) -> int:
    with psycopg.connect(server_url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (dbname,),
        ).fetchall()
    return len(rows)


def test_dead_connection_in_pool_is_recovered(db_url: str, server_url: str) -> None:
    with Database.connect(db_url, min_size=1, max_size=1) as db:
        graph = _graph().compile(checkpointer=db.checkpointer)
        config = {"configurable": {"thread_id": "survivor"}}
        graph.invoke({"messages": [("human", "one")]}, config)
        with db.pool.connection() as conn:
            dbname = conn.info.dbname
            before = conn.info.backend_pid
        assert _terminate_pool_backends(server_url, dbname) >= 1
        graph.invoke({"messages": [("human", "two")]}, config)
        assert len(graph.get_state(config).values["messages"]) == 4
        with db.pool.connection() as conn:
            assert conn.info.backend_pid != before


async def test_dead_connection_in_async_pool_is_recovered(db_url: str, server_url: str) -> None:
    async with AsyncDatabase.connect(db_url, min_size=1, max_size=1) as adb:
        graph = _graph().compile(checkpointer=adb.checkpointer)
        config = {"configurable": {"thread_id": "survivor"}}
        await graph.ainvoke({"messages": [("human", "one")]}, config)
        async with adb.pool.connection() as conn:
            dbname = conn.info.dbname
        assert _terminate_pool_backends(server_url, dbname) >= 1
        await graph.ainvoke({"messages": [("human", "two")]}, config)
        state = await graph.aget_state(config)
        assert len(state.values["messages"]) == 4
