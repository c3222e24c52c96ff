"""The sync checkpointer: langgraph's PostgresSaver on our pool, plus what it lacks."""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.postgres import PostgresSaver
from psycopg import Cursor
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow, dict_row

from .._ops import connection, run
from . import base, history
from .writes import Write, put_write, writes_write

__all__ = ["PgCheckpointer"]


class _ScopedCursor:
    """A cursor whose statements act for a tenant, in whatever transaction runs them.

    PostgresSaver reads in autocommit, and its ``prune`` opens transactions that must begin
    with ``SET TRANSACTION ISOLATION LEVEL``: the tenant can't be set up front. Outside a
    transaction, a statement runs in one that first sets it (pipelined: one round trip);
    inside the caller's, the setting comes before its first statement, or right after its
    ``SET TRANSACTION``.
    """

    def __init__(self, cur: Cursor[DictRow], statement: tuple[str, tuple[str]]) -> None:
        self._cur, self._statement, self._scoped = cur, statement, False

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> _ScopedCursor:
        cur, conn = self._cur, self._cur.connection
        if conn.info.transaction_status == TransactionStatus.IDLE:
            with conn.pipeline():  # one implicit transaction, up to the pipeline's sync
                conn.execute(*self._statement)
                cur.execute(query, params, **kwargs)
        elif self._scoped:
            cur.execute(query, params, **kwargs)
        else:
            first = base.sets_isolation(query)
            if not first:
                conn.execute(*self._statement)
            cur.execute(query, params, **kwargs)
            if first:
                conn.execute(*self._statement)
            self._scoped = True
        return self

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cur, name)

    def __iter__(self) -> Iterator[DictRow]:
        return iter(self._cur)


class PgCheckpointer(base.SaverBase, PostgresSaver):
    """``checkpointer=`` for compiled graphs, on the shared pool.

    Same tables, rows and behaviour as ``PostgresSaver``; writes take one round trip each
    (see ``writes``) and mirror the messages; ``list`` decodes each message once (see
    ``history``); adds ``copy_thread``, ``delete_for_runs``, ``delete_stale_threads``
    (retention) and raises our own errors. Every transaction acts for the tenant in effect.
    """

    @contextmanager
    def _cursor(self, *, pipeline: bool = False) -> Iterator[Cursor[DictRow]]:
        """PostgresSaver's, acting for the tenant (upstream's own writes in a pipeline that
        first sets it, reads through :class:`_ScopedCursor`); unchanged when there is none."""
        if (statement := self._read_scope()) is None:
            with super()._cursor(pipeline=pipeline) as cur:
                yield cur
        elif not pipeline:
            with super()._cursor() as cur:
                yield cast(Cursor[DictRow], _ScopedCursor(cur, statement))
        else:
            with (
                self.lock,
                connection(self.conn) as conn,
                conn.pipeline(),  # one implicit transaction, up to the pipeline's sync
                conn.cursor(binary=True, row_factory=dict_row) as cur,
            ):
                cur.execute(*statement)
                yield cur

    def _write(self, write: Write) -> None:
        """One pipeline (one round trip), or the mirror's transaction when it needs answers."""
        result = None
        with self.lock:
            if (op := write.op) is not None:
                result = run(self.conn, op)
            else:
                with connection(self.conn) as conn, conn.pipeline(), conn.cursor() as cur:
                    for q in write.queries:
                        if q.many is None:
                            cur.execute(q.sql, q.params)
                        else:
                            cur.executemany(q.sql, q.many)
        write.committed(result)

    @base.translated
    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        args = (config, checkpoint, metadata, new_versions)
        write, saved = put_write(self, self.recorder, *args)
        with self.coalescer.carrying(write):
            self._write(write)
        return saved

    @base.translated
    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        write = writes_write(self, config, writes, task_id, task_path)
        offer = self.coalescer.offer(write, threading.Event())
        if offer is not None:
            done = cast(threading.Event, offer.done)
            if done.wait(self.coalescer.wait) or not self.coalescer.withdraw(offer):
                done.wait()  # a put took it: it settles it, whatever happens
                if offer.error is None:
                    return  # committed with the checkpoint
        self._write(write)

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
        """Copy a thread's checkpoints, blobs and writes (each keeps its owner)."""
        run(self.conn, base.copy_thread(source_thread_id, target_thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        run(self.conn, base.delete_for_runs(run_ids))

    def delete_stale_threads(
        self, older_than: timedelta | datetime, *, limit: int = 1000
    ) -> builtins.list[str]:  # ``list`` is the method above
        """Retention: delete threads idle for longer than ``older_than``; returns their ids."""
        return run(self.conn, base.delete_stale_threads(older_than, limit=limit))
