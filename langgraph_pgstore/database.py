"""The entry point: open the database once, hand out the parts (sync ``Database``, async
``AsyncDatabase``), all drawing from one connection pool.

    with Database.connect() as db:                      # embedded server, or DATABASE_URL
        graph = builder.compile(checkpointer=db.checkpointer)
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import cached_property
from typing import Any, Generic, Self, TypeVar, Unpack

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from . import ownership, tenancy
from ._ops import aconnection, arun, connection, run
from .checkpoint import AsyncPgCheckpointer, PgCheckpointer
from .config import PoolOptions, Settings
from .connection import Endpoint
from .conversations import AsyncConversations, Conversations, MessageRecorder
from .errors import DatabaseUnavailable
from .health import HealthReport, is_current, probe
from .memory import AsyncPgMemoryStore, PgMemoryStore, StoreOptions
from .migrate import migrate as _migrate
from .telemetry import AsyncTelemetry, Telemetry

__all__ = ["AsyncDatabase", "Database"]

log = logging.getLogger(__name__)

#: Seconds a health check waits for a connection: a probe must answer fast when the server is down.
HEALTH_TIMEOUT = 5.0

Pool = TypeVar("Pool", bound=ConnectionPool[Any] | AsyncConnectionPool[Any])
Tel = TypeVar("Tel")
Saver = TypeVar("Saver")
Conv = TypeVar("Conv")
Store = TypeVar("Store", bound=PgMemoryStore | AsyncPgMemoryStore)


class _Common(Generic[Pool, Tel, Saver, Conv, Store]):
    """What the sync and async hubs share: the endpoint (settings, URL, embedded server),
    the tenant scopes, and the parts, built alike on the pool from each hub's family."""

    _telemetry: Callable[..., Tel]
    _checkpointer: Callable[..., Saver]
    _conversations: Callable[..., Conv]
    _store: Callable[..., Store]

    def __init__(self, pool: Pool, endpoint: Endpoint) -> None:
        self.pool = pool
        self.endpoint = endpoint
        #: The endpoint's, at hand: the real URL (the embedded server's when none is
        #: configured), the settings, and the embedded server if one was started.
        self.url, self.settings, self.server = endpoint.url, endpoint.settings, endpoint.server
        #: Memory stores handed out (closed with the hub, reported by ``health()``).
        self._stores: weakref.WeakSet[Any] = weakref.WeakSet()

    def _bind(self, role: dict[str, Any]) -> None:
        """Remember the pool's role and default tenant (what every transaction consults);
        refuse a default tenant on a role that bypasses row-level security."""
        bound = tenancy.Binding(self.settings.tenant, role["role"], bool(role["bypass"]))
        tenancy.bind(self.pool, bound)
        if bound.default is not None:
            tenancy.tenant_scope(bound.default, bound)  # raises PermissionDenied if bypass

    @property
    def role(self) -> str | None:
        """The database role the pool connects as."""
        bound = tenancy.binding(self.pool)
        return bound.role if bound is not None else None

    @property
    def bypasses_rls(self) -> bool:
        """The role sees every row (superuser, BYPASSRLS, owner of the tables): the admin path."""
        bound = tenancy.binding(self.pool)
        return bound is not None and bound.bypass

    def tenant(self, tenant: str) -> tenancy.Scope:
        """``with db.tenant("alice"):`` (or ``async with``): every transaction of the block
        acts for ``alice``, whatever the default. For a host, per request, after its own
        authentication; never from graph metadata. Refused on a role that bypasses RLS."""
        return tenancy.tenant_scope(tenant, tenancy.binding(self.pool))

    def on_behalf_of(self, user: str) -> tenancy.Scope:
        """``with db.on_behalf_of("alice"):``: rows written in the block that have no other
        owner (no tenant, outside a graph run) belong to ``alice``. Attribution only."""
        return tenancy.on_behalf_of_scope(user)

    @property
    def redacted_url(self) -> str:
        return self.endpoint.redacted

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.redacted_url})"

    @classmethod
    def _unopened(
        cls, url: str | None, options: PoolOptions, new_pool: Callable[[Endpoint], Pool]
    ) -> Self:
        """A hub on the resolved endpoint (the embedded server started if needed) and a
        ``new_pool`` from it, not opened yet."""
        endpoint = Endpoint.resolve(Settings.resolve(url, **options))
        return cls(new_pool(endpoint), endpoint)

    @cached_property
    def telemetry(self) -> Tel:
        """Run/step/LLM-call recording (``instrument(graph)``) and its query API (``a*``
        methods on the async hub)."""
        return self._telemetry(self.pool, self.url, self.settings)

    @cached_property
    def checkpointer(self) -> Saver:
        """The ``checkpointer=`` for ``builder.compile`` (async hub: ``ainvoke``/``astream``)."""
        return self._checkpointer(self.pool, recorder=self.recorder)

    @cached_property
    def conversations(self) -> Conv:
        """Users, sessions, messages, chain analyses (filled by the checkpointer)."""
        return self._conversations(self.pool, recorder=self.recorder)

    @cached_property
    def store(self) -> Store:
        """A ``store=`` for ``builder.compile`` without semantic index (see :meth:`memory`)."""
        return self.memory()

    def memory(self, **options: Unpack[StoreOptions]) -> Store:
        """A memory store on this pool with options (``index=``, ``ttl=``, ``dedup=``, ...)."""
        store = self._store(self.pool, **options)
        self._stores.add(store)
        return store

    def _pool_stats(self, pool: ConnectionPool[Any] | AsyncConnectionPool[Any]) -> dict[str, int]:
        stats = pool.get_stats()
        keys = (
            "pool_min",
            "pool_max",
            "pool_size",
            "pool_available",
            "requests_waiting",
            "requests_num",
            "requests_errors",
            "connections_lost",
            "connections_errors",
        )
        return {k: int(stats.get(k, 0)) for k in keys}

    def _report_background(self, report: HealthReport) -> None:
        """Liveness of the background jobs this hub started (only those it started)."""
        parts = self.__dict__  # cached_property values: only the parts in use
        if "conversations" in parts:
            report.add_background(
                "conversations embedder", parts["conversations"].embedder_status()
            )
        if "telemetry" in parts:
            report.add_background("telemetry writer", parts["telemetry"].status())
        for i, store in enumerate(self._stores):
            for job, status in store.background_status().items():
                report.add_background(f"memory store {i}: {job.replace('_', ' ')}", status)

    @cached_property
    def recorder(self) -> MessageRecorder:
        """Mirrors graph messages into sessions/messages (on by default).

        ``db.mirror_messages = False`` turns it off for checkpointers of this hub.
        """
        return MessageRecorder()

    @property
    def mirror_messages(self) -> bool:
        return self.recorder.enabled

    @mirror_messages.setter
    def mirror_messages(self, on: bool) -> None:
        self.recorder.enabled = bool(on)


