"""Sans-IO database operations: logic written once, run by a sync or an async driver.

An operation is a generator that yields :class:`Query` objects and receives each query's
rows back, then returns its result::

    def get_session(session_id: UUID) -> Op[Session]:
        rows = yield Query(GET_SESSION, (session_id,))
        if not rows:
            raise NotFound(f"no session {session_id}")
        return Session.model_validate(rows[0])

``run(conn_or_pool, op)`` and ``await arun(conn_or_pool, op)`` drive it inside one
transaction, so a multi-statement operation is all-or-nothing. This is the same shape as
langgraph-checkpoint-postgres's ``_Statements`` (used by its ``prune``), so the sync and
async classes stay one-line wrappers and nothing but the ``await`` is written twice.

When a tenant is in effect (see :mod:`.tenancy`), the runners start the transaction with
``set_config('pgstore.tenant', ..., true)``; with none, they send nothing more.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

import psycopg
from psycopg import AsyncConnection, Connection, sql
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from . import tenancy
from .errors import (
    DatabaseUnavailable,
    InvalidInput,
    MigrationError,
    PermissionDenied,
    PgStoreError,
)

__all__ = [
    "AConn",
    "Conn",
    "Op",
    "Query",
    "aconnection",
    "arun",
    "connection",
    "run",
    "translate_error",
]

T = TypeVar("T")
Params: TypeAlias = Sequence[Any] | Mapping[str, Any] | None
Conn: TypeAlias = Connection[DictRow] | ConnectionPool[Connection[DictRow]]
AConn: TypeAlias = AsyncConnection[DictRow] | AsyncConnectionPool[AsyncConnection[DictRow]]


@dataclass(frozen=True, slots=True)
class Query:
    """One statement. ``many`` runs ``executemany`` over parameter rows (returns no rows)."""

    sql: str | sql.SQL | sql.Composed
    params: Params = None
    many: Sequence[Sequence[Any] | Mapping[str, Any]] | None = None


Op: TypeAlias = Generator[Query, list[DictRow], T]


def translate_error(exc: BaseException) -> PgStoreError | None:
    """Map a driver error onto our hierarchy (None when it isn't one we translate)."""
    if isinstance(exc, PgStoreError):
        return exc
    if isinstance(exc, PoolTimeout | psycopg.OperationalError):
        return DatabaseUnavailable(f"database unavailable: {exc}")
    if isinstance(exc, psycopg.errors.UndefinedTable):
        return MigrationError(
            f"{exc.diag.message_primary}: the schema is not migrated; run "
            "`langgraph-pgstore migrate` (or `db.migrate()`)"
        )
    if isinstance(exc, psycopg.DataError | UnicodeEncodeError):
        return InvalidInput(f"rejected by the database: {exc}")
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return PermissionDenied(
            f"{exc.diag.message_primary or exc} (row-level security: the row belongs to "
            "another tenant, or the connection acts for none; see README, Tenants)"
        )
    if isinstance(exc, psycopg.errors.IntegrityError):
        return InvalidInput(f"constraint violated: {exc.diag.message_primary or exc}")
    return None


def _reraise(exc: BaseException) -> None:
    mapped = translate_error(exc)
    if mapped is not None and mapped is not exc:
        raise mapped from exc


@contextmanager
def connection(conn: Conn, timeout: float | None = None) -> Iterator[Connection[DictRow]]:
    """Borrow a connection from a pool (waiting ``timeout`` s at most, else the pool's), or use
    the given one; errors translated."""
    try:
        if isinstance(conn, ConnectionPool):
            with conn.connection(timeout) as c:
                yield c
        else:
            yield conn
    except Exception as exc:
        _reraise(exc)
        raise


@asynccontextmanager
async def aconnection(
    conn: AConn, timeout: float | None = None
) -> AsyncIterator[AsyncConnection[DictRow]]:
    """Async twin of :func:`connection`."""
    try:
        if isinstance(conn, AsyncConnectionPool):
            async with conn.connection(timeout) as c:
                yield c
        else:
            yield conn
    except Exception as exc:
        _reraise(exc)
        raise


def _step(op: Op[T], rows: list[DictRow] | None) -> tuple[Query | None, T | None]:
    try:
        return (next(op) if rows is None else op.send(rows)), None
    except StopIteration as stop:
        return None, stop.value


def _tenant(conn: Conn | AConn, transaction: bool) -> str | None:
    """The tenant to set: none when a caller's connection runs in the caller's transaction."""
    if not transaction and not isinstance(conn, ConnectionPool | AsyncConnectionPool):
        return None
    return tenancy.tenant_for(conn)


def run(conn: Conn, op: Op[T], *, transaction: bool = True, timeout: float | None = None) -> T:
    """Drive ``op`` on a sync connection or pool, in one transaction by default.

    ``transaction=False`` runs in the caller's transaction (a connection) or in autocommit (a
    pool; with a tenant in effect, still one transaction: the setting lives only there).
    """
    tenant = _tenant(conn, transaction)
    with connection(conn, timeout) as c:
        tx = c.transaction() if transaction or tenant is not None else _null()
        with tx, c.cursor(row_factory=dict_row) as cur:
            if tenant is not None:
                cur.execute(tenancy.SET_TENANT_SQL, (tenant,))
            query, result = _step(op, None)
            while query is not None:
                if query.many is not None:
                    cur.executemany(query.sql, query.many)
                    rows: list[DictRow] = []
                else:
                    cur.execute(query.sql, query.params)
                    rows = cur.fetchall() if cur.description else []
                query, result = _step(op, rows)
        return result  # type: ignore[return-value]


async def arun(
    conn: AConn, op: Op[T], *, transaction: bool = True, timeout: float | None = None
) -> T:
    """Drive ``op`` on an async connection or pool, in one transaction by default."""
    tenant = _tenant(conn, transaction)
    async with aconnection(conn, timeout) as c:
        tx = c.transaction() if transaction or tenant is not None else _anull()
        async with tx, c.cursor(row_factory=dict_row) as cur:
            if tenant is not None:
                await cur.execute(tenancy.SET_TENANT_SQL, (tenant,))
            query, result = _step(op, None)
            while query is not None:
                if query.many is not None:
                    await cur.executemany(query.sql, query.many)
                    rows: list[DictRow] = []
                else:
                    await cur.execute(query.sql, query.params)
                    rows = await cur.fetchall() if cur.description else []
                query, result = _step(op, rows)
        return result  # type: ignore[return-value]


@contextmanager
def _null() -> Iterator[None]:
    yield


@asynccontextmanager
async def _anull() -> AsyncIterator[None]:
    yield
