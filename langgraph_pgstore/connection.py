"""The edge: the one place that turns settings into connections.

Every part that talks to PostgreSQL asks an :class:`Endpoint`: the shared pools
(``Database``/``AsyncDatabase``), migrations (a plain connection for langgraph's setup and a
SQLAlchemy engine for Alembic) and the telemetry writer's own connection. So the URL is
resolved once (starting the embedded server when none is configured), and every connection
gets the same keyword arguments (autocommit, ``prepare_threshold``, connect timeout, schema).

This module imports nothing else of the package but settings, errors and the embedded
server, so any module may import it without a cycle.
"""

from __future__ import annotations

import asyncio
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar
from weakref import WeakKeyDictionary

import psycopg
from psycopg.pq import ConnStatus
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from .config import Settings, redact_dsn
from .embedded import EmbeddedServer
from .errors import DatabaseUnavailable

__all__ = ["Endpoint"]

POOL_NAME = "langgraph-pgstore"

P = TypeVar("P", bound=ConnectionPool[Any] | AsyncConnectionPool[Any])


@dataclass(frozen=True)
class Endpoint:
    """A resolved database: settings, the real URL, and the embedded server if we started one."""

    settings: Settings
    url: str
    server: EmbeddedServer | None = None

    @classmethod
    def resolve(cls, settings: Settings | None = None) -> Endpoint:
        """The configured URL, or the embedded server's (started on demand)."""
        settings = settings or Settings.resolve()
        if settings.url:
            return cls(settings, settings.url)
        server = EmbeddedServer.start(settings.data_dir)
        return cls(settings, server.url, server)

    @classmethod
    def of(cls, url: str | None = None, settings: Settings | None = None) -> Endpoint:
        """From an explicit URL (else the settings', else the environment or embedded)."""
        if settings is None:
            settings = Settings.resolve(url)
        elif url is not None and settings.url != url:
            settings = settings.with_url(url)
        return cls.resolve(settings)

    @property
    def redacted(self) -> str:
        return redact_dsn(self.url)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.redacted})"

    def unavailable(self, exc: BaseException) -> DatabaseUnavailable:
        return DatabaseUnavailable(f"can't connect to {self.redacted}: {exc}")

    # --- connections -----------------------------------------------------------------------
    def connect_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """What every connection we open is given (``overrides`` win)."""
        return {**self.settings.connect_kwargs(), "row_factory": dict_row, **overrides}

    def connect(self, **overrides: Any) -> psycopg.Connection[DictRow]:
        """One connection of our own (autocommit, dict rows); errors as ``DatabaseUnavailable``."""
        try:
            return psycopg.connect(self.url, **self.connect_kwargs(**overrides))
        except psycopg.OperationalError as exc:
            raise self.unavailable(exc) from exc

    def engine(self) -> Engine:
        """A SQLAlchemy engine for Alembic over the same connections (transactional)."""

        def creator() -> psycopg.Connection[Any]:
            return psycopg.connect(
                self.url, **{**self.settings.connect_kwargs(), "autocommit": False}
            )

        return create_engine("postgresql+psycopg://", creator=creator, poolclass=NullPool)

    def _pool(self, factory: Callable[..., P], check: _Recent[P]) -> P:
        """A pool of ``factory``'s kind from the settings (not opened yet), checked by
        ``check`` when the settings ask for it."""
        s = self.settings
        checked = {"check": check} if s.check_connection else {}
        pool = factory(
            self.url,
            **checked,
            kwargs=self.connect_kwargs(),
            min_size=s.min_size,
            max_size=s.max_size,
            timeout=s.timeout,
            max_idle=s.max_idle,
            max_lifetime=s.max_lifetime,
            name=POOL_NAME,
            open=False,
        )
        check.pool = pool
        return pool

    def pool(self) -> ConnectionPool[psycopg.Connection[DictRow]]:
        """The shared sync pool (not opened yet)."""
        return self._pool(ConnectionPool, _PurgingCheck())

    def apool(self) -> AsyncConnectionPool[psycopg.AsyncConnection[DictRow]]:
        """The shared async pool (not opened yet)."""
        return self._pool(AsyncConnectionPool, _APurgingCheck())


#: A connection handed out less than this many seconds ago skips the check's round trip
#: when its socket is quiet (see :meth:`_Recent.fine`).
RECENT_S = 5.0


class _Recent(Generic[P]):
    """When each connection was last handed out (and so worked, moments later), and the
    pool whose connections these are (set once the pool exists)."""

    pool: P | None = None

    def __init__(self) -> None:
        self._at: WeakKeyDictionary[Any, float] = WeakKeyDictionary()

    def fine(self, conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
        """Whether ``conn`` was handed out moments ago and nothing has arrived on it since
        (and note that it is handed out now).

        A checkout is then handed out without the check's round trip (a round trip per
        checkout is what the checkpointer's writes spent most on): a backend that was
        terminated, or a server that died or restarted, sends an error or closes the
        socket, which makes it readable, and a zero-timeout poll sees that. Anything
        readable, or an older checkout, gets the full check. (Stamped at checkout, not
        return: the pool's ``reset`` callback would send every return through a worker.)
        """
        now = time.monotonic()
        at, self._at[conn] = self._at.get(conn), now
        if at is None or now - at > RECENT_S or conn.pgconn.status != ConnStatus.OK:
            return False
        try:
            readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable


class _PurgingCheck(_Recent[ConnectionPool[Any]]):
    """Connection check that, on a dead connection, purges every idle sibling at once.

    psycopg_pool backs off (about 1 s, 2 s, 4 s) after each failed check, so after a server
    restart or ``pg_terminate_backend`` of every backend a request checked the stale
    connections one by one and timed out, although fresh ones could be opened at once.
    """

    def __call__(self, conn: psycopg.Connection[Any]) -> None:
        if self.fine(conn):
            return
        try:
            ConnectionPool.check_connection(conn)
        except Exception:
            if self.pool is not None:
                threading.Thread(target=self.pool.check, daemon=True).start()
            raise


class _APurgingCheck(_Recent[AsyncConnectionPool[Any]]):
    """Async twin of :class:`_PurgingCheck`."""

    _tasks: ClassVar[set[asyncio.Task[None]]] = set()

    async def __call__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if self.fine(conn):
            return
        try:
            await AsyncConnectionPool.check_connection(conn)
        except Exception:
            if self.pool is not None:
                task = asyncio.get_running_loop().create_task(self.pool.check())
                self._tasks.add(task)  # keep a reference until it ends
                task.add_done_callback(self._tasks.discard)
            raise