class Database(
    _Common[
        ConnectionPool[psycopg.Connection[Any]],
        Telemetry,
        PgCheckpointer,
        Conversations,
        PgMemoryStore,
    ]
):
    """Sync hub: ``checkpointer`` and the other parts, one ``ConnectionPool``."""

    _telemetry = Telemetry
    _checkpointer = PgCheckpointer
    _conversations = Conversations
    _store = PgMemoryStore

    @classmethod
    def open(
        cls, url: str | None = None, *, migrate: bool = True, **options: Unpack[PoolOptions]
    ) -> Database:
        """Open the pool (and the embedded server when no URL is configured)."""
        db = cls._unopened(url, options, Endpoint.pool)
        try:
            db.pool.open(wait=True, timeout=db.settings.connect_timeout)
            if migrate:
                db.migrate(only_if_needed=True)
            db._bind(run(db.pool, tenancy.role_op()))
        except PoolTimeout as exc:
            db.pool.close()
            raise db.endpoint.unavailable(exc) from exc
        except BaseException:
            db.pool.close()
            raise
        return db

    @classmethod
    @contextmanager
    def connect(
        cls, url: str | None = None, *, migrate: bool = True, **options: Unpack[PoolOptions]
    ) -> Iterator[Database]:
        """``with Database.connect() as db:`` opens, migrates if needed, and closes."""
        db = cls.open(url, migrate=migrate, **options)
        try:
            yield db
        finally:
            db.close()

    from_conn_string = connect

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection inside one transaction that acts for the tenant in effect:
        for the host's own SQL over our tables (row-level security applies as to ours)."""
        tenant = tenancy.tenant_for(self.pool)
        with connection(self.pool) as conn, conn.transaction():
            if tenant is not None:
                conn.execute(tenancy.SET_TENANT_SQL, (tenant,))
            yield conn

    def close(self) -> None:
        if "telemetry" in self.__dict__:
            self.telemetry.close()
        for store in list(self._stores):
            store.close()  # its pending access notes, before the pool goes
        self.pool.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def migrate(self, *, only_if_needed: bool = False) -> str:
        """Bring the checkpoint tables and ours to head; returns the revision."""
        if only_if_needed:
            report = run(self.pool, probe(self.redacted_url))
            if is_current(report):
                return report.head
        revision = _migrate(endpoint=self.endpoint)
        if tenancy.binding(self.pool) is not None:  # the role may now own the tables
            self._bind(run(self.pool, tenancy.role_op()))
        return revision

    def tenancy_state(self) -> tenancy.TenancyState:
        """``on`` (row-level security enforces owners), ``off``, ``partial`` or ``absent``."""
        return run(self.pool, tenancy.status_op())

    def set_tenancy(self, on: bool) -> tenancy.TenancyState:
        """Switch row-level security on or off for every owned table (the tables' owner
        only); returns the new state."""
        return run(self.pool, tenancy.switch_op(on))

    def purge_user(self, external_id: str) -> dict[str, int]:
        """Delete everything the user owns, everywhere; rows deleted per table (admin path)."""
        return self.conversations.purge_user(external_id)

    def export_user(self, external_id: str) -> dict[str, Any]:
        """Everything held about the user as JSON-ready data, checkpoint blobs decoded with
        the checkpointer's serializer (the right of access; admin path)."""
        return run(self.pool, ownership.export_user(external_id, self.checkpointer.serde))

    def health(self) -> HealthReport:
        """Never raises for an unreachable server: the report says so (``ok=False``)."""
        try:
            report = run(self.pool, probe(self.redacted_url), timeout=HEALTH_TIMEOUT)
        except DatabaseUnavailable as exc:
            report = HealthReport(ok=False, url=self.redacted_url, problems=[str(exc)])
        report.pool = self._pool_stats(self.pool)
        self._report_background(report)
        return report


