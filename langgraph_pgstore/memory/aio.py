"""AsyncPgMemoryStore: the asyncio twin of PgMemoryStore (same core, async driver).

Concurrent calls are batched as LangGraph's ``AsyncBatchedBaseStore`` does: ``aget``,
``asearch``, ``aput``, ``adelete`` and ``alist_namespaces`` queue their op and one task runs
everything queued so far as one batch (one connection, one embedder call), so thousands of
concurrent reads don't each wait for a pool connection. Unlike upstream, each op is
validated when queued, so a bad argument fails its own caller only.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, Unpack, cast

from langgraph.store.base import GetOp, Op, PutOp, Result

from .. import tenancy
from .._ops import AConn, arun
from ..errors import ConfigurationError, InvalidInput
from .background import IDLE_EXIT, aattempt, access_flush_op
from .base import ListArgs, MemoryStoreBase, PutArgs, SearchArgs
from .config import StoreOptions
from .core import SWEEP_CHUNK
from .items import MemoryItem, MemorySearchItem, Page, PutResult
from .ops import NS, IndexArg, PgPutOp, Value, delete_op, get_op

__all__ = ["AsyncPgMemoryStore"]

T = TypeVar("T")
#: Most ops run in one transaction; more queued ops wait for the next batch.
MAX_BATCH = 1000


class AsyncPgMemoryStore(MemoryStoreBase):
    """Long-term memory for async graphs: ``builder.compile(store=adb.memory(index=...))``.

    Sync methods (``get``, ``put``, ...) work from other threads (a sync node of an async
    graph) and run on the store's event loop; on that loop itself they raise
    ``asyncio.InvalidStateError``, as LangGraph's async stores do.
    """

    def __init__(self, conn: AConn, **options: Unpack[StoreOptions]) -> None:
        super().__init__(**options)
        self.conn = conn
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None  # bound on first use
        self._setup_lock = asyncio.Lock()
        self._flushing = asyncio.Lock()
        self._queue: list[_Queued] = []
        self._consumer: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._sweeper: asyncio.Task[None] | None = None
        self._sweep_stop = asyncio.Event()
        self._closed = False
        self.core.access.wake = self._wake_writer

    async def asetup(self) -> None:
        """Detect extensions and create this store's indexes (idempotent; done on first use)."""
        self._bind()
        async with self._setup_lock:
            if self.core.has_vector is None:
                await arun(self.conn, self.core.setup_op())

    def _bind(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is None or self._loop.is_closed():
            self._loop = loop
        return loop

    # ---- the batch ---------------------------------------------------------------------

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        return self._public(await self._abatch(ops))

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        return self._sync("batch", lambda: self.abatch(ops))

    async def _abatch(self, ops: Iterable[Op]) -> list[Any]:
        if self.core.has_vector is None or self._loop is None:
            await self.asetup()
        plan = self._plan(ops)
        emb = self.cfg.embeddings
        docs = await emb.aembed_documents(plan.docs) if emb and plan.docs else []
        queries = await asyncio.gather(*(emb.aembed_query(t) for t in plan.queries)) if emb else []
        op = self.core.batch_op(plan, *self.core.vectors(plan, docs, list(queries)))
        return await arun(self.conn, op, transaction=plan.transaction)

    def _submit(self, op: Op) -> asyncio.Future[Any]:
        """Queue ``op`` for the next batch. What depends on the caller is settled now, in the
        caller's context: validation (a bad op fails this caller only), the tenant the call
        acts for, and the owner of what it writes."""
        loop = self._bind()
        self.core.check(op)
        tenant = tenancy.tenant_for(self.conn)
        if isinstance(op, PutOp):
            owned = PgPutOp(*op)
            owned.owner = self._owner([op])
            op = owned
        fut: asyncio.Future[Any] = loop.create_future()
        self._queue.append(_Queued(fut, op, tenant, contextvars.copy_context()))
        if self._consumer is None:
            self._consumer = loop.create_task(self._consume())
        return fut

    async def _consume(self) -> None:
        """Run what is queued as batches until the queue is empty, one batch per tenant,
        each in the context of a caller acting for that tenant."""
        try:
            while self._queue:
                items, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                groups: dict[str | None, list[_Queued]] = {}
                for item in items:
                    if not item.future.done():
                        groups.setdefault(item.tenant, []).append(item)
                for group in groups.values():
                    await asyncio.create_task(self._run_batch(group), context=group[0].context)
        finally:
            self._consumer = None

    async def _run_batch(self, items: list[_Queued]) -> None:
        if not items:
            return
        futures = [item.future for item in items]
        ops, listen = _dedupe([item.op for item in items])
        try:
            results = await self._abatch(ops)
        except InvalidInput as exc:
            if len(items) == 1:
                _fail(futures, exc)
                return
            for item in items:  # one op's data was refused: run each alone to find it
                await self._run_batch([item])
            return
        except Exception as exc:
            _fail(futures, exc)
            return
        except BaseException:  # cancelled: so are the callers, never left waiting
            for fut in futures:
                fut.cancel()
            raise
        for fut, i in zip(futures, listen, strict=True):
            if not fut.done():
                fut.set_result(results[i])

    # ---- BaseStore's methods, with our extras -----------------------------------------

    async def aget(
        self, namespace: tuple[str, ...], key: str, *, refresh_ttl: bool | None = None
    ) -> MemoryItem | None:
        op = get_op(namespace, key, self.cfg.refresh_default(refresh_ttl))
        return cast(MemoryItem | None, await self._submit(op))

    async def asearch(  # type: ignore[override]  # returns a list of a subclass
        self, namespace_prefix: tuple[str, ...], /, **kwargs: Unpack[SearchArgs]
    ) -> Page[MemorySearchItem]:
        """LangGraph's ``asearch`` plus ``mode``, ``min_score``, ``cursor`` and ``vector``;
        the result is a list with ``next_cursor``."""
        return cast(
            Page[MemorySearchItem], await self._submit(self._search(namespace_prefix, kwargs))
        )

    async def aput(  # type: ignore[override]  # returns what happened instead of None
        self, namespace: NS, key: str, value: Value, index: IndexArg = None, **kw: Unpack[PutArgs]
    ) -> PutResult:
        """LangGraph's ``aput``; returns a :class:`PutResult`."""
        return cast(
            PutResult,
            await self._submit(self._put(namespace, key, value, index, kw)),
        )

    async def adelete(self, namespace: tuple[str, ...], key: str) -> None:
        await self._submit(delete_op(namespace, key))

    async def alist_namespaces(self, **kwargs: Unpack[ListArgs]) -> Page[tuple[str, ...]]:
        """LangGraph's ``alist_namespaces`` plus ``cursor``; a list with ``next_cursor``."""
        return cast(Page[tuple[str, ...]], await self._submit(self._list(kwargs)))

    # The sync API, for other threads (run on the store's loop).

    def get(
        self, namespace: tuple[str, ...], key: str, *, refresh_ttl: bool | None = None
    ) -> MemoryItem | None:
        return self._sync("get", lambda: self.aget(namespace, key, refresh_ttl=refresh_ttl))

    def search(  # type: ignore[override]  # returns a list of a subclass
        self, namespace_prefix: tuple[str, ...], /, **kwargs: Unpack[SearchArgs]
    ) -> Page[MemorySearchItem]:
        return self._sync("search", lambda: self.asearch(namespace_prefix, **kwargs))

    def put(  # type: ignore[override]
        self, namespace: NS, key: str, value: Value, index: IndexArg = None, **kw: Unpack[PutArgs]
    ) -> PutResult:
        return self._sync("put", lambda: self.aput(namespace, key, value, index, **kw))

    def delete(self, namespace: tuple[str, ...], key: str) -> None:
        self._sync("delete", lambda: self.adelete(namespace, key))

    def list_namespaces(self, **kwargs: Unpack[ListArgs]) -> Page[tuple[str, ...]]:
        return self._sync("list_namespaces", lambda: self.alist_namespaces(**kwargs))

    def _sync(self, method: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run ``call()`` on the store's loop from another thread and wait for it."""
        loop = self._loop
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None and running is loop:
            raise asyncio.InvalidStateError(
                f"Synchronous calls to {type(self).__name__} detected in the main event loop. "
                "This can lead to deadlocks or performance issues. Please use the asynchronous "
                f"interface for main thread operations. Specifically, replace "
                f"`store.{method}(...)` with `await store.a{method}(...)`"
            )
        if loop is None or loop.is_closed():
            raise ConfigurationError(
                f"{type(self).__name__}.{method} runs on the store's event loop: create the "
                "store inside it (or await one of its methods first)"
            )

        async def wrapped() -> T:
            return await call()

        return asyncio.run_coroutine_threadsafe(wrapped(), loop).result()

    # ---- maintenance -------------------------------------------------------------------

    async def asweep_ttl(self) -> int:
        """Delete expired items now (in chunks, skipping rows in use); returns how many."""
        total = 0
        while (n := await arun(self.conn, self.core.sweep_op())) == SWEEP_CHUNK:
            total += n
        return total + n

    async def adelete_by_source(self, namespace_prefix: tuple[str, ...], source: str) -> int:
        """Delete every item under ``namespace_prefix`` whose source is ``source``."""
        return await arun(self.conn, self.core.delete_by_source_op(namespace_prefix, source))

    async def astart_ttl_sweeper(
        self, sweep_interval_minutes: float | None = None
    ) -> asyncio.Task[None]:
        """Sweep expired items every ``sweep_interval_minutes`` in a task that survives
        errors (logged, retried with backoff; see ``background_status()``)."""
        if self._sweeper is not None and not self._sweeper.done():
            return self._sweeper
        every = 60 * float(sweep_interval_minutes or self.cfg.sweep_interval_minutes)
        live = self._sweeper_liveness
        self._sweep_stop.clear()

        async def loop() -> None:
            live.running = True
            delay = every
            try:
                while not await _wait(self._sweep_stop, delay):
                    delay = live.outcome(await aattempt(self.asweep_ttl), every)
            finally:
                live.running = False

        self._sweeper = self._bind().create_task(loop(), name="pgstore-ttl-sweeper")
        return self._sweeper

    async def astop_ttl_sweeper(self, timeout: float | None = None) -> bool:
        """Stop the sweeper; True when it has stopped within ``timeout`` seconds."""
        if self._sweeper is None:
            return True
        self._sweep_stop.set()
        done, _ = await asyncio.wait([self._sweeper], timeout=timeout)
        if done:
            self._sweeper = None
        return bool(done)

    # ---- access bookkeeping ------------------------------------------------------------

    async def aflush(self, timeout: float = 10.0) -> bool:
        """Write the pending access notes now (reads are otherwise counted in the background);
        False if rows stayed locked by other transactions for ``timeout`` seconds."""
        access = self.core.access
        deadline = time.monotonic() + timeout
        async with self._flushing:
            while taken := access.take():
                kept = None
                try:
                    kept = await arun(self.conn, access_flush_op(taken))
                finally:
                    access.settle(taken, kept)
                if kept:
                    if time.monotonic() > deadline:
                        return False
                    await asyncio.sleep(0.01)  # rows held by another transaction: try again shortly
        return True

    async def aclose(self) -> None:
        """Stop the sweeper and the writer, and write what reads are still pending (if the
        database can't be reached, say how many reads go uncounted)."""
        await self.astop_ttl_sweeper()
        self._closed = True
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.wait([self._writer])
        try:
            await self.aflush(timeout=2.0)
        except Exception as exc:
            self.core.access.abandon(exc)

    def _wake_writer(self) -> None:
        # called from batch_op, which runs on the store's loop
        if self._closed:
            return
        if self._writer is None and self._loop is not None:
            self._writer = self._loop.create_task(self._write_access())
        self._wake.set()

    async def _write_access(self) -> None:
        """Flush notes as they come (at most every FLUSH_INTERVAL s); end after IDLE_EXIT s
        with nothing to do."""
        access = self.core.access
        live = access.liveness
        live.running = True
        try:
            while True:
                await _wait(self._wake, IDLE_EXIT)
                self._wake.clear()
                async with self._flushing:
                    if taken := access.take():
                        result = await aattempt(lambda: arun(self.conn, access_flush_op(taken)))
                        pause = access.after_flush(taken, result)
                if taken:  # let reads of the same items pile up (or back off)
                    await asyncio.sleep(pause)
                    self._wake.set()
                    continue
                if not access.pending:
                    return
        finally:
            live.running = False
            self._writer = None


@dataclass(frozen=True, slots=True)
class _Queued:
    """A call waiting for its batch."""

    future: asyncio.Future[Any]
    op: Op
    tenant: str | None
    context: contextvars.Context


async def _wait(event: asyncio.Event, timeout: float) -> bool:
    """``event.wait()`` with a timeout; True when the event was set."""
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        return False
    return True


def _dedupe(ops: list[Op]) -> tuple[list[Op], list[int]]:
    """Identical gets run once; puts to one item keep the last (as upstream's batching)."""
    out: list[Op] = []
    listen: list[int] = []
    seen: dict[Any, int] = {}
    for op in ops:
        key: Any = None
        if type(op) is GetOp:
            key = op
        elif isinstance(op, PutOp):
            key = ("put", op.namespace, op.key)
        if key is not None and key in seen:
            i = seen[key]
            if isinstance(op, PutOp):
                out[i] = op
        else:
            i = len(out)
            out.append(op)
            if key is not None:
                seen[key] = i
        listen.append(i)
    return out, listen


def _fail(futures: list[asyncio.Future[Any]], exc: BaseException) -> None:
    for fut in futures:
        if not fut.done():
            fut.set_exception(exc)
