"""The sync checkpointer: langgraph's PostgresSaver on our pool, plus what it lacks."""

from __future__ import annotations

import builtins
import copy
from collections.abc import Iterator, Sequence
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
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.serde.base import SerializerProtocol
from psycopg_pool import ConnectionPool

from .._ops import Conn, connection, run
from ..conversations.recorder import MessageRecorder
from ..errors import InvalidInput
from . import base, history

__all__ = ["PgCheckpointer"]


class PgCheckpointer(PostgresSaver):
    """``checkpointer=`` for compiled graphs, on the shared pool.

    Same tables and behaviour as ``PostgresSaver``; adds ``copy_thread``,
    ``delete_for_runs``, ``delete_stale_threads`` (retention) and raises our own errors.
    """

    def __init__(
        self,
        conn: Conn,
        *,
        serde: SerializerProtocol | None = None,
        recorder: MessageRecorder | None = None,
    ) -> None:
        super().__init__(conn, serde=serde)
        if isinstance(conn, ConnectionPool):
            self.lock = base.NoLock()  # type: ignore[assignment]
        #: Mirrors root-graph messages into sessions/messages in the checkpoint's transaction.
        self.recorder = recorder

    @base.translated
    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        recorder = self.recorder
        if recorder is None or not recorder.wants(config):
            return super().put(config, checkpoint, metadata, new_versions)
        # langgraph's put and the mirror writes on one connection, in one transaction.
        for attempt in (1, 2):
            fast = recorder.pipelined(config)
            try:
                with (
                    connection(self.conn) as conn,
                    conn.pipeline() if fast else nullcontext(),
                    conn.transaction(),
                ):
                    bound = copy.copy(self)
                    bound.conn = conn
                    saved = super(PgCheckpointer, bound).put(
                        config, checkpoint, metadata, new_versions
                    )
                    op = recorder.op(config, checkpoint, metadata, new_versions)
                    state = run(conn, op, transaction=False)
                break
            except InvalidInput as exc:
                if attempt == 2 or not recorder.stale(config, exc):
                    raise
        recorder.committed(config, state)
        return saved

    @base.translated
    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        super().put_writes(config, writes, task_id, task_path)

    @base.translated
    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """PostgresSaver's, with driver errors (NUL bytes, bad Unicode in ids) as ours."""
        return super().get_tuple(config)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Like PostgresSaver's, but each distinct message is decoded once (see ``history``)."""
        try:
            with self._cursor() as cur:
                cur.execute(*history.list_query(self, config, filter, before, limit))
                rows = cur.fetchall()
        except Exception as exc:
            history.reraise_translated(exc)
            raise
        if history.needs_legacy_path(rows):
            yield from super().list(config, filter=filter, before=before, limit=limit)
            return
        yield from history.load_tuples(self, rows)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        run(self.conn, base.copy_thread(source_thread_id, target_thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        run(self.conn, base.delete_for_runs(run_ids))

    def delete_stale_threads(
        self, older_than: timedelta | datetime, *, limit: int = 1000
    ) -> builtins.list[str]:  # ``list`` is the method above
        """Retention: delete threads idle for longer than ``older_than``; returns their ids."""
        return run(self.conn, base.delete_stale_threads(older_than, limit=limit))
