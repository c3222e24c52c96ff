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

import asyncio
import itertools
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

from psycopg import AsyncConnection, Connection, sql
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from . import tenancy
from .errors import PgStoreError, translate_error

__all__ = [
    "AConn",
    "Conn",
    "Op",
    "Query",
    "aconnection",
    "arun",
    "arun_idempotent",
    "connection",
    "retry_pause",
    "run",
    "run_idempotent",
    "translate_error",
    "translated",
]

log = logging.getLogger(__name__)

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


def _reraise(exc: BaseException) -> None:
    mapped = translate_error(exc)
    if mapped is not None and mapped is not exc:
        raise mapped from exc


@contextmanager
def translated() -> Iterator[None]:
    """Raise our error (``raise ... from``) for a driver error escaping the block."""
    try:
        yield
    except Exception as exc:
        _reraise(exc)
        raise


@contextmanager
def connection(conn: Conn, timeout: float | None = None) -> Iterator[Connection[DictRow]]:
    """Borrow a connection from a pool (waiting ``timeout`` s at most, else the pool's), or use
    the given one; errors translated."""
    with translated():
        if isinstance(conn, ConnectionPool):
            with conn.connection(timeout) as c:
                yield c
        else:
            yield conn


@asynccontextmanager
async def aconnection(
    conn: AConn, timeout: float | None = None
) -> AsyncIterator[AsyncConnection[DictRow]]:
    """Async twin of :func:`connection`."""
    with translated():
        if isinstance(conn, AsyncConnectionPool):
            async with conn.connection(timeout) as c:
                yield c
        else:
            yield conn


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


#: Pauses (seconds, before jitter) before each retry of an idempotent operation after a
#: transient error (lost connection, deadlock, serialization failure): bounded, never forever.
RETRY_DELAYS = (0.05, 0.25, 1.0)


def retry_pause(exc: PgStoreError, attempt: int) -> float | None:
    """Seconds to wait before retry number ``attempt``, or None when a retry can't help."""
    if not exc.transient or attempt > len(RETRY_DELAYS):
        return None
    log.info("retrying after a transient error (attempt %d): %s", attempt, exc)
    return RETRY_DELAYS[attempt - 1] * (0.5 + random.random())


def run_idempotent(conn: Conn, make_op: Callable[[], Op[T]], **kwargs: Any) -> T:
    """:func:`run` for an operation safe to repeat: transient errors are retried (bounded)."""
    for attempt in itertools.count(1):
        try:
            return run(conn, make_op(), **kwargs)
        except PgStoreError as exc:
            if (pause := retry_pause(exc, attempt)) is None:
                raise
            time.sleep(pause)
    raise AssertionError("unreachable")


async def arun_idempotent(conn: AConn, make_op: Callable[[], Op[T]], **kwargs: Any) -> T:
    """Async twin of :func:`run_idempotent`."""
    for attempt in itertools.count(1):
        try:
            return await arun(conn, make_op(), **kwargs)
        except PgStoreError as exc:
            if (pause := retry_pause(exc, attempt)) is None:
                raise
            await asyncio.sleep(pause)
    raise AssertionError("unreachable")
