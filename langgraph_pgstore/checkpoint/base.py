"""SQL and operations the sync and async checkpointers share.

The checkpoint tables are langgraph-checkpoint-postgres's own; we add what its saver lacks
(``copy_thread``, ``delete_for_runs``, time-based retention) as sans-IO operations.

Writes (``put``, ``put_writes``) are our own, on PostgresSaver's statements and rows, one
round trip each (see :mod:`.writes`). Reads are PostgresSaver's own, except ``list`` (see
:mod:`.history`).

Ownership: migration 0005 gave the three tables ``owner_id DEFAULT pgstore_owner()``, so the
saver's INSERTs are owned by whoever the transaction's settings name. A write starts with
:func:`scope_statement`: the tenant, or with no tenant, the run's user as ``pgstore.owner``;
our savers override PostgresSaver's one ``_cursor`` so that its reads (and its own writes:
``delete_thread``, ``prune``) act for the tenant. With neither, nothing is sent.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from functools import wraps
from typing import Any, ParamSpec, TypeVar, cast

import psycopg
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.serde.base import SerializerProtocol
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from .. import tenancy
from .._ops import Op, Query, retry_pause
from ..conversations.recorder import MessageRecorder
from ..errors import InvalidInput, PgStoreError, SerializationError, translate_error
from .coalesce import Coalescer

#: ``(tenant, owner)`` of a transaction; ``(None, None)`` sends nothing.
Scope = tuple[str | None, str | None]
UNSCOPED: Scope = (None, None)

#: A copy keeps each row's owner (under a tenant, every visible row is the tenant's).
COPY_THREAD_SQL = (
    """INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
                                type, checkpoint, metadata, owner_id)
       SELECT %(target)s, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type,
              checkpoint, metadata, owner_id
       FROM checkpoints WHERE thread_id = %(source)s
       ON CONFLICT DO NOTHING""",
    """INSERT INTO checkpoint_blobs
         (thread_id, checkpoint_ns, channel, version, type, blob, owner_id)
       SELECT %(target)s, checkpoint_ns, channel, version, type, blob, owner_id
       FROM checkpoint_blobs WHERE thread_id = %(source)s
       ON CONFLICT DO NOTHING""",
    """INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id,
                                      task_path, idx, channel, type, blob, owner_id)
       SELECT %(target)s, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type,
              blob, owner_id
       FROM checkpoint_writes WHERE thread_id = %(source)s
       ON CONFLICT DO NOTHING""",
)

DELETE_RUN_CHECKPOINTS_SQL = """
DELETE FROM checkpoints WHERE metadata ->> 'run_id' = ANY(%s)
RETURNING thread_id, checkpoint_ns, checkpoint_id
"""

DELETE_WRITES_OF_SQL = """
DELETE FROM checkpoint_writes w
USING unnest(%s::text[], %s::text[], %s::text[]) AS d(thread_id, checkpoint_ns, checkpoint_id)
WHERE w.thread_id = d.thread_id AND w.checkpoint_ns = d.checkpoint_ns
  AND w.checkpoint_id = d.checkpoint_id
"""

#: Blobs of the given threads that no remaining checkpoint references.
DELETE_ORPHAN_BLOBS_SQL = """
DELETE FROM checkpoint_blobs b
WHERE b.thread_id = ANY(%s)
  AND NOT EXISTS (
    SELECT 1 FROM checkpoints c
    WHERE c.thread_id = b.thread_id AND c.checkpoint_ns = b.checkpoint_ns
      AND c.checkpoint -> 'channel_versions' ->> b.channel = b.version)
