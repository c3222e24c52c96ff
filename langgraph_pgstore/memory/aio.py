"""AsyncPgMemoryStore: the asyncio twin of PgMemoryStore (same ops, async driver)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any, Unpack

import numpy as np
from langgraph.store.base import BaseStore, Op, Result, SearchItem

from .._ops import AConn, arun
from ..errors import InvalidInput
from .base import SearchMode, StoreCore, search_op, write_owner
from .options import StoreOptions

__all__ = ["AsyncPgMemoryStore"]


class AsyncPgMemoryStore(BaseStore):
    """Long-term memory for async graphs: ``builder.compile(store=adb.store)``."""

    supports_ttl = True

    def __init__(self, conn: AConn, **options: Unpack[StoreOptions]) -> None:
        self.conn = conn
        self.core = StoreCore(**options)
        self.ttl_config = self.core.ttl_config
        self._lock = asyncio.Lock()
        self._sweeper: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def setup(self) -> None:
        """Detect pgvector and create this store's HNSW index (idempotent, done on first use)."""
        self._loop = asyncio.get_running_loop()
        async with self._lock:
            if self.core._has_vector is None:
                self.core._has_vector = await arun(self.conn, self.core.setup_op())

    async def _vectors(self, texts: list[str], queries: dict[int, int]) -> np.ndarray:
        emb = self.core.embeddings
        if not texts or emb is None:
            return self.core.check_vectors([], 0)
        qpos = set(queries.values())
        docs = [t for i, t in enumerate(texts) if i not in qpos]
        doc_vecs = iter(await emb.aembed_documents(docs) if docs else [])
        out = [
            await emb.aembed_query(t) if i in qpos else next(doc_vecs) for i, t in enumerate(texts)
        ]
        return self.core.check_vectors(out, len(texts))

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        if self.core._has_vector is None or self._loop is None:
            await self.setup()
        ops, emb = self.core.prepare(ops)
        vectors = await self._vectors(emb.texts, emb.queries)
        owner = write_owner(ops, self.conn)
        return await arun(self.conn, self.core.batch_op(ops, emb, vectors, owner))

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Sync calls from another thread (e.g. a sync node of an async graph), run on the
        event loop that owns the pool. Calling it on that loop itself would deadlock."""
        loop = self._loop
        if loop is None or loop.is_closed():
            raise InvalidInput(
                "AsyncPgMemoryStore.batch needs the store to have been used from its event "
                "loop first (await store.setup()); prefer abatch/aget/aput/asearch"
            )
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            raise InvalidInput("sync store calls on the event loop would deadlock; use await")
        return asyncio.run_coroutine_threadsafe(self.abatch(list(ops)), loop).result()

    async def asearch(
        self,
        namespace_prefix: tuple[str, ...],
        /,
        *,
        query: str | None = None,
        filter: dict[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
        refresh_ttl: bool | None = None,
        mode: SearchMode | None = None,
        min_score: float | None = None,
    ) -> list[SearchItem]:
        """BaseStore.asearch plus ``mode`` (vector/keyword/hybrid) and ``min_score``."""
        if refresh_ttl is None:
            refresh_ttl = bool((self.ttl_config or {}).get("refresh_on_read", True))
        op = search_op(
            namespace_prefix,
            query=query,
            filter=filter,
            limit=limit,
            offset=offset,
            refresh_ttl=refresh_ttl,
            mode=mode,
            min_score=min_score,
        )
        return (await self.abatch([op]))[0]  # type: ignore[return-value]

    async def sweep_ttl(self) -> int:
        """Delete expired items now; returns how many."""
        return await arun(self.conn, self.core.sweep_op())

    async def delete_by_source(self, namespace_prefix: tuple[str, ...], source: str) -> int:
        """Delete every item under ``namespace_prefix`` whose source is ``source``."""
        return await arun(self.conn, self.core.delete_by_source_op(namespace_prefix, source))

    async def start_ttl_sweeper(self, interval_minutes: float | None = None) -> asyncio.Task[None]:
        """Sweep expired items every ``interval_minutes`` in a background task."""
        if self._sweeper is not None:
            return self._sweeper
        every = 60 * float(
            interval_minutes or (self.ttl_config or {}).get("sweep_interval_minutes") or 5
        )

        async def loop() -> None:
            while True:
                await asyncio.sleep(every)
                await self.sweep_ttl()

        self._sweeper = asyncio.create_task(loop())
        return self._sweeper

    async def stop_ttl_sweeper(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
