"""PgMemoryStore: LangGraph ``BaseStore`` on PostgreSQL + pgvector (sync driver)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any, Unpack

import numpy as np
from langgraph.store.base import BaseStore, Op, Result, SearchItem

from .._ops import Conn, run
from .base import SearchMode, StoreCore, search_op, write_owner
from .options import StoreOptions

__all__ = ["PgMemoryStore"]


class PgMemoryStore(BaseStore):
    """Long-term memory for graphs: ``builder.compile(store=db.store)``.

    Also usable from async code (``abatch`` runs the sync driver in a thread); for an
    asyncio pool use :class:`AsyncPgMemoryStore`.
    """

    supports_ttl = True

    def __init__(self, conn: Conn, **options: Unpack[StoreOptions]) -> None:
        self.conn = conn
        self.core = StoreCore(**options)
        self.ttl_config = self.core.ttl_config
        self._lock = threading.Lock()
        self._sweeper: threading.Thread | None = None
        self._stop = threading.Event()

    def setup(self) -> None:
        """Detect pgvector and create this store's HNSW index (idempotent, done on first use)."""
        with self._lock:
            if self.core._has_vector is None:
                self.core._has_vector = run(self.conn, self.core.setup_op())

    def _vectors(self, texts: list[str], queries: dict[int, int]) -> np.ndarray:
        emb = self.core.embeddings
        if not texts or emb is None:
            return self.core.check_vectors([], 0)
        qpos = set(queries.values())
        docs = [t for i, t in enumerate(texts) if i not in qpos]
        doc_vecs = iter(emb.embed_documents(docs) if docs else [])
        out = [emb.embed_query(t) if i in qpos else next(doc_vecs) for i, t in enumerate(texts)]
        return self.core.check_vectors(out, len(texts))

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        if self.core._has_vector is None:
            self.setup()
        ops, emb = self.core.prepare(ops)
        vectors = self._vectors(emb.texts, emb.queries)
        owner = write_owner(ops, self.conn)
        return run(self.conn, self.core.batch_op(ops, emb, vectors, owner))

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        import asyncio

        return await asyncio.to_thread(self.batch, list(ops))

    def search(
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
        """BaseStore.search plus ``mode`` (vector/keyword/hybrid) and ``min_score``."""
        op = search_op(
            namespace_prefix,
            query=query,
            filter=filter,
            limit=limit,
            offset=offset,
            refresh_ttl=self._refresh_flag(refresh_ttl),
            mode=mode,
            min_score=min_score,
        )
        return self.batch([op])[0]  # type: ignore[return-value]

    def _refresh_flag(self, refresh_ttl: bool | None) -> bool:
        if refresh_ttl is not None:
            return refresh_ttl
        return bool((self.ttl_config or {}).get("refresh_on_read", True))

    def sweep_ttl(self) -> int:
        """Delete expired items now; returns how many."""
        return run(self.conn, self.core.sweep_op())

    def delete_by_source(self, namespace_prefix: tuple[str, ...], source: str) -> int:
        """Delete every item under ``namespace_prefix`` whose source is ``source``."""
        return run(self.conn, self.core.delete_by_source_op(namespace_prefix, source))

    def start_ttl_sweeper(self, interval_minutes: float | None = None) -> threading.Thread:
        """Sweep expired items in a daemon thread every ``interval_minutes`` (TTL config's
        ``sweep_interval_minutes``, else 5)."""
        if self._sweeper is not None:
            return self._sweeper
        every = 60 * float(
            interval_minutes or (self.ttl_config or {}).get("sweep_interval_minutes") or 5
        )
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(every):
                self.sweep_ttl()

        self._sweeper = threading.Thread(target=loop, name="pgstore-ttl-sweeper", daemon=True)
        self._sweeper.start()
        return self._sweeper

    def stop_ttl_sweeper(self, timeout: float | None = None) -> bool:
        if self._sweeper is None:
            return True
        self._stop.set()
        self._sweeper.join(timeout)
        done = not self._sweeper.is_alive()
        self._sweeper = None
        return done
