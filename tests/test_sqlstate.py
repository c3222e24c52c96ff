"""Errors classified by SQLSTATE on a real server: which of ours, transient or not, and the
bounded retry of idempotent operations."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from langgraph_pgstore import (
    Conflict,
    Database,
    DatabaseUnavailable,
    InvalidInput,
    MigrationError,
    PermissionDenied,
)
from langgraph_pgstore._ops import RETRY_DELAYS, Op, Query, run, run_idempotent
from langgraph_pgstore.errors import SQLSTATES, is_transient, translate_error


def _raised(url: str, sql: str, params: Any = None) -> psycopg.Error:
    with psycopg.connect(url, autocommit=True) as conn, pytest.raises(psycopg.Error) as info:
        conn.execute(sql, params)
    return info.value


@pytest.mark.parametrize(("code", "expected"), sorted(SQLSTATES.items()))
def test_every_row_of_the_table(db_url: str, code: str, expected: tuple[type, bool]) -> None:
    """RAISE with the code (a class gets a member: 08 -> 08006, 22 -> 22000, ...)."""
    full = code if len(code) == 5 else code + ("006" if code == "08" else "000")
    exc = _raised(db_url, f"DO $$ BEGIN RAISE EXCEPTION 'boom' USING ERRCODE = '{full}'; END $$")
    mapped = translate_error(exc)
    cls, transient = expected
    assert type(mapped) is cls
    assert mapped.transient is transient and mapped.sqlstate == full
    assert "boom" in str(mapped)


def test_real_failures(db_url: str) -> None:
    """What users hit: a value too big for a btree index (54000, an OperationalError that
    used to be taken for a lost connection), stack depth, duplicates, missing tables."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (k text PRIMARY KEY, v int NOT NULL)")
        conn.execute("CREATE FUNCTION deep(n int) RETURNS int LANGUAGE sql AS 'SELECT deep(n + 1)'")
    big = _raised(db_url, "INSERT INTO t SELECT string_agg(md5(random()::text), '') , 1 "
                  "FROM generate_series(1, 300)")  # fmt: skip
    assert isinstance(big, psycopg.OperationalError) and big.sqlstate == "54000"
    for exc, cls in [
        (big, InvalidInput),
        (_raised(db_url, "SELECT deep(1)"), InvalidInput),
        (_raised(db_url, "INSERT INTO t VALUES ('a', 1), ('a', 2)"), Conflict),
        (_raised(db_url, "INSERT INTO t VALUES ('b', NULL)"), InvalidInput),
        (_raised(db_url, "SELECT 'x'::int"), InvalidInput),
        (_raised(db_url, "SELECT * FROM no_such_table"), MigrationError),
    ]:
        mapped = translate_error(exc)
        assert isinstance(mapped, cls), (exc, mapped)
        assert not is_transient(exc)
        if cls is MigrationError:  # both likely causes, and what to do about each
            assert "no_such_table" in str(mapped) and "migrate" in str(mapped)
            assert "search_path" in str(mapped)


def test_deadlock_is_a_transient_conflict(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE d (id int PRIMARY KEY)")
        conn.execute("INSERT INTO d VALUES (1), (2)")
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def lock(first: int, second: int) -> None:
        with psycopg.connect(db_url) as conn:
            conn.execute("SET deadlock_timeout = '100ms'")
            try:
                conn.execute("SELECT 1 FROM d WHERE id = %s FOR UPDATE", (first,))
                barrier.wait(10)
                conn.execute("SELECT 1 FROM d WHERE id = %s FOR UPDATE", (second,))
            except psycopg.Error as exc:
                errors.append(exc)

    threads = [threading.Thread(target=lock, args=a) for a in ((1, 2), (2, 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(errors) == 1
    mapped = translate_error(errors[0])
    assert isinstance(mapped, Conflict) and mapped.transient and mapped.sqlstate == "40P01"


def test_terminated_backend_is_transient_unavailable(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as victim, psycopg.connect(db_url) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (victim.info.backend_pid,))
        with pytest.raises(psycopg.OperationalError) as info:
            victim.execute("SELECT 1")
    mapped = translate_error(info.value)
    assert isinstance(mapped, DatabaseUnavailable) and mapped.transient


def test_pool_timeout_is_not_retried(db_url: str) -> None:
    with (
        ConnectionPool(db_url, min_size=1, max_size=1, open=True) as pool,
        pool.connection(),
        pytest.raises(DatabaseUnavailable) as info,
    ):
        run(pool, _select_one(), timeout=0.2)
    assert not info.value.transient  # we already waited the pool's timeout


def test_rls_violation_is_permission_denied(db_url: str) -> None:
    role = "app_sqlstate"
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE secrets (v text)")
        conn.execute(f"DROP ROLE IF EXISTS {role}")
        conn.execute(f"CREATE ROLE {role}")
    try:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(f"SET ROLE {role}")
            with pytest.raises(psycopg.Error) as info:
                conn.execute("SELECT * FROM secrets")
        assert isinstance(translate_error(info.value), PermissionDenied)
    finally:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(f"DROP ROLE IF EXISTS {role}")


def _select_one() -> Op[int]:
    rows = yield Query("SELECT 1 AS one")
    return int(rows[0]["one"])


def _fail_until(code: str, succeed_on: int) -> Op[int]:
    """Fails with ``code`` until the ``succeed_on``-th attempt; a sequence counts attempts
    (nextval survives the rollback of the failed transaction)."""
    rows = yield Query("SELECT nextval('attempts') AS n")
    n = int(rows[0]["n"])
    if n < succeed_on:
        yield Query(f"DO $$ BEGIN RAISE EXCEPTION 'try' USING ERRCODE = '{code}'; END $$")
    return n


@pytest.fixture
def attempts_db(db: Database) -> Database:
    with db.pool.connection() as conn:
        conn.execute("CREATE SEQUENCE attempts")
    return db


def _attempts(db: Database) -> int:
    with db.pool.connection() as conn:
        row = conn.execute("SELECT last_value FROM attempts").fetchone()
    assert row is not None
    return int(row["last_value"])


def test_idempotent_ops_retry_transient_errors(attempts_db: Database) -> None:
    assert run_idempotent(attempts_db.pool, lambda: _fail_until("40P01", 3)) == 3


def test_retries_are_bounded(attempts_db: Database) -> None:
    with pytest.raises(Conflict):
        run_idempotent(attempts_db.pool, lambda: _fail_until("40001", 1000))
    assert _attempts(attempts_db) == 1 + len(RETRY_DELAYS)


def test_permanent_errors_are_never_retried(attempts_db: Database) -> None:
    with pytest.raises(InvalidInput):
        run_idempotent(attempts_db.pool, lambda: _fail_until("54000", 1000))
    assert _attempts(attempts_db) == 1


def test_http_status_of_each_error() -> None:
    from langgraph_pgstore.api.app import http_error
    from langgraph_pgstore.errors import NotFound, SerializationError

    cases = {NotFound: 404, SerializationError: 422, PermissionDenied: 403, Conflict: 409,
             DatabaseUnavailable: 503, MigrationError: 503}  # fmt: skip
    for cls, status in cases.items():
        assert http_error(cls("x")).status_code == status
