"""The async checkpointer: langgraph's AsyncPostgresSaver on our pool, plus what it lacks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg import AsyncCursor
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow, dict_row

from .._ops import aconnection, arun
from . import base, history
from .writes import Write, put_write, writes_write

__all__ = ["AsyncPgCheckpointer"]

T = TypeVar("T")


class _AsyncScopedCursor:
    """Async twin of ``sync._ScopedCursor`` (same rules; the decision is ``base``'s)."""

    def __init__(self, cur: AsyncCursor[DictRow], statement: tuple[str, tuple[str]]) -> None:
        self._cur, self._statement, self._scoped = cur, statement, False

    async def execute(self, query: Any, params: Any = None, **kwargs: Any) -> _AsyncScopedCursor:
        cur, conn = self._cur, self._cur.connection
        if conn.info.transaction_status == TransactionStatus.IDLE:
            async with conn.pipeline():  # one implicit transaction, up to the pipeline's sync
                await conn.execute(*self._statement)
                await cur.execute(query, params, **kwargs)
        elif self._scoped:
            await cur.execute(query, params, **kwargs)
        else:
            first = base.sets_isolation(query)
            if not first:
                await conn.execute(*self._statement)
            await cur.execute(query, params, **kwargs)
            if first:
                await conn.execute(*self._statement)
            self._scoped = True
        return self

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cur, name)

    def __aiter__(self) -> AsyncIterator[DictRow]:
        return self._cur.__aiter__()


class AsyncPgCheckpointer(base.SaverBase, AsyncPostgresSaver):
    """Async twin of :class:`~langgraph_pgstore.checkpoint.PgCheckpointer` (the same
    write path and rules, from ``base`` and ``writes``; only the awaits are its own)."""

    @asynccontextmanager
    async def _cursor(self, *, pipeline: bool = False) -> AsyncIterator[AsyncCursor[DictRow]]:
        """AsyncPostgresSaver's, scoped like the sync saver's."""
        if (statement := self._read_scope()) is None:
            async with super()._cursor(pipeline=pipeline) as cur:
                yield cur
        elif not pipeline:
            async with super()._cursor() as cur:
                yield cast(AsyncCursor[DictRow], _AsyncScopedCursor(cur, statement))
        else:
            async with (
                self.lock,
                aconnection(self.conn) as conn,
                conn.pipeline(),  # one implicit transaction, up to the pipeline's sync
                conn.cursor(binary=True, row_factory=dict_row) as cur,
            ):
                await cur.execute(*statement)
                yield cur

    async def _awrite(self, write: Write) -> None:
        """One pipeline (one round trip), or the mirror's transaction when it needs answers."""
        result = None
        async with self.lock:
            if (op := write.op) is not None:
                result = await arun(self.conn, op)
            else:
                async with aconnection(self.conn) as conn, conn.pipeline(), conn.cursor() as cur:
                    for q in write.queries:
                        if q.many is None:
                            await cur.execute(q.sql, q.params)
                        else:
                            await cur.executemany(q.sql, q.many)
        write.committed(result)

    @base.translated
    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        args = (config, checkpoint, metadata, new_versions)
        write, saved = put_write(self, self.recorder, *args)
        with self.coalescer.carrying(write):
            await self._awrite(write)
        return saved

    @base.translated
    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        write = writes_write(self, config, writes, task_id, task_path)
        offer = self.coalescer.offer(write, asyncio.Event())
        if offer is not None:
            done = cast(asyncio.Event, offer.done)
            try:
                await asyncio.wait_for(done.wait(), self.coalescer.wait)
                taken = True
            except TimeoutError:
                taken = not self.coalescer.withdraw(offer)
            if taken:
                await done.wait()  # a put took it: it settles it, whatever happens
                if offer.error is None:
                    return  # committed with the checkpoint
        await self._awrite(write)

    @base.translated
    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """AsyncPostgresSaver's, with driver errors (NUL bytes, bad Unicode) as ours."""
        return await super().aget_tuple(config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Like AsyncPostgresSaver's, but each distinct message is decoded once."""
        try:
            async with self._cursor() as cur:
                await cur.execute(*history.list_query(self, config, filter, before, limit))
                rows = await cur.fetchall()
        except Exception as exc:
            history.reraise_translated(exc)
            raise
        if history.needs_legacy_path(rows):
            async for item in super().alist(config, filter=filter, before=before, limit=limit):
                yield item
            return
        for item in history.load_tuples(self, rows):
            yield item

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await arun(self.conn, base.copy_thread(source_thread_id, target_thread_id))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await arun(self.conn, base.delete_for_runs(run_ids))

    async def adelete_stale_threads(
        self, older_than: timedelta | datetime, *, limit: int = 1000
    ) -> list[str]:
        """Retention: delete threads idle for longer than ``older_than``; returns their ids."""
        return await arun(self.conn, base.delete_stale_threads(older_than, limit=limit))

    # Sync entry points for code that holds the async saver from another thread (as
    # AsyncPostgresSaver has for its own methods).
    def _blocking(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self._blocking(self.acopy_thread(source_thread_id, target_thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        self._blocking(self.adelete_for_runs(run_ids))

    def delete_stale_threads(
        self, older_than: timedelta | datetime, *, limit: int = 1000
    ) -> list[str]:
        return self._blocking(self.adelete_stale_threads(older_than, limit=limit))