"""

#: Threads whose newest root checkpoint is older than the cutoff (``ts`` is ISO-8601 UTC).
STALE_THREADS_SQL = """
SELECT thread_id FROM checkpoints
WHERE checkpoint_ns = ''
GROUP BY thread_id
HAVING max((checkpoint ->> 'ts')::timestamptz) < %s
ORDER BY thread_id
LIMIT %s
"""

DELETE_THREADS_SQL = (
    "DELETE FROM checkpoints WHERE thread_id = ANY(%s)",
    "DELETE FROM checkpoint_blobs WHERE thread_id = ANY(%s)",
    "DELETE FROM checkpoint_writes WHERE thread_id = ANY(%s)",
)


def copy_thread(source_thread_id: str, target_thread_id: str) -> Op[None]:
    """Copy every checkpoint, blob and write of one thread to another, atomically."""
    if str(source_thread_id) == str(target_thread_id):
        raise InvalidInput("copy_thread needs two different thread ids")
    params = {"source": str(source_thread_id), "target": str(target_thread_id)}
    for statement in COPY_THREAD_SQL:
        yield Query(statement, params)


def delete_for_runs(run_ids: Sequence[str]) -> Op[int]:
    """Delete the checkpoints written by the given runs, their writes and orphaned blobs."""
    if isinstance(run_ids, str):
        raise TypeError("run_ids must be a sequence of run ids, not a str")
    ids = [str(r) for r in run_ids]
    if not ids:
        return 0
    deleted = yield Query(DELETE_RUN_CHECKPOINTS_SQL, (ids,))
    if not deleted:
        return 0
    yield Query(
        DELETE_WRITES_OF_SQL,
        (
            [r["thread_id"] for r in deleted],
            [r["checkpoint_ns"] for r in deleted],
            [r["checkpoint_id"] for r in deleted],
        ),
    )
    yield Query(DELETE_ORPHAN_BLOBS_SQL, (sorted({r["thread_id"] for r in deleted}),))
    return len(deleted)


def delete_stale_threads(older_than: timedelta | datetime, *, limit: int = 1000) -> Op[list[str]]:
    """Delete threads whose newest checkpoint is older than ``older_than``; returns their ids.

    ``older_than`` is an age (``timedelta``) or an absolute cutoff (aware ``datetime``).
    Maintenance: refused (``PermissionDenied``) unless it sees every thread (admin path).
    Call repeatedly until it returns fewer than ``limit`` ids to sweep everything.
    """
    if isinstance(older_than, timedelta):
        cutoff = datetime.now().astimezone() - older_than
    elif older_than.tzinfo is None:
        raise InvalidInput("older_than must be a timedelta or a timezone-aware datetime")
    else:
        cutoff = older_than
    yield from tenancy.require_admin("delete_stale_threads (retention)")
    rows = yield Query(STALE_THREADS_SQL, (cutoff, int(limit)))
    threads = [r["thread_id"] for r in rows]
    if threads:
        for statement in DELETE_THREADS_SQL:
            yield Query(statement, (threads,))
    return threads


def write_scope(conn: object, config: RunnableConfig) -> Scope:
    """``(tenant, owner)`` of a checkpoint write: the run's user is checked against the
    tenant, and owns the rows when no tenant is in effect."""
    return tenancy.resolve_owner(conn, tenancy.user_of(config))


def sets_isolation(query: object) -> bool:
    """Whether a statement must open its transaction (``SET TRANSACTION ...``, as
    PostgresSaver's ``prune`` does): the tenant is then set right after it."""
    return isinstance(query, str) and query.lstrip()[:15].upper() == "SET TRANSACTION"


def scope_statement(scope: Scope) -> tuple[str, tuple[str]] | None:
    """The statement that opens a scoped transaction (None: send nothing)."""
    tenant, owner = scope
    if tenant is not None:
        return tenancy.SET_TENANT_SQL, (tenant,)
    if owner is not None:
        return tenancy.SET_OWNER_SQL, (owner,)
    return None


P = ParamSpec("P")
R = TypeVar("R")


def _ours(exc: Exception) -> BaseException:
    """Our error for a saver failure: driver errors by SQLSTATE; a ``TypeError``/``ValueError``
    from langgraph's serializer means the graph state can't be stored."""
    mapped = translate_error(exc)
    if mapped is not None:
        return mapped
    if isinstance(exc, TypeError | ValueError):
        return SerializationError(
            f"graph state can't be serialised for the checkpoint: {type(exc).__name__}: {exc}"
        )
    return exc


def _stale_session(exc: BaseException) -> bool:
    """A mirrored message's session was deleted behind the recorder's cache (another process
    deleted it): the write is retried at once, and, the cache being gone, syncs afresh."""
    cause = exc if isinstance(exc, psycopg.Error) else exc.__cause__
    return (
        isinstance(cause, psycopg.errors.ForeignKeyViolation)
        and cause.diag.table_name == "messages"
    )


def _retry_pause(exc: Exception, attempt: int) -> float:
    """Seconds to wait before retrying a saver call, else raise our error for ``exc``.

    Every saver method is safe to repeat (reads, and writes that are upserts), so transient
    errors (lost connection, deadlock) are retried, a bounded number of times.
    """
    if attempt == 1 and _stale_session(exc):
        return 0.0
    ours = _ours(exc)
    pause = retry_pause(ours, attempt) if isinstance(ours, PgStoreError) else None
    if pause is not None:
        return pause
    if ours is exc:
        raise exc
    raise ours from exc


def translated(fn: Callable[P, R]) -> Callable[P, R]:
    """Re-raise driver and serializer errors of a saver method as our own errors, retrying
    transient ones (works on plain and ``async def`` methods alike)."""
    if inspect.iscoroutinefunction(fn):

        @wraps(fn)
        async def awrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            for attempt in itertools.count(1):
                try:
                    return await fn(*args, **kwargs)
                except Exception as exc:
                    await asyncio.sleep(_retry_pause(exc, attempt))
            raise AssertionError("unreachable")

        return cast(Callable[P, R], awrapper)

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        for attempt in itertools.count(1):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                time.sleep(_retry_pause(exc, attempt))
        raise AssertionError("unreachable")

    return wrapper


class NoLock:
    """Stands in for the saver's lock when it draws from a pool.

    PostgresSaver takes one ``threading.Lock`` around every query so that a single shared
    connection is never used by two threads at once. Pool connections are never shared, so
    the lock would only serialise all graphs of the process on one mutex.
    """

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


class SaverBase:
    """What both checkpointers add to their langgraph class, written once (a mixin that
    comes first in their bases): the message recorder and the lock a pool doesn't need."""

    conn: Any
    lock: Any

    def __init__(
        self,
        conn: Any,
        *,
        serde: SerializerProtocol | None = None,
        recorder: MessageRecorder | None = None,
    ) -> None:
        super().__init__(conn, serde=serde)  # type: ignore[call-arg]  # the langgraph saver
        if isinstance(conn, ConnectionPool | AsyncConnectionPool):
            self.lock = NoLock()
        #: Mirrors root-graph messages into sessions/messages in the checkpoint's transaction.
        self.recorder = recorder
        #: Task writes waiting to ride with the next checkpoint (see ``coalesce``).
        self.coalescer = Coalescer()

    def _read_scope(self) -> tuple[str, tuple[str]] | None:
        """The statement that makes a read act for the tenant in effect (None: none)."""
        return scope_statement((tenancy.tenant_for(self.conn), None))
