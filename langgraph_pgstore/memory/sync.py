"""PgMemoryStore: LangGraph ``BaseStore`` on PostgreSQL + pgvector, sync driver.

Everything but calling the embedder, driving the op and the background thread lives in
``core``; :class:`~.aio.AsyncPgMemoryStore` is the asyncio twin over the same core.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Iterable
from typing import Any, Unpack, cast

from langgraph.store.base import Op, Result

from .._ops import Conn, run
from .background import IDLE_EXIT, access_flush_op, attempt
from .base import ListArgs, MemoryStoreBase, PutArgs, SearchArgs
from .config import StoreOptions
from .core import SWEEP_CHUNK
from .items import MemoryItem, MemorySearchItem, Page, PutResult
from .ops import NS, IndexArg, Value, delete_op, get_op

__all__ = ["PgMemoryStore"]


class PgMemoryStore(MemoryStoreBase):
    """Long-term memory for graphs: ``builder.compile(store=db.memory(index=...))``.

    Also usable from async code (``abatch`` runs the sync driver in a worker thread, as
    LangGraph's ``PostgresStore`` does); for an asyncio pool use ``AsyncPgMemoryStore``.
    """

    def __init__(self, conn: Conn, **options: Unpack[StoreOptions]) -> None:
        super().__init__(**options)
        self.conn = conn
        self._lock = threading.Lock()  # setup, and starting the writer
        self._flushing = threading.Lock()  # one access flush at a time
        self._writer: threading.Thread | None = None
        self._wake = threading.Event()
        self._sweeper: threading.Thread | None = None
        self._sweep_stop = threading.Event()
        self._closed = threading.Event()
        self.core.access.wake = self._wake_writer

    def setup(self) -> None:
        """Detect extensions and create this store's indexes (idempotent; done on first use)."""
        with self._lock:
            if self.core.has_vector is None:
                run(self.conn, self.core.setup_op())

    # ---- the batch ---------------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        return self._public(self._batch(ops))

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        return await asyncio.to_thread(self.batch, list(ops))

    def _batch(self, ops: Iterable[Op]) -> list[Any]:
        if self.core.has_vector is None:
            self.setup()
        plan = self._plan(ops)
        emb = self.cfg.embeddings
        docs = emb.embed_documents(plan.docs) if emb and plan.docs else []
        queries = [emb.embed_query(text) for text in plan.queries] if emb else []
        op = self.core.batch_op(plan, *self.core.vectors(plan, docs, queries))
        return run(self.conn, op, transaction=plan.transaction)

    def _one(self, op: Op) -> Any:
        return self._batch([op])[0]

    # ---- BaseStore's methods, with our extras -----------------------------------------

    def get(
        self, namespace: tuple[str, ...], key: str, *, refresh_ttl: bool | None = None
    ) -> MemoryItem | None:
        op = get_op(namespace, key, self.cfg.refresh_default(refresh_ttl))
        return cast(MemoryItem | None, self._one(op))

    def search(  # type: ignore[override]  # returns a list of a subclass
        self, namespace_prefix: tuple[str, ...], /, **kwargs: Unpack[SearchArgs]
    ) -> Page[MemorySearchItem]:
        """LangGraph's ``search`` plus ``mode``, ``min_score``, ``cursor`` and ``vector``;
        the result is a list with ``next_cursor``."""
        return cast(Page[MemorySearchItem], self._one(self._search(namespace_prefix, kwargs)))

    def put(  # type: ignore[override]  # returns what happened instead of None
        self, namespace: NS, key: str, value: Value, index: IndexArg = None, **kw: Unpack[PutArgs]
    ) -> PutResult:
        """LangGraph's ``put``; returns a :class:`PutResult` (inserted, updated, skipped or
        merged as a near-duplicate)."""
        return cast(PutResult, self._one(self._put(namespace, key, value, index, kw)))

    def delete(self, namespace: tuple[str, ...], key: str) -> None:
        self._one(delete_op(namespace, key))

    def list_namespaces(self, **kwargs: Unpack[ListArgs]) -> Page[tuple[str, ...]]:
        """LangGraph's ``list_namespaces`` plus ``cursor``; a list with ``next_cursor``."""
        return cast(Page[tuple[str, ...]], self._one(self._list(kwargs)))

    # ---- maintenance -------------------------------------------------------------------

    def sweep_ttl(self) -> int:
        """Delete expired items now (in chunks, skipping rows in use); returns how many."""
        total = 0
        while (n := run(self.conn, self.core.sweep_op())) == SWEEP_CHUNK:
            total += n
        return total + n

    def delete_by_source(self, namespace_prefix: tuple[str, ...], source: str) -> int:
        """Delete every item under ``namespace_prefix`` whose source is ``source``."""
        return run(self.conn, self.core.delete_by_source_op(namespace_prefix, source))

    def start_ttl_sweeper(
        self, sweep_interval_minutes: float | None = None
    ) -> concurrent.futures.Future[None]:
        """Sweep expired items every ``sweep_interval_minutes`` (default: the TTL config's
        ``sweep_interval_minutes``, else 5) in a daemon thread that survives errors (logged,
        retried with backoff; see ``background_status()``). The future completes when the
        sweeper stops; cancelling it stops the sweeper."""
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        if self._sweeper is not None and self._sweeper.is_alive():
            done.add_done_callback(self._stop_if_cancelled)
            return done
        every = 60 * float(sweep_interval_minutes or self.cfg.sweep_interval_minutes)
        live = self._sweeper_liveness
        self._sweep_stop.clear()

        def loop() -> None:
            live.running = True
            delay = every
            try:
                while not self._sweep_stop.wait(delay):
                    delay = live.outcome(attempt(self.sweep_ttl), every)
            finally:
                live.running = False
                if not done.done():
                    done.set_result(None)

        done.add_done_callback(self._stop_if_cancelled)
        self._sweeper = threading.Thread(target=loop, name="pgstore-ttl-sweeper", daemon=True)
        self._sweeper.start()
        return done

    def _stop_if_cancelled(self, future: concurrent.futures.Future[None]) -> None:
        if future.cancelled():
            self._sweep_stop.set()

    def stop_ttl_sweeper(self, timeout: float | None = None) -> bool:
        """Stop the sweeper; True when it has stopped within ``timeout`` seconds."""
        if self._sweeper is None:
            return True
        self._sweep_stop.set()
        self._sweeper.join(timeout)
        stopped = not self._sweeper.is_alive()
        if stopped:
            self._sweeper = None
        return stopped

    # ---- access bookkeeping ------------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> bool:
        """Write the pending access notes now (reads are otherwise counted in the background);
        False if rows stayed locked by other transactions for ``timeout`` seconds."""
        access = self.core.access
        deadline = time.monotonic() + timeout
        with self._flushing:
            while taken := access.take():
                kept = None
                try:
                    kept = run(self.conn, access_flush_op(taken))
                finally:
                    access.settle(taken, kept)
                if kept:
                    if time.monotonic() > deadline:
                        return False
                    time.sleep(0.01)  # rows held by another transaction: try again shortly
        return True

    def close(self) -> None:
        """Stop the sweeper and the writer, and write what reads are still pending (if the
        database can't be reached, say how many reads go uncounted)."""
        self.stop_ttl_sweeper()
        self._closed.set()
        self._wake.set()
        if self._writer is not None:
            self._writer.join()
        try:
            self.flush(timeout=2.0)
        except Exception as exc:
            self.core.access.abandon(exc)

    def _wake_writer(self) -> None:
        with self._lock:
            if self._closed.is_set():
                return
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(
                    target=self._write_access, name="pgstore-memory-access", daemon=True
                )
                self._writer.start()
        self._wake.set()

    def _write_access(self) -> None:
        """Flush notes as they come (at most every FLUSH_INTERVAL s); exit after IDLE_EXIT s
        with nothing to do."""
        access = self.core.access
        live = access.liveness
        live.running = True
        try:
            while not self._closed.is_set():
                self._wake.wait(IDLE_EXIT)
                self._wake.clear()
                with self._flushing:
                    if taken := access.take():
                        result = attempt(lambda: run(self.conn, access_flush_op(taken)))
                        pause = access.after_flush(taken, result)
                if taken:  # let reads of the same items pile up (or back off)
                    self._closed.wait(pause)
                    self._wake.set()
                    continue
                with self._lock:
                    if not access.pending:
                        self._writer = None
                        return
        finally:
            live.running = False
