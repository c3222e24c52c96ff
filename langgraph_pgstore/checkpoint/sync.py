"""The sync checkpointer: langgraph's PostgresSaver on our pool, plus what it lacks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.serde.base import SerializerProtocol
from psycopg_pool import ConnectionPool

from .._ops import Conn, run
from . import base

__all__ = ["PgCheckpointer"]


class PgCheckpointer(PostgresSaver):
    """``checkpointer=`` for compiled graphs, on the shared pool.

    Same tables and behaviour as ``PostgresSaver``; adds ``copy_thread``,
    ``delete_for_runs``, ``delete_stale_threads`` (retention) and raises our own errors.
    """

    def __init__(self, conn: Conn, *, serde: SerializerProtocol | None = None) -> None:
        super().__init__(conn, serde=serde)
        if isinstance(conn, ConnectionPool):
            self.lock = base.NoLock()  # type: ignore[assignment]

    @base.translated
    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return super().put(config, checkpoint, metadata, new_versions)

    @base.translated
    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        super().put_writes(config, writes, task_id, task_path)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        run(self.conn, base.copy_thread(source_thread_id, target_thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        run(self.conn, base.delete_for_runs(run_ids))

    def delete_stale_threads(
        self, older_than: timedelta | datetime, *, limit: int = 1000
    ) -> list[str]:
        """Retention: delete threads idle for longer than ``older_than``; returns their ids."""
        return run(self.conn, base.delete_stale_threads(older_than, limit=limit))
