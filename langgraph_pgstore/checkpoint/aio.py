"""The async checkpointer: langgraph's AsyncPostgresSaver on our pool, plus what it lacks."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Sequence
from contextlib import nullcontext
from datetime import datetime, timedelta
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.base import SerializerProtocol
from psycopg_pool import AsyncConnectionPool

from .._ops import AConn, aconnection, arun
from ..conversations.recorder import MessageRecorder
from ..errors import InvalidInput
from . import base, history

__all__ = ["AsyncPgCheckpointer"]


class AsyncPgCheckpointer(AsyncPostgresSaver):
    """Async twin of :class:`~langgraph_pgstore.checkpoint.PgCheckpointer`."""

    def __init__(
        self,
        conn: AConn,
        *,
        serde: SerializerProtocol | None = None,
        recorder: MessageRecorder | None = None,
    ) -> None:
        super().__init__(conn, serde=serde)
        if isinstance(conn, AsyncConnectionPool):
            self.lock = base.NoLock()  # type: ignore[assignment]
        #: Mirrors root-graph messages into sessions/messages in the checkpoint's transaction.
        self.recorder = recorder

    @base.translated
    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        recorder = self.recorder
        if recorder is None or not recorder.wants(config):
            return await super().aput(config, checkpoint, metadata, new_versions)
        # langgraph's aput and the mirror writes on one connection, in one transaction.
        for attempt in (1, 2):
            fast = recorder.pipelined(config)
            try:
                async with (
                    aconnection(self.conn) as conn,
                    conn.pipeline() if fast else nullcontext(),
                    conn.transaction(),
                ):
                    bound = copy.copy(self)
                    bound.conn = conn
                    saved = await super(AsyncPgCheckpointer, bound).aput(
                        config, checkpoint, metadata, new_versions
                    )
                    op = recorder.op(config, checkpoint, metadata, new_versions)
                    state = await arun(conn, op, transaction=False)
                break
            except InvalidInput as exc:
                if attempt == 2 or not recorder.stale(config, exc):
                    raise
        recorder.committed(config, state)
        return saved

    @base.translated
    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await super().aput_writes(config, writes, task_id, task_path)

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

    # Sync entry points for code that holds the async saver from another thread.
    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        asyncio.run_coroutine_threadsafe(
            self.acopy_thread(source_thread_id, target_thread_id), self.loop
        ).result()

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        asyncio.run_coroutine_threadsafe(self.adelete_for_runs(run_ids), self.loop).result()