class AsyncDatabase(
    _Common[
        AsyncConnectionPool[psycopg.AsyncConnection[Any]],
        AsyncTelemetry,
        AsyncPgCheckpointer,
        AsyncConversations,
        AsyncPgMemoryStore,
    ]
):
    """Async hub: ``checkpointer`` and the other parts, one ``AsyncConnectionPool``."""

    _telemetry = AsyncTelemetry
    _checkpointer = AsyncPgCheckpointer
    _conversations = AsyncConversations
    _store = AsyncPgMemoryStore

    @classmethod
    async def open(
        cls, url: str | None = None, *, migrate: bool = True, **options: Unpack[PoolOptions]
    ) -> AsyncDatabase:
        """Open the pool (and the embedded server when no URL is configured)."""
        db = cls._unopened(url, options, Endpoint.apool)
        try:
            await db.pool.open(wait=True, timeout=db.settings.connect_timeout)
            if migrate:
                await db.amigrate(only_if_needed=True)
            db._bind(await arun(db.pool, tenancy.role_op()))
        except PoolTimeout as exc:
            await db.pool.close()
            raise db.endpoint.unavailable(exc) from exc
        except BaseException:
            await db.pool.close()
            raise
        return db

    @classmethod
    @asynccontextmanager
    async def connect(
        cls, url: str | None = None, *, migrate: bool = True, **options: Unpack[PoolOptions]
    ) -> AsyncIterator[AsyncDatabase]:
        """``async with AsyncDatabase.connect() as db:`` opens, migrates if needed, closes."""
        db = await cls.open(url, migrate=migrate, **options)
        try:
            yield db
        finally:
            await db.aclose()

    from_conn_string = connect

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """Async twin of :meth:`Database.transaction`."""
        tenant = tenancy.tenant_for(self.pool)
        async with aconnection(self.pool) as conn, conn.transaction():
            if tenant is not None:
                await conn.execute(tenancy.SET_TENANT_SQL, (tenant,))
            yield conn

    async def aclose(self) -> None:
        if "telemetry" in self.__dict__:
            await asyncio.to_thread(self.telemetry.close)
        for store in list(self._stores):
            await store.aclose()  # its pending access notes, before the pool goes
        await self.pool.close()

    async def __aenter__(self) -> AsyncDatabase:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def amigrate(self, *, only_if_needed: bool = False) -> str:
        """Bring the checkpoint tables and ours to head; returns the revision."""
        if only_if_needed:
            report = await arun(self.pool, probe(self.redacted_url))
            if is_current(report):
                return report.head
        revision = await asyncio.to_thread(lambda: _migrate(endpoint=self.endpoint))
        if tenancy.binding(self.pool) is not None:
            self._bind(await arun(self.pool, tenancy.role_op()))
        return revision

    async def atenancy_state(self) -> tenancy.TenancyState:
        return await arun(self.pool, tenancy.status_op())

    async def aset_tenancy(self, on: bool) -> tenancy.TenancyState:
        return await arun(self.pool, tenancy.switch_op(on))

    async def apurge_user(self, external_id: str) -> dict[str, int]:
        return await self.conversations.apurge_user(external_id)

    async def aexport_user(self, external_id: str) -> dict[str, Any]:
        return await arun(self.pool, ownership.export_user(external_id, self.checkpointer.serde))

    async def ahealth(self) -> HealthReport:
        """Never raises for an unreachable server: the report says so (``ok=False``)."""
        try:
            report = await arun(self.pool, probe(self.redacted_url), timeout=HEALTH_TIMEOUT)
        except DatabaseUnavailable as exc:
            report = HealthReport(ok=False, url=self.redacted_url, problems=[str(exc)])
        report.pool = self._pool_stats(self.pool)
        self._report_background(report)
        return report
